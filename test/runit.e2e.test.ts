import { cp, mkdtemp, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { sweepProofs } from "../control/node/workerd/proof.ts";
import { AdminClient } from "../control/restate/admin-client.ts";
import { loadSettings, type Settings } from "../control/settings.ts";
import { answers, waitFor, withTimeout } from "../control/wait.ts";
import { Ingress } from "./ingress.ts";
import { buildWorker, eventually, expectRestartKeepingState, isAlive, meshEnv } from "./mesh.ts";

const ROOT = resolve(import.meta.dirname, "..");
const SERVICES = ["restate", "admin", "workerd", "deployer", "ops"] as const;
const startRunsvdir = (serviceDir: string, env: Record<string, string>) =>
  execa("runsvdir", ["-P", serviceDir], { env, reject: false, stdio: "ignore" });
const hasRunit = (await execa("sh", ["-c", "command -v runsvdir && command -v sv"], { reject: false })).exitCode === 0;

/** runsv processes supervising a service dir below `dir`. */
async function runsvsIn(dir: string): Promise<number[]> {
  const { stdout } = await execa("pgrep", ["-x", "runsv"], { reject: false });
  const pids = stdout.split("\n").filter(Boolean).map(Number);
  const cwds = await Promise.all(pids.map((pid) => readlink(`/proc/${pid}/cwd`).catch(() => "")));
  return pids.filter((_, i) => cwds[i]?.startsWith(dir));
}

/** The runit mode: runsvdir over a copy of runit/, as the container runs it; runit restarts what dies. */
describe.skipIf(!hasRunit)("the mesh under runit", () => {
  let dir: string;
  let settings: Settings;
  let runsvdir: ReturnType<typeof startRunsvdir>;
  let workerdBeforeDeploys: number | undefined;
  let runitEnv: Record<string, string>;
  let ingress: Ingress;
  const seen = new Set<number>();

  const pidOf = async (service: string): Promise<number | undefined> => {
    const { stdout } = await execa("sv", ["status", join(dir, "service", service)], { reject: false });
    const match = /^run: .*\(pid (\d+)\)/.exec(stdout);
    return match ? Number(match[1]) : undefined;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "gridiron-runit-"));
    await cp(join(ROOT, "runit"), join(dir, "service"), { recursive: true });
    // Under runit a node runs one cell; commands beside it (`just status`) are told so, as the
    // image's environment tells them (Dockerfile).
    const env = { GRIDIRON_HOME: ROOT, GRIDIRON_CELLS: "1", ...(await meshEnv(dir)) };
    settings = loadSettings(env);
    runitEnv = env;
    runsvdir = startRunsvdir(join(dir, "service"), env);
    const [greeter, counter] = await Promise.all([
      buildWorker("greeter", join(dir, "greeter")),
      buildWorker("counter", join(dir, "counter")),
    ]);
    const admin = new AdminClient({ socketPath: settings.adminSocket });
    await waitFor(
      "the deployer under runit",
      async () => (await admin.query("SELECT name FROM sys_service WHERE name = 'deployer'")).length === 1,
      90_000,
    );
    // runit starts every service at once: the ingress is there once its front (service admin) answers.
    await waitFor("the ingress front under runit", () => answers(`${settings.ingressUrl}/restate/health`), 90_000);
    ingress = new Ingress(settings.ingressUrl, await readAdminToken(settings));
    workerdBeforeDeploys = await pidOf("workerd");
    await ingress.call("deployer/greeter/activate", { source: greeter, version: "1.0.0" });
    await ingress.call("deployer/counter/activate", { source: counter, version: "1.0.0" });
  }, 240_000);

  afterAll(async () => {
    if (!dir) return;
    for (const service of SERVICES) {
      const pid = await pidOf(service);
      if (pid) seen.add(pid);
    }
    const serviceDirs = SERVICES.map((s) => join(dir, "service", s));
    let leaked: number[] = [];
    try {
      // `exit` makes each runsv quit once its service is down; a service caught mid-restart may
      // need it more than once.
      await eventually(async () => {
        await execa("sv", ["-w", "15", "force-stop", ...serviceDirs], { reject: false });
        await execa("sv", ["exit", ...serviceDirs], { reject: false });
        expect(await runsvsIn(dir)).toEqual([]);
      }, 30_000);
    } finally {
      // Even when runit did not stop them all: nothing of this test keeps running on the host.
      runsvdir?.kill("SIGHUP");
      await withTimeout(runsvdir, 20_000, "runsvdir did not stop").catch(() => runsvdir.kill("SIGKILL"));
      for (const pid of await runsvsIn(dir)) process.kill(pid, "SIGKILL");
      leaked = [...seen].filter(isAlive);
      for (const pid of leaked) process.kill(pid, "SIGKILL");
      // The deployer killed with -9 leaves its proof dirs for the next deployer's sweep (README,
      // Failure modes; their workerd ends with it), and runit stops that one before it gets to
      // sweep: sweep as it would.
      await sweepProofs(settings.dataDir);
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    }
    expect(leaked).toEqual([]);
  }, 60_000);

  test("the demo runs, deployed into the running workerd without restarting it", async () => {
    expect(workerdBeforeDeploys).toBeDefined();
    expect(await pidOf("workerd")).toBe(workerdBeforeDeploys);
    expect(await ingress.call("greeter/greet", "runit")).toMatch(/^Hello, runit! /);
    expect(await ingress.call("counter/k/add")).toBe(1);
  });

  test("the ops service answers /readyz and counts deploys from durable state, without the supervisor's counters", async () => {
    await eventually(async () => expect((await fetch(`${settings.opsUrl}/readyz`)).status).toBe(200));
    const metrics = await (await fetch(`${settings.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/^gridiron_info\{version="[^"]+",process="ops"\} 1$/m);
    expect(metrics).toMatch(/^gridiron_deploys_total\{bundle="greeter",result="activated"\} 1$/m);
    expect(metrics).toMatch(/^gridiron_workerd_resident_memory_bytes [1-9]\d+$/m);
    expect(metrics).not.toContain("gridiron_restarts_total");
  });

  test("`just status` shows each service up", async () => {
    const { stdout } = await execa("npx", ["just", "status"], { cwd: ROOT, env: runitEnv });
    for (const service of SERVICES) expect(stdout).toMatch(new RegExp(`^${service} +up `, "m"));
    expect(stdout).toMatch(/^counter +1\.0\.0 /m);
  });

  test.each(SERVICES)(
    "kill -9 of %s: runit restarts it and the demo keeps its state",
    async (service) => {
      const kill = async (pid: number) => {
        seen.add(pid);
        process.kill(pid, "SIGKILL");
      };
      await expectRestartKeepingState(() => pidOf(service), kill, ingress, 60_000);
    },
    120_000,
  );
});
