import { describe, expect, it } from "vitest";
import { catchUpStep, type PeerAttempt, quorum } from "./catch-up.ts";

const served = (peer: string): PeerAttempt => ({ peer, outcome: "served" });
/** A 401 over plain HTTP, which anyone on the path could have sent. */
const unauthorized = (peer: string): PeerAttempt => ({ peer, outcome: "failed", reason: "401", alive: true });
const down = (peer: string): PeerAttempt => ({ peer, outcome: "failed", reason: "fetch failed", alive: false });
const failing = (peer: string): PeerAttempt => ({ peer, outcome: "failed", reason: "timed out", alive: true });

describe("whether a starting cluster node may start restate-server", () => {
  it("starts once a peer served it what the cluster routes", () => {
    expect(catchUpStep([unauthorized("n1"), served("n3")], 3, true)).toEqual({ kind: "caught-up", from: "n3" });
  });

  it("takes a 401 for a failure like any other: only the token check over mutual TLS refuses a token", () => {
    expect(catchUpStep([unauthorized("n1"), unauthorized("n3")], 3, true)).toEqual({ kind: "retry" });
    expect(catchUpStep([unauthorized("n1"), down("n3")], 3, true).kind).toBe("start-as-before");
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
