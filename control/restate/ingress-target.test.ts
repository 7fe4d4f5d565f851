import { describe, expect, test } from "vitest";
import { controlPlaneTarget, isPublic } from "./ingress-target.ts";

describe("controlPlaneTarget", () => {
  test.each([
    ["/deployer/greeter/activate", { service: "deployer", handler: "activate" }],
    ["/deployer/greeter/activate/send", { service: "deployer", handler: "activate" }],
    ["/deployer/greeter/activate?x=1", { service: "deployer", handler: "activate" }],
    ["/deployer/gr%65eter/prune", { service: "deployer", handler: "prune" }],
    ["/restate/call/deployer/greeter/rollback", { service: "deployer", handler: "rollback" }],
    ["/restate/send/routes/local/add", { service: "routes", handler: "add" }],
    ["/restate/scope/s1/send/deployer/greeter/activate", { service: "deployer", handler: "activate" }],
    ["/cluster/nodes", { service: "cluster", handler: "nodes" }],
    ["/deployer/greeter", { service: "deployer", handler: "" }],
  ])("%s is a call to the control plane", (path, target) => {
    expect(controlPlaneTarget(path)).toEqual(target);
  });

  test.each([
    "/greeter/greet",
    "/counter/deployer/activate",
    "/Deployer/greeter/activate",
    "/%64eployer/greeter/activate",
    "//deployer/greeter/activate",
    "/restate/health",
    "/restate/invocation/inv_1/attach",
    "/restate/invocation/deployer/greeter/activate/key/attach",
    "/restate/workflow/deployer/greeter/attach",
    "/restate/awakeables/a1/resolve",
    "/restate/call/greeter/greet",
    "/constructor/x/y",
    "/__proto__/x/y",
    "/",
    "",
  ])("%s is not", (path) => {
    expect(controlPlaneTarget(path)).toBeUndefined();
  });
});

describe("isPublic", () => {
  test("reads are public, everything else of the control plane needs the token", () => {
    expect(isPublic({ service: "deployer", handler: "status" })).toBe(true);
    expect(isPublic({ service: "deployer", handler: "secretsKey" })).toBe(true);
    expect(isPublic({ service: "cluster", handler: "nodes" })).toBe(true);
    expect(isPublic({ service: "deployer", handler: "activate" })).toBe(false);
    expect(isPublic({ service: "deployer", handler: "checkDrain" })).toBe(false);
    expect(isPublic({ service: "deployer", handler: "" })).toBe(false);
    expect(isPublic({ service: "routes", handler: "view" })).toBe(false);
    expect(isPublic({ service: "bundles", handler: "manifest" })).toBe(false);
  });
});
