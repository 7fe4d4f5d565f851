import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, test } from "vitest";
import type { StatusView } from "../control/domain/lifecycle.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import type { RoutesView } from "../control/objects/routes.ts";
import { CELL_WORKERD, eventually, findChild, useTestMesh } from "./mesh.ts";

/**
 * A bundle whose handler never yields, allocates without bound, or hides a never-yielding timer
 * behind a durable sleep, in the one cell it shares with every bystander: workerd limits none of
 * it, so the watchdog kills the cell's workerd, holds half the bundles at a time until one alone
 * still hangs it, and quarantines that one. The culprit pays, nobody else: no bystander's
 * invocation is killed and every bystander's call succeeds. The time until the culprit is alone
 * is printed.
 */
describe("a bundle that hogs its cell", () => {
  const fx = useTestMesh(
    { greeter: ["greeter"], counter: ["counter"], hog: ["test/fixtures/hog"] },
    { GRIDIRON_WORKERD_HANG_SECONDS: "3", GRIDIRON_WORKERD_MAX_MB: "1024" },
  );

  const outcome = async (id: string) =>
    (await fx.admin.query(`SELECT status, completion_result FROM sys_invocation WHERE id = '${id}'`))[0];

  /** The watchdog's kills of workerd so far. */
  const kills = () => fx.mesh.output.filter((line) => /: workerd .*; killing it/.test(line)).length;

  /**
   * Calls the bystanders one after another until `done` settles; how many counter adds, and the
   * failures. If `done` fails, so does this, once the calls stopped.
   */
  const keepCalling = async (key: string, done: Promise<unknown>) => {
    let finished = false;
    const stop = () => {
      finished = true;
    };
    done.then(stop, stop);
    const failures: string[] = [];
    let adds = 0;
    let greets = 0;
    while (!finished) {
      await Promise.all([
        fx.ingress.call("greeter/greet", key).then(
          () => greets++,
          (error: unknown) => failures.push(`greeter: ${error}`),
        ),
        fx.ingress.call(`counter/${key}/add`).then(
          () => adds++,
          (error: unknown) => failures.push(`counter: ${error}`),
        ),
      ]);
      await sleep(50);
    }
    await done;
    return { adds, greets, failures };
  };

  // The culprit's bundle takes the name of the hog: "brute" sorts before the bystanders, so they
  // are held in turn; "hog" after them, so a calm spell releases it as the one suspect left.
  test.each([
    ["spins forever", "spin", "brute", "1.0.0", /has not answered for \d+ s/],
    ["allocates without bound", "allocate", "hog", "1.0.0", /over GRIDIRON_WORKERD_MAX_MB=1024|has not answered/],
    ["arms a spinning timer, then waits in ctx.sleep", "lurk", "brute", "2.0.0", /has not answered for \d+ s/],
  ])(
    "a handler that %s: its bundle is found alone and quarantined; no bystander's call fails or is killed",
    async (_, handler, bundle, version, reason) => {
      await fx.ingress.call("deployer/greeter/activate", { source: fx.sources.greeter, version: "1.0.0" });
      await fx.ingress.call("deployer/counter/activate", { source: fx.sources.counter, version: "1.0.0" });
      const culprit = await fx.ingress.call<ActivateResult>(`deployer/${bundle}/activate`, {
        source: fx.sources.hog,
        version,
        takeOver: ["hog"],
      });
      const workerd = await findChild(fx.mesh, CELL_WORKERD);
      // A bystander sleeping on workerd (bidirectional: in flight, its stream open) across every kill.
      const sleeper = await fx.ingress.send(`counter/sleeper-${handler}/add`, { delayMs: 20_000 });
      await eventually(async () => expect(await outcome(sleeper)).toMatchObject({ status: "running" }));

      const started = Date.now();
      const attack = await fx.ingress.send(`hog/${handler}`);
      let aloneAfterMs = 0;
      const alone = eventually(async () => {
        const view = await fx.ingress.call<RoutesView>("routes/local/view");
        const build = view.builds.find((b) => b.name === bundle && b.buildId === culprit.buildId);
        expect(build?.refused).toMatch(/hung this cell with no other suspect running/);
        aloneAfterMs = Date.now() - started;
      }, 150_000);
      const killsBefore = kills();
      const calls = await keepCalling(`bystander-${handler}`, alone);
      const killsThen = kills();
      console.log(
        `[limits] ${handler}: ${bundle} alone and quarantined after ${(aloneAfterMs / 1000).toFixed(1)} s and ${killsThen - killsBefore} workerd kills; bystanders meanwhile: ${calls.greets} greets, ${calls.adds} adds, ${calls.failures.length} failed`,
      );

      expect(calls.failures).toEqual([]);
      expect(await fx.ingress.call(`counter/bystander-${handler}/add`)).toBe(calls.adds + 1);
      expect(await fx.ingress.attach(sleeper)).toBe(1);
      const killedBystanders = await fx.admin.query(
        "SELECT id, target FROM sys_invocation WHERE (target LIKE 'counter/%' OR target LIKE 'greeter/%') AND completion_result = 'failure'",
      );
      expect(killedBystanders).toEqual([]);
      expect(await findChild(fx.mesh, CELL_WORKERD)).not.toBe(workerd);
      const said = fx.mesh.output.join("\n");
      expect(said).toMatch(reason);
      if (handler === "lurk") {
        // Its journal says it waits on Restate, so it is not killed; the router refuses its
        // retries (Restate pauses it in the end), so it hangs the cell no more.
        expect(await outcome(attack)).toMatchObject({ status: expect.not.stringMatching(/completed/) });
      } else {
        await eventually(async () => {
          expect(await outcome(attack)).toEqual({ status: "completed", completion_result: "failure" });
        });
        expect(said).toMatch(new RegExp(`invocation ${attack} \\(hog/${handler}\\) was running the culprit's code`));
      }
      // Quarantined: status says why its build is refused, and the cell is killed no more.
      const status = await fx.ingress.call<StatusView>(`deployer/${bundle}/status`);
      expect(status.builds.find((b) => b.buildId === culprit.buildId)?.refused).toMatch(/is quarantined/);
      const metrics = await (await fetch(`${fx.mesh.settings.opsUrl}/metrics`)).text();
      expect(metrics).toMatch(
        new RegExp(`^gridiron_workerd_culprits_total\\{bundle="${bundle}",cell="0"\\} [12]$`, "m"),
      );
      await sleep(8_000);
      expect(kills()).toBe(killsThen);
      expect(await fx.ingress.call("greeter/greet", "still")).toMatch(/^Hello, still! /);
    },
    240_000,
  );
});
