import { describe, expect, test } from "vitest";
import { eventually, findChild, useTestMesh } from "./mesh.ts";

/**
 * A bundle whose handler never yields, or allocates without bound: workerd itself limits
 * neither, so the supervisor's watchdog kills workerd, and then the invocation behind it.
 */
describe("a bundle that hogs workerd", () => {
  const fx = useTestMesh(
    { greeter: ["greeter"], counter: ["counter"], hog: ["test/fixtures/hog"] },
    { GRIDIRON_WORKERD_HANG_SECONDS: "3", GRIDIRON_WORKERD_MAX_MB: "1024" },
  );

  const outcome = async (id: string) =>
    (await fx.admin.query(`SELECT status, completion_result FROM sys_invocation WHERE id = '${id}'`))[0];

  test.each([
    ["never yields", "spin", /has not answered for \d+ s/],
    ["allocates without bound", "allocate", /over GRIDIRON_WORKERD_MAX_MB=1024/],
  ])(
    "a handler that %s is killed, a call sleeping meanwhile completes, and every other build serves again",
    async (_, handler, reason) => {
      await fx.ingress.call("deployer/greeter/activate", { source: fx.sources.greeter, version: "1.0.0" });
      await fx.ingress.call("deployer/counter/activate", { source: fx.sources.counter, version: "1.0.0" });
      await fx.ingress.call("deployer/hog/activate", { source: fx.sources.hog, version: "1.0.0" });
      const workerd = await findChild(fx.mesh, "/workerd ");
      // A bystander: a bidirectional call sleeping on workerd (in flight, its stream open) across both kills.
      const sleeper = await fx.ingress.send(`counter/${handler}/add`, { delayMs: 25_000 });
      await eventually(async () => expect(await outcome(sleeper)).toMatchObject({ status: "running" }));

      const hog = await fx.ingress.send(`hog/${handler}`);
      await eventually(async () => {
        expect(await outcome(hog)).toEqual({ status: "completed", completion_result: "failure" });
      }, 60_000);
      expect(await outcome(sleeper)).toMatchObject({ status: expect.not.stringMatching(/completed/) });
      expect(await fx.ingress.attach(sleeper)).toBe(1);

      expect(await fx.ingress.call("greeter/greet", "still")).toMatch(/^Hello, still! /);
      expect(await findChild(fx.mesh, "/workerd ")).not.toBe(workerd);
      const said = fx.mesh.output.join("\n");
      expect(said).toMatch(reason);
      expect(said).toMatch(
        new RegExp(`invocation ${hog} \\(hog/${handler}\\) was running at 2 workerd kills in a row`),
      );
    },
    90_000,
  );
});
