import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import getPort from "get-port";
import { describe, expect, test } from "vitest";
import { z } from "zod";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { AdminClient } from "../control/restate/admin-client.ts";
import { answers, waitFor, withTimeout } from "../control/wait.ts";
import { CELL_WORKERD, deployerExits, eventually, findChild, isAlive, killDeployer, useTestMesh } from "./mesh.ts";

const hasPrometheus = (await execa("sh", ["-c", "command -v prometheus"], { reject: false })).exitCode === 0;

/** The ops port of a real mesh: health as Kubernetes asks it, metrics as Prometheus reads them. */
describe("the ops port, end to end", () => {
  // A short hang limit, so the watchdog soon kills a stopped workerd and the supervisor restarts it.
  const fx = useTestMesh(
    { greeter: ["greeter"], counter: ["counter"] },
    {
      GRIDIRON_WORKERD_HANG_SECONDS: "3",
      GRIDIRON_CRASH_POINTS: "true",
    },
  );

  const get = async (path: string, method = "GET") => {
    const response = await fetch(`${fx.mesh.settings.opsUrl}${path}`, { method, signal: AbortSignal.timeout(10_000) });
    return { status: response.status, body: await response.text() };
  };
  /** One sample of the ops port's /metrics, by its exact series (name and labels as prom-client writes them). */
  const metric = async (series: string): Promise<number | undefined> => {
    const line = (await get("/metrics")).body.split("\n").find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  const deploys = (bundle: string, result: "activated" | "failed") =>
    metric(`gridiron_deploys_total{bundle="${bundle}",result="${result}"}`);
  const activate = (source: string | undefined, version: string) =>
    fx.ingress.call<ActivateResult>("deployer/greeter/activate", { source, version });

  test("/livez and /readyz answer 200, ?verbose lists every check; anything but GET and HEAD is refused", async () => {
    expect(await get("/livez")).toEqual({ status: 200, body: "ok\n" });
    expect(await get("/livez?verbose")).toEqual({ status: 200, body: "[+]ping ok\nlivez check passed\n" });
    expect(await get("/readyz")).toEqual({ status: 200, body: "ok\n" });
    expect(await get("/readyz?verbose")).toEqual({
      status: 200,
      body: "[+]restate-admin ok\n[+]restate-ingress ok\n[+]workerd ok\n[+]deployer-registered ok\nreadyz check passed\n",
    });
    expect((await get("/readyz", "HEAD")).status).toBe(200);
    for (const method of ["POST", "PUT", "DELETE"]) expect((await get("/metrics", method)).status).toBe(405);
    expect((await get("/admin-token")).status).toBe(404);
    const metrics = await get("/metrics");
    expect(metrics.body).toMatch(/^gridiron_info\{version="[^"]+",process="supervisor"\} 1$/m);
    expect(metrics.body).toMatch(/^gridiron_workerd_resident_memory_bytes [1-9]\d+$/m);
    expect(metrics.body).not.toContain(await readAdminToken(fx.mesh.settings));
  });

  test("deploys are counted once each: not again for the active build, once across a deployer crash, failures too", async () => {
    await activate(fx.sources.greeter, "1.0.0");
    await activate(fx.sources.greeter, "1.0.0");
    // The deployer dies right after registering 2.0.0; Restate replays the activation on its successor.
    const exits = deployerExits(fx.mesh);
    await writeFile(join(fx.mesh.settings.dataDir, "crash-after"), "register with Restate");
    await activate(fx.sources.greeter, "2.0.0");
    await eventually(async () => expect(deployerExits(fx.mesh)).toBe(exits + 1));
    const broken = join(fx.buildsDir, "broken");
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, "index.js"), "export default { fetch( {");
    await expect(activate(pathToFileURL(broken).href, "3.0.0")).rejects.toMatchObject({ status: 400 });
    // Refused before any bundle was copied: not a deploy.
    await expect(activate("file:///nonexistent", "4.0.0")).rejects.toMatchObject({ status: 400 });

    // Metrics are cached for a second.
    await eventually(async () => {
      expect(await deploys("greeter", "activated")).toBe(2);
      expect(await deploys("greeter", "failed")).toBe(1);
    });
    const durations = 'gridiron_deploy_duration_seconds_count{bundle="greeter",result="activated"}';
    expect(await metric(durations)).toBe(2);
    expect(await metric('gridiron_builds{bundle="greeter",state="active"}')).toBe(1);
    expect(await metric('gridiron_builds{bundle="greeter",state="draining"}')).toBe(1);
    expect(await metric('gridiron_builds{bundle="greeter",state="failed"}')).toBe(1);
    expect(await metric('gridiron_restarts_total{component="deployer"}')).toBe(1);

    await fx.ingress.call("deployer/greeter/rollback");
    const { builds } = await fx.ingress.call<{ builds: { buildId: string; state: string }[] }>(
      "deployer/greeter/status",
    );
    const replaced = builds.find((b) => b.state === "draining")?.buildId;
    await fx.ingress.call("deployer/greeter/prune", { buildId: replaced, force: true });
    await eventually(async () => {
      expect(await metric('gridiron_rollbacks_total{bundle="greeter"}')).toBe(1);
      expect(await metric('gridiron_prunes_total{bundle="greeter"}')).toBe(1);
    });
    expect(await deploys("greeter", "activated")).toBe(2);
    const active = builds.find((b) => b.state === "active")?.buildId;
    expect(await metric(`gridiron_pinned_invocations{bundle="greeter",build="${active}"}`)).toBe(0);
  }, 90_000);

  test("a deployer thread ended abruptly takes neither the supervisor, the ops port nor the admin front with it", async () => {
    const [supervisor] = await fx.mesh.pids();
    const front = new AdminClient({ url: fx.mesh.settings.adminUrl, token: await readAdminToken(fx.mesh.settings) });
    const restarts = await metric('gridiron_restarts_total{component="deployer"}');
    await killDeployer(fx.mesh);
    // It is started again half a second after its end: these answer meanwhile, from the same process.
    expect(await get("/livez")).toEqual({ status: 200, body: "ok\n" });
    expect(await front.healthy()).toBe(true);
    expect((await fx.mesh.pids())[0]).toBe(supervisor);
    await eventually(async () => {
      expect(await fx.ingress.call("deployer/greeter/status")).toMatchObject({ builds: expect.any(Array) });
      expect(await metric('gridiron_restarts_total{component="deployer"}')).toBe((restarts ?? 0) + 1);
    });
  });

  test.skipIf(!hasPrometheus)(
    "a real Prometheus scrapes the ops port and its API returns the deploy counters",
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "gridiron-prometheus-"));
      const url = `http://127.0.0.1:${await getPort()}`;
      const config = [
        "global:",
        "  scrape_interval: 1s",
        "scrape_configs:",
        "  - job_name: gridiron",
        "    static_configs:",
        `      - targets: ["${new URL(fx.mesh.settings.opsUrl).host}"]`,
      ].join("\n");
      await writeFile(join(dir, "prometheus.yml"), `${config}\n`);
      const prometheus = execa(
        "prometheus",
        [
          `--config.file=${join(dir, "prometheus.yml")}`,
          `--storage.tsdb.path=${join(dir, "data")}`,
          `--web.listen-address=${new URL(url).host}`,
        ],
        { reject: false, all: true },
      );
      try {
        await waitFor("Prometheus", () => answers(`${url}/-/ready`), 30_000);
        await fx.ingress.call("deployer/counter/activate", { source: fx.sources.counter, version: "1.0.0" });
        await eventually(async () => {
          expect(await query(url, 'up{job="gridiron"}')).toBe(1);
          expect(await query(url, 'gridiron_deploys_total{bundle="counter",result="activated"}')).toBe(1);
          expect(await query(url, 'gridiron_deploys_total{bundle="greeter",result="activated"}')).toBe(2);
        }, 30_000);
      } finally {
        prometheus.kill("SIGTERM");
        await withTimeout(prometheus, 10_000, "Prometheus did not stop").catch(() => prometheus.kill("SIGKILL"));
        await rm(dir, { recursive: true, force: true });
      }
      expect(prometheus.pid !== undefined && isAlive(prometheus.pid)).toBe(false);
    },
    90_000,
  );

  test("/readyz is 503 while workerd does not answer, and 200 again once the supervisor has restarted it", async () => {
    const workerd = await findChild(fx.mesh, CELL_WORKERD);
    process.kill(workerd, "SIGSTOP");
    await eventually(async () => {
      const ready = await get("/readyz?verbose");
      expect(ready.status).toBe(503);
      expect(ready.body).toContain("[-]workerd failed: workerd does not answer\n");
      expect(ready.body).toContain("[+]restate-admin ok\n");
    }, 10_000);
    // The watchdog kills the stopped workerd after the hang limit; the supervisor starts another.
    await eventually(async () => expect(await get("/readyz")).toEqual({ status: 200, body: "ok\n" }), 30_000);
    expect(await findChild(fx.mesh, CELL_WORKERD)).not.toBe(workerd);
    expect(isAlive(workerd)).toBe(false);
    expect(await metric('gridiron_workerd_watchdog_kills_total{reason="hang"}')).toBe(1);
    expect(await metric('gridiron_restarts_total{component="workerd"}')).toBe(1);
    expect(await fx.ingress.call("greeter/greet", "again")).toMatch(/, again! /);
  }, 60_000);
});

const QueryAnswer = z.object({
  status: z.literal("success"),
  data: z.object({ result: z.array(z.object({ value: z.tuple([z.number(), z.string()]) })) }),
});

/** The value of a PromQL query that selects one series, through Prometheus's HTTP API. */
async function query(prometheus: string, promql: string): Promise<number | undefined> {
  const response = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(promql)}`, {
    signal: AbortSignal.timeout(5_000),
  });
  const { data } = QueryAnswer.parse(await response.json());
  expect(data.result.length).toBeLessThanOrEqual(1);
  const value = data.result[0]?.value[1];
  return value === undefined ? undefined : Number(value);
}
