import { createHmac, timingSafeEqual } from "node:crypto";
import { quorum } from "./catch-up.ts";

/**
 * Whether this node's admin token is the cluster's, decided from its peers' proofs, apart from
 * the asking (token-check.ts) so the rules can be tested on their own. A node proves it holds a
 * token by an HMAC keyed with it over a fresh nonce the asker chose and both nodes' names: the
 * token never crosses the wire, an old answer proves nothing about a new nonce, and an answer
 * meant for one node or from one node cannot be passed off as another's.
 */

/** Domain separation: this HMAC is never mistaken for another use of the token. */
const CONTEXT = "gridiron admin token proof v1";

/** The proof that `answerer` holds `token`, for the question `asker` asked with `nonce`. */
export function tokenProof(token: string, answerer: string, asker: string, nonce: string): string {
  return createHmac("sha256", token).update([CONTEXT, answerer, asker, nonce].join("\n")).digest("hex");
}

/** Whether `proof` is the one this node's own token gives, in constant time. */
export function sameToken(proof: string, expected: string): boolean {
  const a = Buffer.from(proof, "hex");
  const b = Buffer.from(expected, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** What asking one peer gave. Only an answer over mutual TLS from that peer's certificate counts. */
export type TokenAnswer =
  | { peer: string; outcome: "same" }
  /** The peer proved it holds another token. */
  | { peer: string; outcome: "differs" }
  /** Down, not started yet, not this version, or not who it should be: it says nothing either way. */
  | { peer: string; outcome: "no-answer"; reason: string };

export type TokenStep =
  | { kind: "confirmed"; by: string[] }
  /** The node stops with this message: its token cannot be the cluster's. */
  | { kind: "refused"; message: string }
  | { kind: "waiting"; message: string };

/**
 * The next step after asking every other node of a cluster of `clusterSize`. A token is the
 * cluster's once a majority of the nodes (this one counted) holds it: with one wrong node it is
 * the one refused, never the others, and it is refused once so many peers proved another token
 * that its own can no longer reach a majority. Until either, it waits: a peer that does not
 * answer may yet confirm it. Alone in a cluster of one, it is confirmed by itself.
 */
export function tokenStep(answers: TokenAnswer[], clusterSize: number): TokenStep {
  const same = answers.filter((a) => a.outcome === "same").map((a) => a.peer);
  const differ = answers.filter((a) => a.outcome === "differs").map((a) => a.peer);
  const needed = quorum(clusterSize);
  if (1 + same.length >= needed) return { kind: "confirmed", by: same };
  if (differ.length > clusterSize - needed) {
    return {
      kind: "refused",
      message: `${differ.join(", ")} refused this node's admin token: each proved, over mutual TLS with its certificate, that it holds another one. Every node of a cluster needs the same GRIDIRON_ADMIN_TOKEN. Not starting restate-server (or stopping it), so this node leads no partition; fix the token and start it again`,
    };
  }
  const said = answers.map((a) => `${a.peer}: ${a.outcome === "no-answer" ? a.reason : `${a.outcome} token`}`);
  return {
    kind: "waiting",
    message: `waiting for ${needed - 1 - same.length} more peer(s) to confirm this node's admin token before restate-server starts (${said.join("; ")})`,
  };
}
