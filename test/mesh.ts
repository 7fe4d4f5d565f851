import { readFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import getPort from "get-port";
import { afterAll, beforeAll, expect, vi } from "vitest";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { OWN_NODE_FLAGS } from "../control/node/node-flags.ts";
import { AdminClient } from "../control/restate/admin-client.ts";
import { loadSettings, type Settings } from "../control/settings.ts";
import { withTimeout } from "../control/wait.ts";
import { Ingress } from "./ingress.ts";

const ROOT = resolve(import.meta.dirname, "..");
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 20_000;

export interface TestMesh {
  settings: Settings;
  dir: string;
  output: string[];
  /** The supervisor's PID and those of all its descendants, right now. */
  pids(): Promise<number[]>;
  /** Stops the mesh by SIGTERM to the supervisor; returns the PIDs that had to be killed after that. */
  stop(): Promise<number[]>;
  /** Sends `signal` to the supervisor. */
  signal(signal: NodeJS.Signals): void;
}

/** Settings for a mesh of its own: free ports, data in `dir`. */
export async function meshEnv(dir: string): Promise<Record<string, string>> {
  return {
    GRIDIRON_DATA_DIR: join(dir, "data"),
    // Its own record of where it runs, so a test mesh never replaces the user's (mesh-file.ts).
    GRIDIRON_MESH_FILE: join(dir, "mesh.json"),
    GRIDIRON_INGRESS_PORT: String(await getPort()),
    GRIDIRON_ADMIN_PORT: String(await getPort()),
    GRIDIRON_WORKERD_PORT: String(await getPort()),
    GRIDIRON_DEPLOYER_PORT: String(await getPort()),
    GRIDIRON_OPS_PORT: String(await getPort()),
  };
}

/** The worker builds a test file needs: name -> [project, wrangler defines]. */
export type BuildPlan = Record<string, [project: string, defines?: Record<string, string>]>;

export interface MeshFixture {
  mesh: TestMesh;
  ingress: Ingress;
  admin: AdminClient;
  /** file:// URLs of the planned builds, by name. */
  sources: Record<string, string>;
  buildsDir: string;
}

/**
 * For one describe block: starts a mesh while building the planned workers, and stops it after.
 * The fields are filled in by the time the first test runs.
 */
export function useTestMesh(plan: BuildPlan, env: Record<string, string> = {}): MeshFixture {
  const fixture = { sources: {} } as MeshFixture;
  beforeAll(async () => {
    fixture.buildsDir = await mkdtemp(join(tmpdir(), "gridiron-builds-"));
    const [mesh] = await Promise.all([
      startTestMesh(env),
      (async () => {
        // One wrangler at a time: the machine has two cores and the mesh is starting too.
        for (const [name, [project, defines]] of Object.entries(plan)) {
          fixture.sources[name] = await buildWorker(project, join(fixture.buildsDir, name), defines);
        }
      })(),
    ]);
    fixture.mesh = mesh;
    fixture.ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
    fixture.admin = new AdminClient({ socketPath: mesh.settings.adminSocket });
  }, 240_000);
  afterAll(async () => {
    await fixture.mesh?.stop();
    if (fixture.buildsDir) await rm(fixture.buildsDir, { recursive: true, force: true });
  }, 60_000);
  return fixture;
}

/** Runs `node control/main.ts start` (what `npm start` runs) on free ports in a temp dir. */
export async function startTestMesh(extraEnv: Record<string, string> = {}): Promise<TestMesh> {
  const dir = await mkdtemp(join(tmpdir(), "gridiron-test-"));
  // One cell unless a test asks for more, so a test that looks at "the" workerd finds the one
  // serving its builds (cells.e2e.test.ts runs several).
  const env = { GRIDIRON_CELLS: "1", ...extraEnv, ...(await meshEnv(dir)) };
  const settings = loadSettings(env);
  const supervisor = execa(process.execPath, [...OWN_NODE_FLAGS, join(ROOT, "control/main.ts"), "start"], {
    cwd: ROOT,
    env,
    all: true,
    buffer: false,
    reject: false,
  });
  const output: string[] = [];
  const ready = new Promise<void>((resolveReady, rejectReady) => {
    void (async () => {
      for await (const line of supervisor.iterable({ from: "all" })) {
        output.push(line);
        if (line.startsWith("[gridiron] ready")) resolveReady();
      }
      rejectReady(new Error(`the mesh exited before it was ready:\n${output.join("\n")}`));
    })();
  });
  const mesh: TestMesh = {
    settings,
    dir,
    output,
    pids: () => processTree(supervisor.pid),
    signal: (signal) => supervisor.kill(signal),
    stop: async () => {
      const pids = await processTree(supervisor.pid);
      supervisor.kill("SIGTERM");
      await withTimeout(supervisor, STOP_TIMEOUT_MS, "the supervisor did not stop").catch(() => {});
      // Whatever still runs is a leak: kill it by PID so one failing test does not poison the next.
      const leaked = pids.filter(isAlive);
      for (const pid of leaked) process.kill(pid, "SIGKILL");
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
      return leaked;
    },
  };
  try {
    await withTimeout(ready, READY_TIMEOUT_MS, `the mesh was not ready within ${READY_TIMEOUT_MS / 1000} s`);
  } catch (error) {
    await mesh.stop();
    throw error;
  }
  return mesh;
}

/**
 * Whether a process runs: a zombie, killed but not yet reaped, does not. (The proofs' workerd of a
 * deployer thread that ended stay zombies of the supervisor until it exits, and then until init
 * reaps them.)
 */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // "pid (comm) state ...", and comm may hold spaces or parentheses.
  return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

async function processTree(root: number | undefined): Promise<number[]> {
  if (root === undefined) return [];
  const { stdout } = await execa("ps", ["-eo", "pid=,ppid="]);
  const children = new Map<number, number[]>();
  for (const line of stdout.trim().split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (pid === undefined || ppid === undefined) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i] as number) ?? []));
  return tree.filter(isAlive);
}

