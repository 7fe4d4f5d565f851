/**
 * Whether a cluster node may start its restate-server: the decision, apart from the asking, so
 * it can be tested on its own. A node that leads a partition runs that partition's calls on its
 * own workerd, so it must serve every routed build first. (Whether its admin token is the
 * cluster's was settled before, by proofs over mutual TLS: token-proof.ts. A 401 here comes over
 * plain HTTP, which anyone on the path could forge, so it is only a failure like any other.)
 */

/** What trying to catch up from one peer gave. */
export type PeerAttempt =
  | { peer: string; outcome: "served" }
  /** Anything else; `alive` says whether the peer's restate-server answers at all. */
  | { peer: string; outcome: "failed"; reason: string; alive: boolean };

export type CatchUpStep =
  | { kind: "caught-up"; from: string }
  /** Start restate-server with the builds served before: the cluster cannot serve without this node. */
  | { kind: "start-as-before"; why: string }
  | { kind: "retry" }
  /** Do not start restate-server; the node stops with this message. */
  | { kind: "stop"; message: string };

/** Restate's replicated metadata needs a majority of the cluster's nodes. */
export const quorum = (clusterSize: number) => Math.floor(clusterSize / 2) + 1;

/**
 * The next step after one round of attempts, one per other node of a cluster of `clusterSize`.
 * Without a peer that serves, the node waits only while the other nodes are enough to run the
 * cluster without it (then they will answer once their leaders settle); if they are not, nothing
 * can have changed since this node last served, and the cluster needs it up to form a majority.
 */
export function catchUpStep(attempts: PeerAttempt[], clusterSize: number, timeLeft: boolean): CatchUpStep {
  const served = attempts.find((a) => a.outcome === "served");
  if (served) return { kind: "caught-up", from: served.peer };
  const alive = attempts.filter((a) => a.outcome === "failed" && a.alive).map((a) => a.peer);
  if (alive.length < quorum(clusterSize)) {
    return {
      kind: "start-as-before",
      why: `${alive.length} of the ${attempts.length} other node(s) run, too few for a cluster of ${clusterSize} without this one`,
    };
  }
  if (timeLeft) return { kind: "retry" };
  const reasons = attempts.map((a) => `${a.peer}: ${a.outcome === "failed" ? a.reason : a.outcome}`);
  return {
    kind: "stop",
    message: `could not catch up from ${alive.join(", ")}, which run the cluster (${reasons.join("; ")}). Not starting restate-server, so this node leads no partition with builds it lacks; start it again once they answer`,
  };
}
