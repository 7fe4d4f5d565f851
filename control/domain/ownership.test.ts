import { describe, expect, test } from "vitest";
import { testBuild } from "./build.fixture.ts";
import { claim, type RoutedBuild, release, reservedProblem } from "./ownership.ts";

function routed(name: string, buildId: string, services: string[]): RoutedBuild {
  return { ...testBuild(name, buildId), services };
}

describe("reservedProblem", () => {
  test.each(["deployer", "routes", "bundles", "cluster", "Deployer", "gridiron", "gridiron-admin", "GridironMetrics"])(
    "%s is the control plane's",
    (name) => expect(reservedProblem(name)).toMatch(/reserved for Gridiron's control plane/),
  );
  test.each(["greeter", "counter", "my-deployer", "route"])("%s is free", (name) =>
    expect(reservedProblem(name)).toBeUndefined(),
  );
});

describe("claim", () => {
  const greeter = routed("greeter", "1.0.0-aaa", ["greeter"]);

  test("a free service goes to the claiming bundle; its own again is fine", () => {
    const first = claim({}, [], greeter, []);
    expect(first).toEqual({ owners: { greeter: "greeter" }, takenOver: [] });
    const again = claim({ greeter: "greeter" }, [greeter], routed("greeter", "2.0.0-bbb", ["greeter", "hi"]), []);
    expect(again).toEqual({ owners: { greeter: "greeter", hi: "greeter" }, takenOver: [] });
  });

  test("another bundle's service is refused, naming the owner and its build", () => {
    const result = claim({ greeter: "greeter" }, [greeter], routed("alpha", "1.0.0-ccc", ["tool", "greeter"]), []);
    expect(result).toEqual({
      error:
        'service "greeter" belongs to bundle greeter, build 1.0.0-aaa; to move it to bundle alpha, activate with "takeOver": ["greeter"]',
    });
  });

  test("takeOver moves a named service and records where from", () => {
    const result = claim({ greeter: "greeter" }, [greeter], routed("alpha", "1.0.0-ccc", ["greeter"]), ["greeter"]);
    expect(result).toEqual({ owners: { greeter: "alpha" }, takenOver: [{ service: "greeter", from: "greeter" }] });
  });

  test("reserved names are refused even with takeOver", () => {
    const result = claim({}, [], routed("evil", "1.0.0-ddd", ["deployer"]), ["deployer"]);
    expect(result).toEqual({ error: expect.stringMatching(/"deployer" is reserved/) });
  });
});

describe("release", () => {
  test("a service stays with its bundle while another of its routed builds declares it", () => {
    const v1 = routed("greeter", "1.0.0-aaa", ["greeter", "old"]);
    const v2 = routed("greeter", "2.0.0-bbb", ["greeter"]);
    expect(release({ greeter: "greeter", old: "greeter" }, [v2], v1)).toEqual({ greeter: "greeter" });
  });

  test("a service taken over goes back to the bundle it was taken from when the taker's build goes", () => {
    const original = routed("greeter", "1.0.0-aaa", ["greeter"]);
    const taker = routed("alpha", "1.0.0-ccc", ["greeter"]);
    expect(release({ greeter: "alpha" }, [original], taker)).toEqual({ greeter: "greeter" });
  });

  test("a service whose owner moved on is left with its new owner", () => {
    const original = routed("greeter", "1.0.0-aaa", ["greeter"]);
    expect(release({ greeter: "alpha" }, [routed("alpha", "1.0.0-ccc", ["greeter"])], original)).toEqual({
      greeter: "alpha",
    });
  });
});