/**
 * Builds a worker with wrangler, as `just deploy-demo` does; `defines` make variants. `project`
 * is a dir under demo/ or a path relative to the repository.
 */
export async function buildWorker(
  project: string,
  outdir: string,
  defines: Record<string, string> = {},
): Promise<string> {
  const args = ["deploy", "--dry-run", "--outdir", outdir];
  for (const [key, value] of Object.entries(defines)) args.push("--define", `${key}:${value}`);
  await execa(join(ROOT, "node_modules/.bin/wrangler"), args, {
    cwd: project.includes("/") ? join(ROOT, project) : join(ROOT, "demo", project),
    env: { WRANGLER_SEND_METRICS: "false", CI: "true" },
    timeout: 120_000,
  });
  return pathToFileURL(outdir).href;
}

/**
 * In the command line of the cells' workerds alone (they serve `data/workerd/config*.capnp`), not
 * of the deployer's spare proof workerd, which serves a config in a `proof-*` dir.
 */
export const CELL_WORKERD = "/workerd/config";

/** The PIDs of the mesh processes whose command line contains `needle` (e.g. CELL_WORKERD). */
export async function findChildren(mesh: TestMesh, needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await mesh.pids()) {
    const { stdout } = await execa("ps", ["-o", "args=", "-p", String(pid)], { reject: false });
    if (stdout.includes(needle)) found.push(pid);
  }
  return found;
}

/** The PID of the (first) mesh process whose command line contains `needle`. */
export async function findChild(mesh: TestMesh, needle: string): Promise<number> {
  const [pid] = await findChildren(mesh, needle);
  if (pid === undefined) throw new Error(`no process matching "${needle}" in the mesh`);
  return pid;
}

/**
 * The mesh's proofs as ps and the data dir show them (not as the code under test counts them): the
 * workerds serving a config in a proof dir, and those dirs. A spare (a proof workerd started ahead
 * for the next proof) has a dir without a routes file; a dir that has one was used by a proof.
 */
