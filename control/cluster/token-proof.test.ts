import { describe, expect, it } from "vitest";
import { sameToken, type TokenAnswer, tokenProof, tokenStep } from "./token-proof.ts";

const same = (peer: string): TokenAnswer => ({ peer, outcome: "same" });
const differs = (peer: string): TokenAnswer => ({ peer, outcome: "differs" });
const silent = (peer: string): TokenAnswer => ({ peer, outcome: "no-answer", reason: "connect ECONNREFUSED" });
const NONCE = "ab".repeat(32);

describe("a token proof", () => {
  it("matches only for the same token, the same two nodes in the same roles, and the same nonce", () => {
    const proof = tokenProof("t0ken", "n1", "n2", NONCE);
    expect(sameToken(proof, tokenProof("t0ken", "n1", "n2", NONCE))).toBe(true);
    for (const other of [
      tokenProof("other", "n1", "n2", NONCE),
      tokenProof("t0ken", "n2", "n1", NONCE),
      tokenProof("t0ken", "n1", "n3", NONCE),
      tokenProof("t0ken", "n1", "n2", "cd".repeat(32)),
    ]) {
      expect(sameToken(proof, other)).toBe(false);
    }
  });

  it("does not show the token", () => {
    expect(tokenProof("t0ken", "n1", "n2", NONCE)).not.toContain(Buffer.from("t0ken").toString("hex"));
  });

  it("of another length is not the same (and does not throw)", () => {
    expect(sameToken("ab", tokenProof("t0ken", "n1", "n2", NONCE))).toBe(false);
  });
});

describe("whether a cluster node's admin token is the cluster's", () => {
  it("is confirmed once a majority, this node counted, holds it", () => {
    expect(tokenStep([same("n2"), silent("n3")], 3)).toEqual({ kind: "confirmed", by: ["n2"] });
    expect(tokenStep([same("n1"), differs("n3")], 3)).toEqual({ kind: "confirmed", by: ["n1"] });
    expect(tokenStep([same("n1"), same("n2"), silent("n4"), silent("n5")], 5).kind).toBe("confirmed");
  });

  it("is confirmed at once alone in a cluster of one", () => {
    expect(tokenStep([], 1)).toEqual({ kind: "confirmed", by: [] });
  });

  it("is refused, naming the peers, once the others proved a token a majority then holds", () => {
    const step = tokenStep([differs("n1"), differs("n2")], 3);
    expect(step.kind).toBe("refused");
    expect(step.kind === "refused" && step.message).toMatch(
      /^n1, n2 refused this node's admin token: .*mutual TLS.*same GRIDIRON_ADMIN_TOKEN.*leads no partition/,
    );
    expect(tokenStep([differs("n1"), differs("n2"), differs("n4"), silent("n5")], 5).kind).toBe("refused");
  });

  it("waits while nobody answers, saying so: a cold cluster's peers may not have started yet", () => {
    const step = tokenStep([silent("n1"), silent("n2")], 3);
    expect(step.kind).toBe("waiting");
    expect(step.kind === "waiting" && step.message).toMatch(
      /waiting for 1 more peer\(s\) to confirm .* \(n1: connect ECONNREFUSED; n2: connect ECONNREFUSED\)/,
    );
  });

  it("waits rather than stop on one refusal a majority may yet outvote", () => {
    // n3 with a wrong token up first, n2 not yet: n1 must not stop because n3 differs.
    expect(tokenStep([silent("n2"), differs("n3")], 3).kind).toBe("waiting");
    expect(tokenStep([differs("n1"), differs("n2"), silent("n4"), silent("n5")], 5).kind).toBe("waiting");
  });

  it("in a cluster of two, stops both nodes of different tokens: neither can tell which is right", () => {
    expect(tokenStep([differs("n2")], 2).kind).toBe("refused");
    expect(tokenStep([silent("n2")], 2).kind).toBe("waiting");
  });
});
