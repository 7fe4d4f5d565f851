import { describe, expect, test } from "vitest";
import type { StatusView } from "../control/domain/lifecycle.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { gridironOf } from "./cli.ts";
import { useTestMesh } from "./mesh.ts";

const PROJECT = "test/fixtures/configured";

/** A build runs with what its wrangler config says: compatibility date and flags, and vars. */
describe("vars and compatibility settings", () => {
  const fx = useTestMesh({ greeter: ["greeter"] });

  const gridiron = gridironOf(() => fx.mesh);
  const deploy = async (args: string[]) => {
    const shown = await gridiron(["--json", "deploy", PROJECT, ...args]);
    expect(shown.exitCode, shown.stderr).toBe(0);
    return JSON.parse(shown.stdout) as ActivateResult;
  };
  const status = (name: string) => fx.ingress.call<StatusView>(`deployer/${name}/status`);

  test("gridiron deploy passes the wrangler config's vars, date and flags; a handler sees them in env", async () => {
    const first = await deploy([]);
    expect(await fx.ingress.call("configured/env")).toEqual({
      GREETING: "hi",
      LIMITS: { calls: 3, names: ["a", "b"] },
      others: [],
      // no_global_navigator took effect: at the mesh's default settings navigator is an object.
      navigator: "undefined",
    });
    const view = (await status("configured")).builds.find((b) => b.buildId === first.buildId);
    expect(view?.vars).toEqual({ GREETING: "hi", LIMITS: { calls: 3, names: ["a", "b"] } });

    // [env.staging] replaces the vars, as in wrangler: another build of the same bundle, of the
    // same version, which the CLI points out.
    const staging = await gridiron(["deploy", PROJECT, "--env", "staging", "--name", "configured"]);
    expect(staging.exitCode, staging.stderr).toBe(0);
    expect(staging.stderr).toContain(`was deployed before as build ${first.buildId}; this is another build`);
    expect((await status("configured")).active).not.toBe(first.buildId);
    expect(await fx.ingress.call("configured/env")).toMatchObject({ GREETING: "hi from staging", others: [] });
  }, 180_000);

  test("activate takes vars for scripts; different vars make a different build, the same vars the same one", async () => {
    const activate = (vars?: object) =>
      fx.ingress.call<ActivateResult>("deployer/greeter/activate", {
        source: fx.sources.greeter,
        version: "1.0.0",
        ...(vars ? { vars } : {}),
      });
    const plain = await activate();
    const withVars = await activate({ MODE: "blue" });
    expect(withVars.buildId).not.toBe(plain.buildId);
    expect((await activate({ MODE: "blue" })).buildId).toBe(withVars.buildId);
  });

  test.each([
    ["a bad var name", { "not-a-name": "x" }, /"not-a-name" is not a var name/],
    ["vars over the loader's limit", { BIG: "x".repeat(1024 * 1024) }, /over 1 MiB as JSON/],
  ])("%s is a 400 that changes nothing", async (_, vars, message) => {
    const before = await status("greeter");
    const attempt = fx.ingress.call("deployer/greeter/activate", {
      source: fx.sources.greeter,
      version: "3.0.0",
      vars,
    });
    await expect(attempt).rejects.toMatchObject({ status: 400 });
    await expect(attempt).rejects.toThrow(message);
    expect(await status("greeter")).toEqual(before);
  });
});
