import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import autocannon from "autocannon";
import { execa } from "execa";
import getPort from "get-port";
import { AdminClient } from "../control/admin-client.ts";
import { readAdminToken } from "../control/admin-token.ts";
import { type BuildRecord, drainStep } from "../control/lifecycle.ts";
import { rssMb } from "../control/memory.ts";
import { waitFor } from "../control/wait.ts";
import { Ingress, IngressError } from "../test/ingress.ts";
import { buildWorker, findChild, findChildren, startTestMesh, type TestMesh } from "../test/mesh.ts";
import { failedAttempts } from "../test/restate-metrics.ts";
import { versions } from "./versions.ts";

/**
 * `npm run bench:deploy`: deploys with Gridiron against what a Restate user does without it: one
 * Node SDK endpoint process per service, and per version a new process on a new port, registered
 * with Restate's admin API, the old one stopped once drained. Both sides serve the same handlers
 * (bench/deploy-services.ts) behind the mesh's one restate-server, each with a counter and N small
 * services live. For N live services: deploy-to-serving time and resident memory. Under a steady
 * load of counter increments: failed calls, attempts Restate retried (its own counter), exact
 * final counts and latency, with and without deploys. Then workerd's memory after activate/prune
 * cycles (Gridiron only: a stopped process gives its memory back). Prints markdown tables; ratios
 * are Node's figure over Gridiron's.
 *
 * BENCH_RATE (200 calls/s), BENCH_LOAD_SECONDS (60), BENCH_CYCLES (50) and BENCH_COUNTS (1,10,50
 * live services) scale it down for a quick look.
 */

const NODE_SERVICE = resolve(import.meta.dirname, "node-service.ts");
const RATE = Number(process.env.BENCH_RATE ?? 200);
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 60);
const CYCLES = Number(process.env.BENCH_CYCLES ?? 50);
const COUNTS = (process.env.BENCH_COUNTS ?? "1,10,50").split(",").map(Number);
const MAX = Math.max(...COUNTS);
const WARMUP_SECONDS = 2;
const DEPLOYS = 10;
const KEYS = 64;
const PLACEHOLDER = "BENCH_SERVICE_NAME";
/** Short drain timers on both sides, so versions replaced during the load are removed during it. */
const DRAIN_POLL_MS = 1_000;
const DRAIN_GRACE_MS = 2_000;

/** What a deploy is of: the counter, or the i-th small service. */
type Deployed = "counter" | number;

interface Sources {
  counter: string;
  bundle: (i: number) => string;
}

/** One side with `n` services live besides the counter. */
interface Live {
  n: number;
  /** From the start of the n-th service's deploy until it answered through Restate's ingress. */
  deployMs: number;
  memory: Memory;
}

/** Resident memory, in MB. */
interface Memory {
  /** Of what serves the counter and the n services: workerd, or the n + 1 Node processes. */
  serving: number;
  /** Of the side's other processes: Gridiron's launcher, supervisor, deployer and admin front. */
  own: number;
}

interface Load {
  /** Processes replaced during the run: workerd handovers, or old Node versions stopped. */
  replaced: number;
  ok: number;
  failed: number;
  retried: number;
  exact: boolean;
  p50: number;
  p99: number;
}

interface Loads {
  steady: Load;
  deploying: Load;
}

