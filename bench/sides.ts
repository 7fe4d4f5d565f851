import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { execa } from "execa";
import getPort from "get-port";
import { type BuildRecord, drainStep } from "../control/domain/lifecycle.ts";
import { rssMb } from "../control/memory.ts";
import { AdminClient } from "../control/restate/admin-client.ts";
import { waitFor } from "../control/wait.ts";
import { type Ingress, IngressError } from "../test/ingress.ts";
import { buildWorker, CELL_WORKERD, findChild, findChildren, startTestMesh, type TestMesh } from "../test/mesh.ts";

/**
 * The two sides `npm run bench:density` and `npm run bench:deploy` compare, behind one
 * restate-server: Gridiron (bundles activated into its workerd) and what a Restate user does
 * without it (one Node SDK endpoint process per service, a new process per version).
 */

const NODE_SERVICE = resolve(import.meta.dirname, "node-service.ts");
const NAME_PLACEHOLDER = "BENCH_SERVICE_NAME";
const VERSION_PLACEHOLDER = "BENCH_VERSION";

/** Short drain timers on both sides, so replaced versions are removed within seconds. */
export const DRAIN_POLL_MS = 1_000;
export const DRAIN_GRACE_MS = 2_000;

/** The mesh settings both benches run with: the drain timers above. */
const DRAIN_ENV = {
  GRIDIRON_DRAIN_POLL_SECONDS: String(DRAIN_POLL_MS / 1000),
  GRIDIRON_DRAIN_GRACE_SECONDS: String(DRAIN_GRACE_MS / 1000),
};

/**
 * Runs `bench` on a mesh of its own (drain timers above, plus `env`), with the bundles built and a
 * Node fleet registered with the same restate-server; stops every process and removes every file after.
 */
