import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, test } from "vitest";
import { identityHeaders } from "../control/credentials/request-identity.ts";
import type { BuildView } from "../control/domain/lifecycle.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { CELL_WORKERD, eventually, findChild, findChildren, isAlive, killDeployer, useTestMesh } from "./mesh.ts";
import { failedAttempts } from "./restate-metrics.ts";

interface Status {
  active: string | null;
  builds: (Pick<BuildView, "buildId" | "state" | "uri" | "pinned" | "paused" | "history"> & { deploymentId: string })[];
}

const POLL_S = 1;
const GRACE_S = 2;
/** Longer than a poll plus the grace period: a drained build would be gone by then. */
const PRUNE_WINDOW_MS = (POLL_S + GRACE_S) * 1000 + 2_000;

/** Drain watching, pruning, paused invocations and rollback, on the real fx.mesh with short timers. */
describe("deployment lifecycle", () => {
  const fx = useTestMesh(
    {
      counterV1: ["counter"],
      counterV2: ["counter", { STEP: "10" }],
      flakyV1: ["test/fixtures/flaky"],
      flakyV2: ["test/fixtures/flaky", { BROKEN: "false" }],
      shapeV1: ["test/fixtures/shape"],
      shapeV2: ["test/fixtures/shape", { OBJECT: "false" }],
    },
    {
      GRIDIRON_DRAIN_POLL_SECONDS: String(POLL_S),
      GRIDIRON_DRAIN_GRACE_SECONDS: String(GRACE_S),
      // Every removal frees its build's memory at once, so the first prune shows it.
      GRIDIRON_RELEASE_AFTER: "1",
    },
  );
  const built: Record<string, ActivateResult> = {};

  const activate = async (name: string, version: string, source: string | undefined) => {
    const result = await fx.ingress.call<ActivateResult>(`deployer/${name}/activate`, { source, version });
    built[`${name}@${version}`] = result;
    return result;
  };
  const status = (name: string) => fx.ingress.call<Status>(`deployer/${name}/status`);
  const stateOf = async (name: string, buildId: string | undefined) =>
    (await status(name)).builds.find((b) => b.buildId === buildId);
  const registered = async (deploymentId: string | undefined) =>
    (await fx.admin.query(`SELECT id FROM sys_deployment WHERE id = '${deploymentId}'`)).length === 1;
  const routed = async (result: ActivateResult | undefined) => {
    const path = `/${result?.name}/${result?.buildId}/discover`;
    const headers = await identityHeaders(fx.mesh.settings, "/discover");
    const response = await fetch(`${fx.mesh.settings.workerdUrl}${path}`, {
      headers: { ...headers, accept: "application/vnd.restate.endpointmanifest.v4+json" },
    });
    return response.status === 200;
  };
  const pinnedTo = async (id: string) =>
    (await fx.admin.query(`SELECT pinned_deployment_id FROM sys_invocation_status WHERE id = '${id}'`))[0]
      ?.pinned_deployment_id;
  const invocationStatus = async (id: string) =>
    (await fx.admin.query(`SELECT status FROM sys_invocation_status WHERE id = '${id}'`))[0]?.status;

  test("a replaced build is served while a call sleeps on it, then pruned by itself", async () => {
    const v1 = await activate("counter", "1.0.0", fx.sources.counterV1);
    const sleeping = await fx.ingress.send("counter/sleepy/add", { delayMs: 20_000 });
    // The demo serves bidirectionally: the sleep keeps its stream open (invoked, not suspended).
    await eventually(async () => expect(await pinnedTo(sleeping)).toBe(v1.deploymentId));

    await activate("counter", "2.0.0", fx.sources.counterV2);
    await sleep(PRUNE_WINDOW_MS);
    expect(await stateOf("counter", v1.buildId)).toMatchObject({ state: "draining", pinned: 1 });
    expect(await registered(v1.deploymentId)).toBe(true);
    expect(await routed(v1)).toBe(true);

    const workerd = await findChild(fx.mesh, CELL_WORKERD);
    expect(await fx.ingress.attach(sleeping)).toBe(1);
    await eventually(
      async () => expect(await stateOf("counter", v1.buildId)).toMatchObject({ state: "pruned" }),
      PRUNE_WINDOW_MS + 5_000,
    );
    expect(await registered(v1.deploymentId)).toBe(false);
    expect(await routed(v1)).toBe(false);
    expect(await fx.ingress.call("counter/sleepy/add")).toBe(11);
    // The pruned build stayed compiled in the old workerd; a fresh one took over to free it.
    expect(await findChild(fx.mesh, CELL_WORKERD)).not.toBe(workerd);
    expect(isAlive(workerd)).toBe(false);
  }, 90_000);

  test("a paused invocation blocks pruning until resumePaused moves it to the new build", async () => {
    const v1 = await activate("flaky", "1.0.0", fx.sources.flakyV1);
    const stuck = await fx.ingress.send("flaky/run");
    await eventually(async () => expect(await invocationStatus(stuck)).toBe("paused"));

    await activate("flaky", "2.0.0", fx.sources.flakyV2);
    await sleep(PRUNE_WINDOW_MS);
    expect(await stateOf("flaky", v1.buildId)).toMatchObject({ state: "draining", pinned: 1, paused: 1 });

    expect(await fx.ingress.call("deployer/flaky/resumePaused")).toEqual({ resumed: [stuck] });
    expect(await fx.ingress.attach(stuck)).toBe("fixed");
    await eventually(
      async () => expect(await stateOf("flaky", v1.buildId)).toMatchObject({ state: "pruned" }),
      PRUNE_WINDOW_MS + 5_000,
    );
  }, 90_000);

  test("rollback sends new calls to the previous build within seconds, even once it was pruned", async () => {
    const v1 = built["counter@1.0.0"];
    const v2 = built["counter@2.0.0"];
    expect((await stateOf("counter", v1?.buildId))?.state).toBe("pruned");

    const started = Date.now();
    const back = await fx.ingress.call<ActivateResult>("deployer/counter/rollback");
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(back.buildId).toBe(v1?.buildId);
    expect(await fx.ingress.call("counter/rolled/add")).toBe(1);

    const forward = await fx.ingress.call<ActivateResult>("deployer/counter/rollback", { buildId: v2?.buildId });
    expect(forward.buildId).toBe(v2?.buildId);
    expect(await fx.ingress.call("counter/rolled/add")).toBe(11);
  }, 60_000);

  test("repeated and interrupted prunes and rollbacks leave one consistent state", async () => {
    const v1 = built["counter@1.0.0"];
    // Interrupt a rollback: kill the deployer right after Restate hands it over.
    const rollback = await fx.ingress.send("deployer/counter/rollback", { buildId: v1?.buildId });
    await killDeployer(fx.mesh);
    expect(await fx.ingress.attach<ActivateResult>(rollback)).toMatchObject({ buildId: v1?.buildId });
    await expect(fx.ingress.call("deployer/counter/rollback", { buildId: v1?.buildId })).rejects.toMatchObject({
      status: 409,
    });

    // Interrupt a prune the same way.
    const v2 = built["counter@2.0.0"];
    const forced = { buildId: v2?.buildId, force: true };
    const prune = await fx.ingress.send("deployer/counter/prune", forced);
    await killDeployer(fx.mesh);
    const interrupted = await fx.ingress.attach<{ pruned: { buildId: string }[] }>(prune);
    // With this mesh's short timers the drain checks may have pruned it first: either way, once.
    expect([[], [v2?.buildId]]).toContainEqual(interrupted.pruned.map((p) => p.buildId));
    // Pruning it again is a no-op: nothing pruned, no second event in its history.
    expect(await fx.ingress.call("deployer/counter/prune", forced)).toEqual({ pruned: [] });
    const events = (await status("counter")).builds.find((b) => b.buildId === v2?.buildId)?.history;
    expect(events?.filter((e) => e.event === "pruned")).toHaveLength(1);
    expect(await fx.ingress.call("deployer/counter/prune")).toEqual({ pruned: [] });

    const final = await status("counter");
    expect(final.builds.filter((b) => b.state === "active").map((b) => b.buildId)).toEqual([v1?.buildId]);
    for (const build of final.builds) {
      const live = build.state === "active";
      expect(await registered(build.deploymentId)).toBe(live);
      expect(await routed({ name: "counter", buildId: build.buildId } as ActivateResult)).toBe(live);
    }
    const counterDeployments = await fx.admin.query("SELECT id FROM sys_deployment WHERE endpoint LIKE '%/counter/%'");
    expect(counterDeployments.map((row) => row.id)).toEqual([
      final.builds.find((b) => b.state === "active")?.deploymentId,
    ]);
    expect(await fx.ingress.call("counter/rolled/add")).toBe(12);
  }, 90_000);

  test("a schema change Restate refuses fails with its reason, unless marked breaking", async () => {
    await activate("shape", "1.0.0", fx.sources.shapeV1);
    expect(await fx.ingress.call("shape/k/kind")).toBe("object");

    const refused = activate("shape", "2.0.0", fx.sources.shapeV2);
    await expect(refused).rejects.toMatchObject({ status: 409 });
    await expect(refused).rejects.toThrow(/service type/);
    const failed = (await status("shape")).builds.find((b) => b.state === "failed");
    expect(failed).toMatchObject({ deploymentId: null });
    expect(await routed({ name: "shape", buildId: failed?.buildId } as ActivateResult)).toBe(false);
    expect(await fx.ingress.call("shape/k/kind")).toBe("object");

    const accepted = await fx.ingress.call<ActivateResult>("deployer/shape/activate", {
      source: fx.sources.shapeV2,
      version: "2.0.0",
      breaking: true,
    });
    expect(accepted.buildId).toBe(failed?.buildId);
    expect(await fx.ingress.call("shape/kind")).toBe("service");
    expect((await status("shape")).builds.find((b) => b.buildId === accepted.buildId)).not.toHaveProperty("error");
  }, 60_000);

  test("a handover ends a bidirectional call's stream; Restate finishes the call once on the new workerd", async () => {
    // Let the handover that pruning shape 1.0.0 starts (previous test) finish first.
    await eventually(async () => {
      const replaced = (await status("shape")).builds.filter((b) => b.state !== "active");
      expect(replaced.map((b) => b.state)).toEqual(["pruned"]);
      expect(await findChildren(fx.mesh, CELL_WORKERD)).toHaveLength(1);
    }, PRUNE_WINDOW_MS + 15_000);
    const [workerd] = await findChildren(fx.mesh, CELL_WORKERD);
    // The demo counter is bidirectional: the sleep holds a stream to this workerd open.
    const held = await fx.ingress.send("counter/held/add", { delayMs: 15_000 });
    await eventually(async () => expect(await invocationStatus(held)).toBe("invoked"));
    const failedBefore = await failedAttempts(fx.mesh.settings);

    // Replacing shape 2.0.0 prunes it within seconds, and that prune hands workerd over.
    await fx.ingress.call("deployer/shape/activate", { source: fx.sources.shapeV1, version: "3.0.0", breaking: true });
    // The sleep outlasts the old workerd's drain, so its stream is cut when that workerd exits.
    await eventually(async () => expect(isAlive(workerd as number)).toBe(false), PRUNE_WINDOW_MS + 15_000);
    expect(await invocationStatus(held)).not.toBe("completed");

    const added = await fx.ingress.attach<number>(held);
    expect(await fx.ingress.call("counter/held/get")).toBe(added);
    expect(await failedAttempts(fx.mesh.settings)).toBeGreaterThan(failedBefore);
  }, 90_000);
});