interface Results {
  gridiron: {
    live: Live[];
    /** workerd with the counter alone. */
    baseMb: number;
    loads: Loads;
    cycles: { beforeMb: number; afterMb: number };
  };
  node: { live: Live[]; loads: Loads };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "gridiron-bench-deploy-"));
  try {
    console.error(`[bench] building the counter and ${MAX} bundles`);
    const sources = await buildSources(dir);
    console.error("[bench] starting a mesh");
    const mesh = await startTestMesh({
      GRIDIRON_DRAIN_POLL_SECONDS: String(DRAIN_POLL_MS / 1000),
      GRIDIRON_DRAIN_GRACE_SECONDS: String(DRAIN_GRACE_MS / 1000),
    });
    const fleet = new NodeFleet(new AdminClient({ socketPath: mesh.settings.adminSocket }));
    try {
      console.log(await report(await bench(mesh, fleet, sources), mesh.settings.releaseAfter));
    } finally {
      await fleet.stopAll();
      await mesh.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Both sides in one mesh. Their services stay live through all of it, so each side's load runs
 * beside the same processes.
 */
async function bench(mesh: TestMesh, fleet: NodeFleet, sources: Sources): Promise<Results> {
  const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
  const activate = activator(ingress);
  const gridiron = (what: Deployed) =>
    what === "counter" ? activate("counter", sources.counter) : activate(`b${what}`, sources.bundle(what));
  const node = (what: Deployed) =>
    what === "counter" ? fleet.deploy("counter", "node_counter") : fleet.deploy("ping", `node_ping${what}`);
  await gridiron("counter");
  await node("counter");
  const baseMb = await workerdMb(mesh);
  const gridironLive = await live(
    "Gridiron",
    gridiron,
    (i) => firstAnswer(ingress, `ping${i}/ping`),
    async () => ({ serving: await workerdMb(mesh), own: await gridironOwnMb(mesh) }),
  );
  const nodeLive = await live(
    "Node",
    node,
    (i) => firstAnswer(ingress, `node_ping${i}/ping`),
    async () => ({ serving: await fleet.mb(), own: 0 }),
  );
  const gridironLoads = await loads("Gridiron", gridiron, (run, during) => gridironLoad(mesh, run, during));
  const nodeLoads = await loads("Node", node, (run, during) => nodeLoad(mesh, fleet, run, during));
  const cycles = await pruneCycles(mesh, ingress, gridiron);
  return {
    gridiron: { live: gridironLive, baseMb, loads: gridironLoads, cycles },
    node: { live: nodeLive, loads: nodeLoads },
  };
}

/** One wrangler build of the counter, one of the ping bundle copied MAX times with its own service name. */
async function buildSources(dir: string): Promise<Sources> {
  const counter = await buildWorker("bench/deploy-worker", join(dir, "counter"), { COUNTER: "true" });
  const template = fileURLToPath(await buildWorker("bench/deploy-worker", join(dir, "template")));
  for (let i = 1; i <= MAX; i++) {
    const target = join(dir, `b${i}`);
    await cp(template, target, { recursive: true });
    for (const file of await readdir(target)) {
      if (!file.endsWith(".js")) continue;
      const code = await readFile(join(target, file), "utf8");
      await writeFile(join(target, file), code.replaceAll(PLACEHOLDER, `ping${i}`));
    }
  }
  return { counter, bundle: (i) => pathToFileURL(join(dir, `b${i}`)).href };
}

/** A Gridiron deploy, as its users make one: `activate` through the deployer, a new version each time. */
function activator(ingress: Ingress): (name: string, source: string) => Promise<unknown> {
  let version = 0;
  return (name, source) => ingress.call(`deployer/${name}/activate`, { source, version: `1.0.${version++}` });
}

/** Calls `path` until it answers: Restate's ingress may learn of a new service a moment after it is registered. */
async function firstAnswer(ingress: Ingress, path: string): Promise<void> {
  const answered = async () => {
    await ingress.call(path);
    return true;
  };
  await waitFor(path, answered, 30_000, {
    pollMs: 10,
    isFinal: (error) => !(error instanceof IngressError && error.status === 404),
  });
}

/** Deploys services 1..MAX one by one; at each of COUNTS, how long the last one took to serve and the memory then. */
async function live(
  side: string,
  deploy: (i: number) => Promise<unknown>,
  serves: (i: number) => Promise<void>,
  memory: () => Promise<Memory>,
): Promise<Live[]> {
  const rows: Live[] = [];
  for (let i = 1; i <= MAX; i++) {
    const started = performance.now();
    await deploy(i);
    await serves(i);
    const deployMs = performance.now() - started;
    if (!COUNTS.includes(i)) continue;
    rows.push({ n: i, deployMs, memory: await memory() });
    console.error(`[bench] ${side}: ${i} live services, deploy to serving ${deployMs.toFixed(0)} ms`);
  }
  return rows;
}

/** The counter under load without deploys, then with DEPLOYS of them. */
async function loads(
  side: string,
  deploy: (what: Deployed) => Promise<unknown>,
  load: (run: string, during: () => Promise<void>) => Promise<Load>,
): Promise<Loads> {
  console.error(`[bench] ${side}: ${LOAD_SECONDS} s of ${RATE} calls/s, no deploys`);
  const steady = await load("steady", async () => {});
  console.error(`[bench] ${side}: ${LOAD_SECONDS} s of ${RATE} calls/s, ${DEPLOYS} deploys`);
  const deploying = await load("deploying", async () => {
    for (let k = 0; k < DEPLOYS; k++) {
      await sleep((LOAD_SECONDS * 1000) / DEPLOYS / 2);
      // Every other deploy is of the counter itself: the service taking the load.
      await deploy(k % 2 === 0 ? "counter" : ((k - 1) % MAX) + 1);
    }
  });
  return { steady, deploying };
}

/** Gridiron's counter under load; a replaced process is a new workerd taking over (PIDs sampled each second). */
async function gridironLoad(mesh: TestMesh, run: string, during: () => Promise<void>): Promise<Load> {
  const workerds = new Set([await findChild(mesh, "/workerd ")]);
  const watching = setInterval(() => {
    findChild(mesh, "/workerd ").then(
      (pid) => workerds.add(pid),
      () => {},
    );
  }, 1_000);
  const calls = await counterLoad(mesh, "counter", run, during).finally(() => clearInterval(watching));
  return { ...calls, replaced: workerds.size - 1 };
}

/** The Node counter under load; the run ends once every replaced version is stopped. */
async function nodeLoad(mesh: TestMesh, fleet: NodeFleet, run: string, during: () => Promise<void>): Promise<Load> {
  const stoppedBefore = fleet.stopped;
  const calls = await counterLoad(mesh, "node_counter", run, async () => {
    await during();
    await fleet.settle();
  });
  return { ...calls, replaced: fleet.stopped - stoppedBefore };
}

/** Increments of `service` at RATE calls/s for LOAD_SECONDS while `during` runs, over KEYS keys. */
async function counterLoad(
  mesh: TestMesh,
  service: string,
  run: string,
  during: () => Promise<void>,
): Promise<Omit<Load, "replaced">> {
  const ingress = new Ingress(mesh.settings.ingressUrl);
  // A short warm-up, as in `npm run bench`: a build's first calls compile it in workerd, and
  // V8 compiles the Node SDK's code; neither should weigh on the timed run's p99.
  await increments(mesh, service, `${run}-warmup`, WARMUP_SECONDS);
  const retriedBefore = await failedAttempts(mesh.settings);
  const outputFrom = mesh.output.length;
  const [result] = await Promise.all([increments(mesh, service, run, LOAD_SECONDS), during()]);
  // Let retried attempts finish before counting.
  await sleep(2_000);
  let total = 0;
  for (let k = 0; k < KEYS; k++) total += await ingress.call<number>(`${service}/${run}-${k}/get`);
  logFailures(mesh.output.slice(outputFrom), `${service} ${run}`);
  return {
    ok: result["2xx"],
    failed: result.errors + result.non2xx,
    retried: (await failedAttempts(mesh.settings)) - retriedBefore,
    exact: total === result["2xx"],
    p50: result.latency.p50,
    p99: result.latency.p99,
  };
}

/** workerd's memory before and after CYCLES deploys of bundle b1, each until the build it replaced is pruned. */
async function pruneCycles(
  mesh: TestMesh,
  ingress: Ingress,
  deploy: (what: Deployed) => Promise<unknown>,
): Promise<{ beforeMb: number; afterMb: number }> {
  console.error(`[bench] Gridiron: ${CYCLES} activate/prune cycles`);
  await waitForPrunes(ingress, "counter");
  const beforeMb = await workerdMb(mesh);
  for (let c = 0; c < CYCLES; c++) {
    await deploy(1);
    await waitForPrunes(ingress, "b1");
  }
  return { beforeMb, afterMb: await workerdMb(mesh) };
}

/** Why Restate retried, in its own words, and what workerd logged as errors, so a nonzero count can be looked into. */
function logFailures(said: string[], label: string): void {
  const retries = said.filter((line) => line.includes("Invocation error")).map((line) => line.replace(/.*error=/, ""));
  const failures = said.filter((line) => line.startsWith("[workerd]") && /error|exception/i.test(line));
  for (const line of new Set(
    [...retries, ...failures].map((l) => l.slice(0, 200).concat(l.includes("500") ? l.slice(200, 1200) : "")),
  )) {
    console.error(`[bench] ${label}: ${line}`);
  }
}

/** Counter increments at RATE calls/s for `seconds`, over KEYS keys named after `run`. */
function increments(mesh: TestMesh, service: string, run: string, seconds: number): Promise<autocannon.Result> {
  let i = 0;
  return autocannon({
    url: mesh.settings.ingressUrl,
    connections: 32,
    overallRate: RATE,
    // A fixed number of calls rather than a duration: autocannon then waits for every one,
    // so the counts can be checked exactly.
    amount: RATE * seconds,
    timeout: 30,
    requests: [
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        setupRequest: (request) => ({ ...request, path: `/${service}/${run}-${i++ % KEYS}/add`, body: "1" }),
      },
    ],
  });
}

/** Waits until no build of `name` is still draining or drained but not yet pruned. */
async function waitForPrunes(ingress: Ingress, name: string): Promise<void> {
  const pruned = async () => {
    const status = await ingress.call<{ builds: { state: string }[] }>(`deployer/${name}/status`);
    return status.builds.every((b) => b.state === "active" || b.state === "pruned");
  };
  await waitFor(`the pruning of ${name}'s replaced builds`, pruned, 120_000, { pollMs: 250 });
}

/** Resident memory of the mesh's current workerd process, in MB. */
async function workerdMb(mesh: TestMesh): Promise<number> {
  return rssMb(await findChild(mesh, "/workerd "));
}

/** Resident memory of the mesh's processes other than workerd and restate-server, in MB. */
async function gridironOwnMb(mesh: TestMesh): Promise<number> {
  const others = new Set([
    ...(await findChildren(mesh, "/workerd ")),
    ...(await findChildren(mesh, "/restate-server ")),
  ]);
  let total = 0;
  for (const pid of await mesh.pids()) if (!others.has(pid)) total += await rssMb(pid);
  return total;
}

/** Starts the Node process serving one service on `port` (bench/node-service.ts). */
function startService(port: number, kind: "counter" | "ping", name: string) {
  return execa(process.execPath, [NODE_SERVICE, String(port), kind, name], {
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
class NodeFleet {
  /** Old versions stopped so far. */
  stopped = 0;
  private readonly admin: AdminClient;
  private readonly live = new Map<string, Deployment>();
  private readonly running = new Set<Subprocess>();
  private retiring: Promise<void>[] = [];

  constructor(admin: AdminClient) {
    this.admin = admin;
  }

  async deploy(kind: "counter" | "ping", name: string): Promise<void> {
    const port = await getPort({ host: "127.0.0.1" });
    const child = startService(port, kind, name);
    this.running.add(child);
    await child.getOneMessage();
    const { id } = await this.admin.registerDeployment({
      uri: `http://127.0.0.1:${port}`,
      http11: false,
      force: false,
    });
    const old = this.live.get(name);
    this.live.set(name, { id, child });
    if (!old) return;
    const retired = this.retire(old);
    // Its failure surfaces in settle(), not as an unhandled rejection that skips the clean-up.
    retired.catch(() => {});
    this.retiring.push(retired);
  }

  /** Resolves once every replaced version is stopped. */
  async settle(): Promise<void> {
    await Promise.all(this.retiring.splice(0));
  }

  /** Resident memory of the live versions' processes, in MB. */
  async mb(): Promise<number> {
    let total = 0;
    for (const { child } of this.live.values()) total += await rssMb(child.pid ?? 0);
    return total;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.running].map((child) => this.stop(child)));
  }

  /**
   * Gridiron's drain rule (lifecycle.ts), polled as often as the mesh's deployer does: nothing
   * pinned to or running on the old deployment for a whole grace period. Then it goes.
   */
  private async retire(old: Deployment): Promise<void> {
    let record: Pick<BuildRecord, "state" | "times"> = { state: "draining", times: {} };
    for (;;) {
      const step = drainStep(record, await this.admin.observeDeployment(old.id), Date.now(), DRAIN_GRACE_MS);
      if (step.kind === "prune") break;
      if (step.kind === "busy") record = { state: "draining", times: {} };
      if (step.kind === "drained") record = { state: "drained", times: { drained: new Date().toISOString() } };
      await sleep(DRAIN_POLL_MS);
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

async function report({ gridiron, node }: Results, releaseAfter: number): Promise<string> {
  return [
    `${await versions()}; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GB; one run. Both sides behind the mesh's one restate-server, serving the same handlers (bench/deploy-services.ts), each with a counter and N small services live. Ratios are Node / Gridiron.`,
    "",
    "Deploy to serving: Gridiron, `activate` of a bundle (copy, proof in a throwaway workerd, route, registration over HTTP/1.1); Node, a new SDK endpoint process on a new port, registered with `POST /deployments` (HTTP/2); each until the new service answers through Restate's ingress. Resident memory per live service counts the counter too: MB / (N + 1). Gridiron's own processes are its launcher, supervisor, deployer and admin front (Node); restate-server is shared and counted on neither side.",
    "",
    "| live services | Gridiron: deploy to serving, ms | Node: deploy to serving, ms | ratio | Gridiron: workerd MB per live service | Gridiron: workerd + own processes, MB per live service | Node: processes MB per live service | ratio to workerd | ratio to all of Gridiron | Gridiron: workerd MB per added bundle |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...gridiron.live.map((g, k) => liveRow(g, node.live[k] as Live, gridiron.baseMb)),
    "",
    `Counter increments over ${KEYS} keys at ${RATE} calls/s for ${LOAD_SECONDS} s (autocannon, 32 connections), ${MAX} small services live on each side. ${DEPLOYS} deploys spread over the run, every other one of the counter. Gridiron: \`activate\`; the deployer prunes a replaced build once Restate shows nothing on it for ${DRAIN_GRACE_MS / 1000} s (polled each ${DRAIN_POLL_MS / 1000} s), and every ${releaseAfter} prunes a fresh workerd takes over. Node: a new process and its registration; the old deployment is unregistered and its process stopped by the same drain rule, polled as often through the admin API's \`/query\`. Processes replaced: workerd handovers (Gridiron), old versions' processes stopped (Node).`,
    "",
    "| side | deploys | processes replaced | calls ok | calls failed | attempts Restate retried | counts exact | p50 ms | p99 ms | p99 vs no deploys | p99, Node / Gridiron |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
    ...loadRows("Gridiron", gridiron.loads),
    ...loadRows("Node", node.loads, gridiron.loads),
    "",
    `| Gridiron: workerd MB before ${CYCLES} activate/prune cycles | after | ratio |`,
    "|---|---|---|",
    `| ${mb(gridiron.cycles.beforeMb)} | ${mb(gridiron.cycles.afterMb)} | ${ratio(gridiron.cycles.afterMb, gridiron.cycles.beforeMb)} |`,
  ].join("\n");
}

const mb = (x: number) => x.toFixed(1);
const ratio = (x: number, of: number) => `${(x / of).toFixed(2)}x`;

function liveRow(g: Live, n: Live, baseMb: number): string {
  const perService = (x: Live, total: number) => total / (x.n + 1);
  const [workerd, all] = [perService(g, g.memory.serving), perService(g, g.memory.serving + g.memory.own)];
  const node = perService(n, n.memory.serving);
  return `| ${g.n} | ${g.deployMs.toFixed(0)} | ${n.deployMs.toFixed(0)} | ${ratio(n.deployMs, g.deployMs)} | ${mb(workerd)} | ${mb(all)} | ${mb(node)} | ${ratio(node, workerd)} | ${ratio(node, all)} | ${mb((g.memory.serving - baseMb) / g.n)} |`;
}

/** A side's two load runs; with `gridiron`, Node's p99 over Gridiron's in the same run. */
function loadRows(side: string, loads: Loads, gridiron?: Loads): string[] {
  return (["steady", "deploying"] as const).map((run) => {
    const r = loads[run];
    const vs = gridiron ? ratio(r.p99, gridiron[run].p99) : "-";
    return `| ${side} | ${run === "steady" ? "none" : DEPLOYS} | ${r.replaced} | ${r.ok} | ${r.failed} | ${r.retried} | ${r.exact ? "yes" : "**no**"} | ${r.p50} | ${r.p99} | ${ratio(r.p99, loads.steady.p99)} | ${vs} |`;
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