export async function withSides<T>(
  env: Record<string, string>,
  bench: (mesh: TestMesh, fleet: NodeFleet, sources: Sources) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "gridiron-bench-"));
  try {
    console.error("[bench] building the counter and the ping bundle with wrangler");
    const sources = await buildSources(dir);
    console.error("[bench] starting a mesh");
    const mesh = await startTestMesh({ ...DRAIN_ENV, ...env });
    const fleet = new NodeFleet(new AdminClient({ socketPath: mesh.settings.adminSocket }));
    try {
      return await bench(mesh, fleet, sources);
    } finally {
      await fleet.stopAll();
      await mesh.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The Gridiron bundle serving the i-th ping service, `ping{i}`; Node serves it as `node_ping{i}`. */
export const bundleName = (i: number) => `b${i}`;

/** Wrangler builds of bench/deploy-worker: the counter, and the ping service as a template. */
export interface Sources {
  counter: string;
  /**
   * The i-th ping service's bundle at `version`, written on first request: the template with its
   * service name and version filled in. A file:// URL for `activate`.
   */
  ping(i: number, version: string): Promise<string>;
}

/** Builds the counter and the ping template with wrangler, into `dir`. */
export async function buildSources(dir: string): Promise<Sources> {
  const counter = await buildWorker("bench/deploy-worker", join(dir, "counter"), { COUNTER: "true" });
  const template = fileURLToPath(await buildWorker("bench/deploy-worker", join(dir, "template")));
  const ping = async (i: number, version: string) => {
    const target = join(dir, `${bundleName(i)}-${version}`);
    await cp(template, target, { recursive: true });
    for (const file of await readdir(target)) {
      if (!file.endsWith(".js")) continue;
      const code = await readFile(join(target, file), "utf8");
      await writeFile(
        join(target, file),
        code.replaceAll(NAME_PLACEHOLDER, `ping${i}`).replaceAll(VERSION_PLACEHOLDER, version),
      );
    }
    return pathToFileURL(target).href;
  };
  return { counter, ping };
}

/** A Gridiron deploy, as its users make one: `activate` through the deployer. */
export function activate(ingress: Ingress, name: string, source: string, version: string): Promise<unknown> {
  return ingress.call(`deployer/${name}/activate`, { source, version });
}

/**
 * Calls `path` until it answers `expected` (any answer, without it): Restate's ingress may learn
 * of a new service a moment after it is registered.
 */
export async function answeredBy(ingress: Ingress, path: string, expected?: string): Promise<void> {
  const answered = async () => expected === undefined || (await ingress.call(path)) === expected;
  await waitFor(`${path} answering ${expected ?? "at all"}`, answered, 30_000, {
    pollMs: 10,
    isFinal: (error) => !(error instanceof IngressError && error.status === 404),
  });
}

/** Waits until no build of `name` is still draining or drained but not yet pruned. */
export async function waitForPrunes(ingress: Ingress, name: string): Promise<void> {
  const pruned = async () => {
    const status = await ingress.call<{ builds: { state: string }[] }>(`deployer/${name}/status`);
    return status.builds.every((b) => b.state === "active" || b.state === "pruned");
  };
  await waitFor(`the pruning of ${name}'s replaced builds`, pruned, 120_000, { pollMs: 100 });
}

/** The mesh's current workerd process (cell 0's, with one cell). */
export function workerdPid(mesh: TestMesh): Promise<number> {
  return findChild(mesh, CELL_WORKERD);
}

/** The mesh's current workerd processes, one a cell. */
export function workerdPids(mesh: TestMesh): Promise<number[]> {
  return findChildren(mesh, CELL_WORKERD);
}

/** Resident memory of the mesh's current workerd process, in MB. */
export async function workerdMb(mesh: TestMesh): Promise<number> {
  return rssMb(await workerdPid(mesh));
}

/**
 * Gridiron's own processes: its supervisor (the deployer is a thread of it) and the deployer's
 * spare proof workerd (all but the cells' workerd and restate-server).
 */
export async function gridironOwnPids(mesh: TestMesh): Promise<number[]> {
  const others = new Set([...(await workerdPids(mesh)), ...(await findChildren(mesh, "/restate-server "))]);
  return (await mesh.pids()).filter((pid) => !others.has(pid));
}

/** Resident memory of Gridiron's own processes, in MB. */
export async function gridironOwnMb(mesh: TestMesh): Promise<number> {
  return sumOf(await gridironOwnPids(mesh), rssMb);
}

export async function sumOf(pids: number[], measure: (pid: number) => Promise<number>): Promise<number> {
  let total = 0;
  for (const pid of pids) total += await measure(pid);
  return total;
}

/** Starts the Node process serving one service on `port` (bench/node-service.ts). */
function startService(port: number, kind: "counter" | "ping", name: string, version: string) {
  return execa(process.execPath, [NODE_SERVICE, String(port), kind, name, version], {
    ipc: true,
    // The SDK logs a line per invocation; to /dev/null, as in `npm run bench`.
    stdio: "ignore",
    reject: false,
  });
}

type Subprocess = ReturnType<typeof startService>;

interface Deployment {
  id: string;
  child: Subprocess;
}

/**
 * The Node side, one process per service, deployed as Restate's Kubernetes operator does with
 * pods: a new version is a new process on a new port, registered with Restate; the one it
 * replaces is unregistered and stopped once drained, in the background.
 */
export class NodeFleet {
  /** Old versions stopped so far. */
  stopped = 0;
  private readonly admin: AdminClient;
  private readonly live = new Map<string, Deployment>();
  private readonly running = new Set<Subprocess>();
  private retiring: Promise<void>[] = [];

  constructor(admin: AdminClient) {
    this.admin = admin;
  }

  /**
   * Starts `name` at `version` and registers it; resolves once Restate has discovered it, with
   * the retirement of the version it replaced (none for a first version), which resolves once the
   * old process has stopped. (In an object: an async function returning a promise would wait for it.)
   */
  async deploy(kind: "counter" | "ping", name: string, version = ""): Promise<{ retired?: Promise<void> }> {
    return (await this.start(kind, name, version))();
  }

  /** Starts `name` at `version` and returns its registration, which `deploy` does at once. */
  async start(kind: "counter" | "ping", name: string, version = "") {
    const port = await getPort({ host: "127.0.0.1" });
    const child = startService(port, kind, name, version);
    this.running.add(child);
    await child.getOneMessage();
    return async (): Promise<{ retired?: Promise<void> }> => {
      const { id } = await this.admin.registerDeployment({
        uri: `http://127.0.0.1:${port}`,
        http11: false,
        force: false,
      });
      const old = this.live.get(name);
      this.live.set(name, { id, child });
      if (!old) return {};
      const retired = this.retire(old);
      // Its failure surfaces in settle() or with the caller, not as an unhandled rejection that skips the clean-up.
      retired.catch(() => {});
      this.retiring.push(retired);
      return { retired };
    };
  }

  /** Resolves once every replaced version is stopped. */
  async settle(): Promise<void> {
    await Promise.all(this.retiring.splice(0));
  }

  /** The live versions' processes. */
  pids(): number[] {
    return [...this.live.values()].map(({ child }) => child.pid ?? 0);
  }

  /** Resident memory of the live versions' processes, in MB. */
  mb(): Promise<number> {
    return sumOf(this.pids(), rssMb);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.running].map((child) => this.stop(child)));
  }

  /**
   * Gridiron's drain rule (lifecycle.ts), polled as often as the mesh's deployer does: nothing
   * pinned to or running on the old deployment for a whole grace period. Then it goes. The first
   * look is one poll after the replacement, as the deployer's first drain check is (drain.ts
   * makeActive): looking at once made the Node side's "old version freed" a poll shorter than
   * Gridiron's for no reason of its own.
   */
  private async retire(old: Deployment): Promise<void> {
    let record: Pick<BuildRecord, "state" | "times"> = { state: "draining", times: {} };
    for (;;) {
      await sleep(DRAIN_POLL_MS);
      const step = drainStep(record, await this.admin.observeDeployment(old.id), Date.now(), DRAIN_GRACE_MS);
      if (step.kind === "prune") break;
      if (step.kind === "busy") record = { state: "draining", times: {} };
      if (step.kind === "drained") record = { state: "drained", times: { drained: new Date().toISOString() } };
    }
    await this.admin.deleteDeployment(old.id);
    await this.stop(old.child);
    this.stopped++;
  }

  private async stop(child: Subprocess): Promise<void> {
    child.kill("SIGTERM");
    await child;
    this.running.delete(child);
  }
}
