import { describe, expect, it } from "vitest";
import { catchUpStep, type PeerAttempt, quorum } from "./catch-up.ts";

const served = (peer: string): PeerAttempt => ({ peer, outcome: "served" });
const refused = (peer: string): PeerAttempt => ({ peer, outcome: "refused" });
const down = (peer: string): PeerAttempt => ({ peer, outcome: "failed", reason: "fetch failed", alive: false });
const failing = (peer: string): PeerAttempt => ({ peer, outcome: "failed", reason: "timed out", alive: true });

describe("whether a starting cluster node may start restate-server", () => {
  it("starts once a peer served it what the cluster routes", () => {
    expect(catchUpStep([refused("n1"), served("n3")], 3, true)).toEqual({ kind: "caught-up", from: "n3" });
  });

  it("stops, naming the peers, when its token is refused, and not only once time is up", () => {
    for (const attempts of [
      [refused("n1"), down("n3")],
      [failing("n1"), refused("n3")],
    ]) {
      const step = catchUpStep(attempts, 3, true);
      expect(step.kind).toBe("stop");
      expect(step.kind === "stop" && step.message).toMatch(
        /refused this node's admin token \(401\).*GRIDIRON_ADMIN_TOKEN/,
      );
    }
  });

  it("a 401 is never taken for 'no peer answered'", () => {
    expect(catchUpStep([refused("n1"), refused("n3")], 3, false).kind).toBe("stop");
  });

  it("waits while the other nodes can run the cluster without it, then stops rather than lead unready", () => {
    expect(catchUpStep([failing("n1"), failing("n3")], 3, true)).toEqual({ kind: "retry" });
    const step = catchUpStep([failing("n1"), failing("n3")], 3, false);
    expect(step.kind).toBe("stop");
    expect(step.kind === "stop" && step.message).toMatch(/could not catch up from n1, n3.*Not starting restate-server/);
  });

  it("starts with what it served before only when the cluster needs it for a majority", () => {
    expect(catchUpStep([down("n1"), down("n3")], 3, true).kind).toBe("start-as-before");
    expect(catchUpStep([failing("n1"), down("n3")], 3, true).kind).toBe("start-as-before");
    expect(catchUpStep([failing("n1"), failing("n2"), down("n4"), down("n5")], 5, true).kind).toBe("start-as-before");
    expect(catchUpStep([failing("n1"), failing("n2"), failing("n4"), down("n5")], 5, true).kind).toBe("retry");
  });

  it("counts a majority of the whole cluster", () => {
    expect([1, 2, 3, 4, 5].map(quorum)).toEqual([1, 2, 2, 3, 3]);
  });
});
