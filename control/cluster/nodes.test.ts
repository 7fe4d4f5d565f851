import { describe, expect, it } from "vitest";
import { lagging, type PeerState, servingNodes } from "./nodes.ts";

const states: PeerState[] = [
  {
    peer: { name: "n1", address: "10.0.0.1" },
    report: { node: "n1", builds: ["greeter@1.0.0-a", "counter@2.0.0-b"], caughtUp: true },
  },
  { peer: { name: "n2", address: "10.0.0.2" }, report: { node: "n2", builds: ["greeter@1.0.0-a"], caughtUp: true } },
  { peer: { name: "n3", address: "10.0.0.3" }, report: undefined },
];

describe("lagging", () => {
  it("names the nodes that answer but do not serve the build; a node that does not answer is not waited for", () => {
    expect(lagging(states, { name: "counter", buildId: "2.0.0-b" })).toEqual(["n2"]);
    expect(lagging(states, { name: "greeter", buildId: "1.0.0-a" })).toEqual([]);
  });

  it("does not take another bundle's build of the same id for this one's", () => {
    expect(lagging(states, { name: "other", buildId: "1.0.0-a" })).toEqual(["n1", "n2"]);
  });

  it("for a build that was unrouted, names the nodes that still serve it", () => {
    expect(lagging(states, { name: "counter", buildId: "2.0.0-b" }, "gone")).toEqual(["n1"]);
    expect(lagging(states, { name: "other", buildId: "1.0.0-a" }, "gone")).toEqual([]);
  });
});

describe("servingNodes", () => {
  it("lists, by build id of one bundle, the nodes serving it", () => {
    expect(servingNodes(states, "greeter")).toEqual({ "1.0.0-a": ["n1", "n2"] });
    expect(servingNodes(states, "counter")).toEqual({ "2.0.0-b": ["n1"] });
    expect(servingNodes(states, "absent")).toEqual({});
  });
});
