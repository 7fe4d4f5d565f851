import { describe, expect, test } from "vitest";
import { testBuild } from "./build.fixture.ts";
import type { RoutedBuild } from "./ownership.ts";
import { afterChange } from "./route-changes.ts";

const routed = (name: string, buildId = "1.0.0-a"): RoutedBuild => ({ ...testBuild(name, buildId), services: [name] });
const served = { revision: 4, builds: [routed("a"), routed("b")] };

describe("afterChange", () => {
  test("the next revision's change is applied: a build added last, one routed again in its place, one removed", () => {
    expect(afterChange(served, { revision: 5, routed: routed("c") })?.builds).toEqual([...served.builds, routed("c")]);
    const again = { ...routed("a"), manifest: { contentType: "x", body: "{}" } };
    expect(afterChange(served, { revision: 5, routed: again })).toEqual({ revision: 5, builds: [again, routed("b")] });
    expect(afterChange(served, { revision: 5, removed: { name: "a", buildId: "1.0.0-a" } })).toEqual({
      revision: 5,
      builds: [routed("b")],
    });
  });

  test("a change as old as what is served, or older, leaves it as it is", () => {
    expect(afterChange(served, { revision: 4 })).toBe(served);
    expect(afterChange(served, { revision: 2, routed: routed("c") })).toBe(served);
  });

  test("after a missed revision, or with nothing served yet, the routes must be read", () => {
    expect(afterChange(served, { revision: 6, routed: routed("c") })).toBeUndefined();
    expect(afterChange(undefined, { revision: 1, routed: routed("c") })).toBeUndefined();
    expect(afterChange(served, { revision: 5 })).toBeUndefined();
  });
});