export async function proofsOf(mesh: TestMesh): Promise<{
  workerds: { pid: number; spare: boolean }[];
  dirs: { name: string; spare: boolean }[];
}> {
  const prefix = join(mesh.settings.dataDir, "proof-");
  const spare = async (dir: string) => {
    const files = await readdir(dir).catch(() => undefined);
    return files !== undefined && !files.includes("routes.json");
  };
  const { stdout } = await execa("ps", ["-eo", "pid=,args="]);
  const workerds = await Promise.all(
    stdout
      .split("\n")
      .map((line) => line.trim().split(/\s+/))
      .filter((args) => args[1]?.endsWith("/workerd") && args[3]?.startsWith(prefix))
      .map(async (args) => ({ pid: Number(args[0]), spare: await spare(resolve(args[3] ?? "", "..")) })),
  );
  // A stopped mesh has no data dir left.
  const names = (await readdir(mesh.settings.dataDir).catch(() => [])).filter((name) => name.startsWith("proof-"));
  const dirs = await Promise.all(
    names.map(async (name) => ({ name, spare: await spare(join(mesh.settings.dataDir, name)) })),
  );
  return { workerds, dirs };
}

/** What proofs left behind: proof workerds and dirs that are not the one spare (which may be there). */
export async function proofLeftovers(mesh: TestMesh): Promise<{ workerds: number[]; dirs: string[] }> {
  const { workerds, dirs } = await proofsOf(mesh);
  expect(workerds.filter((w) => w.spare).length).toBeLessThanOrEqual(1);
  return {
    workerds: workerds.filter((w) => !w.spare).map((w) => w.pid),
    dirs: dirs.filter((d) => !d.spare).map((d) => d.name),
  };
}

/**
 * How many times the deployer has ended without being asked to (crashed, or killed by a test), as
 * the supervisor logs it before starting it again: it runs as a thread of the supervisor, so it has
 * no PID of its own to tell one run from the next.
 */
export function deployerExits(mesh: TestMesh): number {
  return mesh.output.filter((line) => line.startsWith("[gridiron] deployer exited with ")).length;
}

/** Ends the deployer's thread at once, as a crash would (SIGUSR2 to the supervisor), and waits until the supervisor saw it end. */
export async function killDeployer(mesh: TestMesh): Promise<void> {
  const exits = deployerExits(mesh);
  mesh.signal("SIGUSR2");
  // The supervisor's last lines say why, should the thread not end (or the supervisor with it).
  await eventually(async () => expect(deployerExits(mesh), mesh.output.slice(-30).join("\n")).toBe(exits + 1));
}

/** Retries `check` until it passes, at most `timeoutMs`; fails with its last error (vitest's waitFor). */
export function eventually(check: () => Promise<void>, timeoutMs = 30_000): Promise<void> {
  return vi.waitFor(check, { timeout: timeoutMs, interval: 250 });
}

/**
 * Kills a supervised process (`kill` ends it by PID) and checks its supervisor (runit) starts it
 * again: a new PID, the demo answering again within `recoverMs`, and the counter's state intact.
 */
export async function expectRestartKeepingState(
  pidOf: () => Promise<number | undefined>,
  kill: (pid: number) => Promise<void>,
  ingress: Ingress,
  recoverMs: number,
): Promise<void> {
  const before = await ingress.call<number>("counter/k/add");
  const pid = await pidOf();
  expect(pid).toBeDefined();
  await kill(pid as number);
  await eventually(async () => {
    const now = await pidOf();
    expect(now).toBeDefined();
    expect(now).not.toBe(pid);
  }, 30_000);
  await eventually(
    async () => expect(await ingress.call("greeter/greet", "again")).toMatch(/^Hello, again! /),
    recoverMs,
  );
  expect(await ingress.call("counter/k/add")).toBe(before + 1);
}
