import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import type { StatusView } from "../control/domain/lifecycle.ts";
import { DEFAULT_AUTO } from "../control/domain/rollout.ts";
import { parseSplit, toCanary } from "../control/node/workerd/router/split.js";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { gridironOf } from "./cli.ts";
import { IngressError } from "./ingress.ts";
import { deployerExits, eventually, useTestMesh } from "./mesh.ts";
import { answersOf, bounds, pool } from "./sample.ts";

const POLL_S = 1;
const GRACE_S = 2;

/** Gradual rollouts on a real one-node mesh: split deployments, affinity, promote and abort. */
describe("gradual rollouts", () => {
  const fx = useTestMesh(
    {
      counterV1: ["counter"],
      counterV2: ["counter", { STEP: "10" }],
      counterV3: ["counter", { STEP: "100" }],
      greeterV1: ["greeter"],
      greeterV2: ["greeter", { GREETING: '"Howdy"' }],
      shapeV1: ["test/fixtures/shape"],
      shapeV2: ["test/fixtures/shape", { OBJECT: "false" }],
      flakyFixed: ["test/fixtures/flaky", { BROKEN: "false" }],
      flakyBroken: ["test/fixtures/flaky"],
    },
    {
      GRIDIRON_DRAIN_POLL_SECONDS: String(POLL_S),
      GRIDIRON_DRAIN_GRACE_SECONDS: String(GRACE_S),
      // The last test kills the deployer right after a step (crash-switch.ts).
      GRIDIRON_CRASH_POINTS: "true",
    },
  );

  const activate = (name: string, source: string | undefined, extra: Record<string, unknown> = {}) =>
    fx.ingress.call<ActivateResult>(`deployer/${name}/activate`, { source, version: "1.0.0", ...extra });
  const status = (name: string) => fx.ingress.call<StatusView>(`deployer/${name}/status`);
  const add = (key: string, body?: unknown) => fx.ingress.call<number>(`counter/${key}/add`, body);
  const ops = async (path: string) => (await fetch(`${fx.mesh.settings.opsUrl}${path}`)).text();
  const deployments = async () =>
    (await fx.admin.query("SELECT id FROM sys_deployment")).map((row) => row.id as string).sort();
  const latestFor = async (service: string) =>
    (await fx.admin.query(`SELECT deployment_id FROM sys_service WHERE name = '${service}'`))[0]?.deployment_id;
  const pinnedTo = async (id: string) =>
    (await fx.admin.query(`SELECT pinned_deployment_id FROM sys_invocation_status WHERE id = '${id}'`))[0]
      ?.pinned_deployment_id;

  let stable: ActivateResult;
  let canary: ActivateResult;
  /** Each key's count after the affinity test: 5 on the stable build, 50 on the canary. */
  const counts = new Map<string, number>();

  test("a 10% step sends a share of keys inside the binomial 99.999% bounds to the canary", async () => {
    stable = await activate("counter", fx.sources.counterV1);
    canary = await activate("counter", fx.sources.counterV2, { version: "2.0.0", percent: 10 });
    expect(canary.rollout).toEqual({ stable: stable.buildId, percent: 10 });
    expect(parseSplit(canary.uri.split("/").at(-1) ?? "")).toEqual({
      stable: stable.buildId,
      canary: canary.buildId,
      percent: 10,
    });
    expect(await latestFor("counter")).toBe(canary.deploymentId);

    const results = await pool([...Array(1000).keys()], 16, (i) => add(`share-${i}`));
    expect(results.every((r) => r === 1 || r === 10)).toBe(true);
    const toCanaryCount = results.filter((r) => r === 10).length;
    const [low, high] = bounds(1000, 0.1);
    expect(toCanaryCount).toBeGreaterThanOrEqual(low);
    expect(toCanaryCount).toBeLessThanOrEqual(high);

    const view = await status("counter");
    expect(view.active).toBe(stable.buildId);
    expect(view.builds.find((b) => b.buildId === canary.buildId)?.state).toBe("canary");
    expect(view.rollout).toMatchObject({ stable: stable.buildId, canary: canary.buildId, percent: 10 });
    await eventually(async () =>
      expect(await ops("/metrics")).toContain(
        `gridiron_rollout_percent{bundle="counter",stable="${stable.buildId}",canary="${canary.buildId}"} 10`,
      ),
    );
    expect(await ops("/")).toContain('data-rollout="10"');
  }, 180_000);

  test("200 keys called 5 times each never change build within a step", async () => {
    const keys = [...Array(200).keys()].map((i) => `sticky-${i}`);
    for (let round = 0; round < 5; round++) await pool(keys, 16, (key) => add(key));
    for (const key of keys) counts.set(key, await fx.ingress.call<number>(`counter/${key}/get`));
    // A key that changed build even once would have a count between 5 and 50.
    expect([...counts.values()].every((c) => c === 5 || c === 50)).toBe(true);
    const onCanary = [...counts.values()].filter((c) => c === 50).length;
    const [low, high] = bounds(200, 0.1);
    expect(onCanary).toBeGreaterThanOrEqual(low);
    expect(onCanary).toBeLessThanOrEqual(high);
  }, 180_000);

  test("a call sleeping across a ramp change finishes on its build; raising the share never moves a key back", async () => {
    const split10 = canary.deploymentId;
    // A key the 10% split sends to the stable build and the 50% split to the canary.
    const split = { stable: stable.buildId, canary: canary.buildId };
    const moving = [...Array(1000).keys()]
      .map((i) => `moving-${i}`)
      .find((key) => !toCanary({ ...split, percent: 10 }, key) && toCanary({ ...split, percent: 50 }, key));
    expect(moving).toBeDefined();
    const sleeping = await fx.ingress.send(`counter/${moving}/add`, { delayMs: 4_000 });
    await eventually(async () => expect(await pinnedTo(sleeping)).toBe(split10));

    const ramped = await fx.ingress.call<ActivateResult>("deployer/counter/rollout", { percent: 50 });
    expect(ramped.deploymentId).not.toBe(split10);
    expect(await latestFor("counter")).toBe(ramped.deploymentId);
    expect(await fx.ingress.attach(sleeping)).toBe(1);
    expect(await add(moving as string)).toBe(11);

    // Every key on the canary at 10% is on it at 50%.
    const keys = [...counts.keys()];
    const after = await pool(keys, 16, (key) => add(key));
    const steps = keys.map((key, i) => (after[i] as number) - (counts.get(key) as number));
    expect(steps.every((step) => step === 1 || step === 10)).toBe(true);
    expect(keys.filter((key, i) => counts.get(key) === 50 && steps[i] !== 10)).toEqual([]);
    // The 10% split drains and is pruned; Restate forgets its deployment.
    await eventually(async () => expect(await deployments()).not.toContain(split10), 30_000);
    // The deployer records the split pruned just after Restate forgets its deployment.
    await eventually(async () => expect((await status("counter")).rollout?.splits.map((s) => s.percent)).toEqual([50]));
  }, 180_000);

  test("promote makes the canary the active build; the stable build and the split drain and are pruned", async () => {
    const split50 = (await status("counter")).rollout?.deploymentId;
    // A call the 50% split sends to the stable build, still sleeping when the canary is promoted.
    const split = { stable: stable.buildId, canary: canary.buildId, percent: 50 };
    const onStable = [...Array(100).keys()].map((i) => `held-${i}`).find((key) => !toCanary(split, key)) as string;
    const sleeping = await fx.ingress.send(`counter/${onStable}/add`, { delayMs: 5_000 });
    await eventually(async () => expect(await pinnedTo(sleeping)).toBe(split50));
    const promoted = await fx.ingress.call<ActivateResult>("deployer/counter/promote");
    expect(promoted.buildId).toBe(canary.buildId);
    expect(await latestFor("counter")).toBe(promoted.deploymentId);
    expect(await add("after-promote")).toBe(10);
    const view = await status("counter");
    expect(view.active).toBe(canary.buildId);
    expect(view.rollout).toBeUndefined();
    // The stable build cannot be pruned while the draining split still sends that call to it.
    const prune = fx.ingress.call("deployer/counter/prune", { buildId: stable.buildId });
    await expect(prune).rejects.toMatchObject({ status: 409 });
    await expect(prune).rejects.toThrow(/through a rollout's split that is draining/);
    expect(await fx.ingress.attach(sleeping)).toBe(1);
    await eventually(async () => {
      expect(await deployments()).not.toContain(split50);
      const builds = (await status("counter")).builds;
      expect(builds.find((b) => b.buildId === stable.buildId)?.state).toBe("pruned");
    }, 40_000);
    canary = promoted;
  }, 120_000);

  test("abort: the stable build takes every new call; a call pinned to the canary finishes on it; the canary is pruned", async () => {
    const v3 = await activate("counter", fx.sources.counterV3, { version: "3.0.0", percent: 50 });
    const split = { stable: canary.buildId, canary: v3.buildId, percent: 50 };
    const keys = [...Array(100).keys()].map((i) => `abort-${i}`);
    const onCanary = keys.find((key) => toCanary(split, key)) as string;
    const sleeping = await fx.ingress.send(`counter/${onCanary}/add`, { delayMs: 4_000 });
    await eventually(async () => expect(await pinnedTo(sleeping)).toBe(v3.deploymentId));

    const aborted = await fx.ingress.call<ActivateResult>("deployer/counter/abort");
    expect(aborted.buildId).toBe(canary.buildId);
    expect(await latestFor("counter")).toBe(canary.deploymentId);
    expect(await fx.ingress.attach(sleeping)).toBe(100);
    const results = await pool(keys, 16, (key) => add(key));
    expect(results.every((r, i) => r === (keys[i] === onCanary ? 110 : 10))).toBe(true);

    await eventually(async () => {
      expect(await deployments()).not.toContain(v3.deploymentId);
      const builds = (await status("counter")).builds;
      expect(builds.find((b) => b.buildId === v3.buildId)).toMatchObject({ state: "pruned" });
    }, 40_000);
    const history = (await status("counter")).builds.find((b) => b.buildId === v3.buildId)?.history;
    expect(history?.map((h) => h.event)).toEqual(["rolled out", "aborted", "pruned"]);
    await eventually(async () => {
      const metrics = await ops("/metrics");
      expect(metrics).toContain('gridiron_rollout_aborts_total{bundle="counter"} 1');
      expect(metrics).toContain('gridiron_rollout_steps_total{bundle="counter"} 3');
      expect(metrics).not.toMatch(/^gridiron_rollout_percent\{bundle="counter"/m);
    });
  }, 120_000);

  test("a service without keys is split by invocation id, inside the binomial bounds", async () => {
    await activate("greeter", fx.sources.greeterV1);
    await activate("greeter", fx.sources.greeterV2, { version: "2.0.0", percent: 50 });
    const results = await pool([...Array(200).keys()], 16, () => fx.ingress.call<string>("greeter/greet", "x"));
    const howdy = results.filter((r) => r.startsWith("Howdy")).length;
    const [low, high] = bounds(200, 0.5);
    expect(howdy).toBeGreaterThanOrEqual(low);
    expect(howdy).toBeLessThanOrEqual(high);
  }, 120_000);

  test("builds of another shape cannot share calls: 400 naming the difference, and nothing changed", async () => {
    await activate("shape", fx.sources.shapeV1);
    const before = { status: await status("shape"), deployments: await deployments() };
    const refused = activate("shape", fx.sources.shapeV2, { version: "2.0.0", percent: 10 });
    await expect(refused).rejects.toThrow(IngressError);
    await expect(refused).rejects.toMatchObject({ status: 400 });
    await expect(refused).rejects.toThrow(/shape is a virtual_object on the stable build, a service on the canary/);
    expect(await status("shape")).toEqual(before.status);
    expect(await deployments()).toEqual(before.deployments);
  }, 120_000);

  test("--auto aborts a canary whose calls fail, judged by the builds' outcomes; no call is lost", async () => {
    await activate("flaky", fx.sources.flakyFixed);
    const broken = await activate("flaky", fx.sources.flakyBroken, {
      version: "2.0.0",
      percent: 50,
      auto: { ...DEFAULT_AUTO, steps: [50], intervalSeconds: 2, minCalls: 3 },
    });
    // Every call that lands on the broken canary fails twice and pauses (the fixture's retry policy).
    const calls = answersOf([...Array(30).keys()].map(() => fx.ingress.call<string>("flaky/run")));
    await eventually(async () => {
      const view = await status("flaky");
      expect(view.rollout).toBeUndefined();
      const canary = view.builds.find((b) => b.buildId === broken.buildId);
      expect(canary?.history?.map((h) => h.event)).toContain("aborted");
    }, 90_000);
    // Paused calls pinned to the aborted canary move to the stable build and finish there.
    await fx.ingress.call("deployer/flaky/resumePaused");
    expect(await calls).toEqual(Array(30).fill("fixed"));
  }, 180_000);

  test("rollout, promote and abort without a rollout are 409s; a rollout refuses a plain deploy", async () => {
    await expect(fx.ingress.call("deployer/shape/promote")).rejects.toMatchObject({ status: 409 });
    await expect(fx.ingress.call("deployer/shape/abort")).rejects.toMatchObject({ status: 409 });
    await expect(fx.ingress.call("deployer/shape/rollout", { percent: 20 })).rejects.toMatchObject({ status: 409 });
    await expect(activate("greeter", fx.sources.greeterV1)).rejects.toMatchObject({ status: 409 });
    await expect(fx.ingress.call("deployer/greeter/rollout", { percent: 100 })).rejects.toMatchObject({ status: 400 });
  }, 60_000);

  test("at 0% the canary is uploaded: sent no call until promote, then every new one", async () => {
    const greet = async () => new Set(await pool([...Array(100).keys()], 16, () => greeting()));
    const greeting = async () => (await fx.ingress.call<string>("greeter/greet", "x")).split(" ")[0];
    // The greeter's canary (Howdy) takes 50% since a test above; 0% as a step, then promoted.
    expect((await fx.ingress.call<ActivateResult>("deployer/greeter/rollout", { percent: 0 })).rollout?.percent).toBe(
      0,
    );
    expect(await greet()).toEqual(new Set(["Hello,"]));
    await fx.ingress.call("deployer/greeter/promote");
    expect(await greet()).toEqual(new Set(["Howdy,"]));
    // Deployed at 0% straight away (the demo greeter says Hello).
    const active = (await status("greeter")).active;
    const deployed = await gridironOf(() => fx.mesh)([
      "deploy",
      "demo/greeter",
      "--version",
      "3.0.0",
      "--percent",
      "0",
    ]);
    expect(deployed.exitCode, deployed.stderr).toBe(0);
    expect(deployed.stdout).toContain(`greeter 3.0.0 is uploaded beside ${active}: proved, routed and compiled`);
    const view = await status("greeter");
    expect(view.rollout).toMatchObject({ stable: active, percent: 0 });
    expect(view.builds.find((b) => b.buildId === view.rollout?.canary)?.state).toBe("canary");
    expect(await greet()).toEqual(new Set(["Howdy,"]));
    await fx.ingress.call("deployer/greeter/promote");
    expect(await greet()).toEqual(new Set(["Hello,"]));
  }, 120_000);

  test("the CLI: deploy --percent, status, rollout, builds and promote", async () => {
    const gridiron = gridironOf(() => fx.mesh);
    const deployed = await gridiron(["deploy", "demo/counter", "--version", "4.0.0", "--percent", "30"]);
    expect(deployed.exitCode, deployed.stderr).toBe(0);
    expect(deployed.stdout).toMatch(/^counter 4\.0\.0 takes 30% of new calls beside 2\.0\.0-/);
    const shown = await gridiron(["status", "counter"]);
    expect(shown.stdout).toMatch(
      /counter: canary 4\.0\.0-\w+ takes 30% of new calls, 2\.0\.0-\w+ 70%, since 20\d\d-.*promote or abort by hand/,
    );
    const ramped = await gridiron(["--json", "rollout", "counter", "--percent", "60"]);
    expect(ramped.exitCode, ramped.stderr).toBe(0);
    expect(JSON.parse(ramped.stdout)).toMatchObject({ version: "4.0.0", rollout: { percent: 60 } });
    expect((await gridiron(["builds", "counter"])).stdout).toMatch(/4\.0\.0 .* canary .* rolled out at 20\d\d-/);
    const promoted = await gridiron(["promote", "counter"]);
    expect(promoted.exitCode, promoted.stderr).toBe(0);
    expect(promoted.stdout).toMatch(/^counter 4\.0\.0 is active/);
    const refused = await gridiron(["abort", "counter"]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe("error: counter has no rollout in progress: deploy with a percentage first (HTTP 409)");
  }, 180_000);

  test("a deployer killed right after a step registered its deployment finishes the step once", async () => {
    const call = <T>(path: string, body?: unknown) => fx.ingress.call<T>(`deployer/counter/${path}`, body);
    const killedDuring = async <T>(step: () => Promise<T>): Promise<T> => {
      const exits = deployerExits(fx.mesh);
      await writeFile(join(fx.mesh.settings.dataDir, "crash-after"), "register with Restate");
      const result = await step();
      await eventually(async () => expect(deployerExits(fx.mesh)).toBe(exits + 1));
      return result;
    };
    const eventsOf = async (buildId: string) =>
      (await status("counter")).builds
        .find((b) => b.buildId === buildId)
        ?.history?.map((h) => `${h.event}${h.percent ?? ""}`);
    const splitDeployments = async () =>
      (await fx.admin.query("SELECT id FROM sys_deployment WHERE endpoint LIKE '%/counter/split~%'")).map((r) => r.id);

    // Splits of the CLI test above may still be draining: only the ones registered since count.
    const before = await splitDeployments();
    // Starting a rollout registers its split as stepping does: the kills are in stepping and in abort.
    const v5 = await activate("counter", fx.sources.counterV2, { version: "5.0.0", percent: 10 });
    const stepped = await killedDuring(() => call<ActivateResult>("rollout", { percent: 50 }));
    expect((await status("counter")).rollout).toMatchObject({ percent: 50, deploymentId: stepped.deploymentId });
    expect(await latestFor("counter")).toBe(stepped.deploymentId);
    // One registration per step: the 10% split (until it is pruned) and the 50% one.
    const registered = (await splitDeployments()).filter((id) => !before.includes(id));
    expect(registered).toContain(stepped.deploymentId);
    expect(registered.every((id) => id === v5.deploymentId || id === stepped.deploymentId)).toBe(true);
    expect(await eventsOf(v5.buildId)).toEqual(["rolled out10", "rolled out50"]);

    await call("promote");
    expect((await status("counter")).active).toBe(v5.buildId);
    expect(await eventsOf(v5.buildId)).toEqual(["rolled out10", "rolled out50", "activated"]);

    const v6 = await activate("counter", fx.sources.counterV3, { version: "6.0.0", percent: 20 });
    const aborted = await killedDuring(() => call<ActivateResult>("abort"));
    expect(aborted.buildId).toBe(v5.buildId);
    expect((await status("counter")).rollout).toBeUndefined();
    expect(await eventsOf(v6.buildId)).toEqual(["rolled out20", "aborted"]);
    expect(await add("after-abort")).toBe(10);
  }, 180_000);
});
