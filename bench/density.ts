import { cpus, totalmem } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import autocannon from "autocannon";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { rssMb } from "../control/memory.ts";
import { alwaysRunningCells } from "../control/node/workerd/cells.ts";
import { loadSettings } from "../control/settings.ts";
import { Ingress } from "../test/ingress.ts";
import { findChild, type TestMesh } from "../test/mesh.ts";
import { BENCH_CONNECTIONS, wayIn } from "./load.ts";
import { cpuSeconds, pssMb } from "./proc.ts";
import {
  activate,
  answeredBy,
  bundleName,
  DRAIN_GRACE_MS,
  DRAIN_POLL_MS,
  gridironOwnPids,
  type NodeFleet,
  type Sources,
  sumOf,
  waitForPrunes,
  withSides,
  workerdPids,
} from "./sides.ts";
import { versions } from "./versions.ts";

/**
 * `npm run bench:density`: many services on one machine. For N services (each its own bundle,
 * the same small handler), served by Gridiron (its workerd cells) and by one Node SDK endpoint process
 * per service, behind the mesh's one restate-server, side by side in one run:
 * - the first call of services nobody called since their deploy;
 * - throughput and p99 with calls spread evenly over all N services at a fixed concurrency, and
 *   CPU per call;
 * - idle CPU over IDLE_SECONDS and resident memory of what serves the services;
 * - deploy to serving (a new version of a live service, until a call is answered by it) and until
 *   the old version's resources are freed.
 * Prints a cell's own memory (a bare workerd with its router, before any deploy), markdown tables
 * and, last, the summary line for the largest N.
 *
 * BENCH_SERVICES (1,10,50,100), BENCH_LOAD_SECONDS (10), BENCH_IDLE_SECONDS (30),
 * BENCH_CONNECTIONS (32) and BENCH_CELLS (GRIDIRON_CELLS; by default what a user gets, one a
 * core and at least 2, plus the quarantine cell) set the run.
 */

const COUNTS = (process.env.BENCH_SERVICES ?? "1,10,50,100")
  .split(",")
  .map(Number)
  .sort((a, b) => a - b);
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 10);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);
/** The mesh's GRIDIRON_CELLS: BENCH_CELLS, else the default a user's mesh takes (settings.ts). */
const CELLS = process.env.BENCH_CELLS ?? String(loadSettings({}).cells);
const WARMUP_SECONDS = 2;
/** Redeploys of live services per side and N; the table shows their median. */
const REDEPLOYS = 3;
/** Services called for the first time per side and N (fewer if fewer are new); the table shows their median. */
const COLD_CALLS = 5;
/** Every prune is followed by a fresh workerd in the build's cell, so "freed" means the old build's memory is back, as with a stopped process. */
const RELEASE_AFTER = 1;

/** One way of serving the N services. */
interface Side {
  name: "Gridiron" | "Node";
  /** The i-th service's handler, through Restate's ingress. */
  path(i: number): string;
  /** Makes version `version` of service i ready to deploy (the "built" that deploy time starts from). */
  prepare(i: number, version: string): Promise<void>;
  /** Deploys it; resolves once Restate knows it, with what resolves once the replaced version is freed. */
  deploy(i: number, version: string): Promise<() => Promise<void>>;
  /** The processes serving the services: workerd, or the N Node processes. */
  servingPids(): Promise<number[]>;
  /** The side's other processes: Gridiron's supervisor (with the deployer's thread and the admin front) and the spare proof workerd. */
  ownPids(): Promise<number[]>;
}

interface Measured {
  n: number;
  coldMs: number;
  /** The call after the first, to the same service. */
  warmMs: number;
  rps: number;
  p99: number;
  errors: number;
  /** CPU ms per call while under load: serving processes, own processes, restate-server. */
  cpuPerCall: { serving: number; own: number; restate: number };
  /** Idle CPU, in % of one core. */
  idle: { serving: number; own: number };
  memory: { servingRss: number; servingPss: number; ownRss: number };
  deployMs: number;
  freedMs: number;
}

async function main(): Promise<void> {
  const env = {
    GRIDIRON_CELLS: CELLS,
    GRIDIRON_RELEASE_AFTER: String(RELEASE_AFTER),
    // The bench measures workerd's memory; the watchdog must not cut a run short at 100 builds.
    GRIDIRON_WORKERD_MAX_MB: "8192",
  };
  const { cellMb, results } = await withSides(env, async (mesh, fleet, sources) => {
    const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
    const cellMb = await bareCellMb(mesh);
    return { cellMb, results: await bench(mesh, ingress, [gridironSide(mesh, ingress, sources), nodeSide(fleet)]) };
  });
  console.log(await report(results, cellMb));
}

/**
 * A cell's own memory: the mean resident memory of the mesh's workerd processes before any
 * deploy, each a bare workerd with the router (which the watchdog has called every second).
 */
async function bareCellMb(mesh: TestMesh): Promise<number> {
  const pids = await workerdPids(mesh);
  return (await sumOf(pids, rssMb)) / pids.length;
}

function gridironSide(mesh: TestMesh, ingress: Ingress, sources: Sources): Side {
  const prepared = new Map<string, string>();
  return {
    name: "Gridiron",
    path: (i) => `ping${i}/ping`,
    prepare: async (i, version) => {
      prepared.set(`${i}@${version}`, await sources.ping(i, version));
    },
    deploy: async (i, version) => {
      await activate(ingress, bundleName(i), prepared.get(`${i}@${version}`) ?? "", version);
      return () => waitForPrunes(ingress, bundleName(i));
    },
    servingPids: () => workerdPids(mesh),
    ownPids: () => gridironOwnPids(mesh),
  };
}

function nodeSide(fleet: NodeFleet): Side {
  return {
    name: "Node",
    path: (i) => `node_ping${i}/ping`,
    // The code is on disk already; a version is a command-line argument.
    prepare: async () => {},
    deploy: async (i, version) => {
      const { retired } = await fleet.deploy("ping", `node_ping${i}`, version);
      return () => retired ?? Promise.resolve();
    },
    servingPids: async () => fleet.pids(),
    ownPids: async () => [],
  };
}

/** Grows both sides through COUNTS; at each N, measures them one after the other. */
async function bench(mesh: TestMesh, ingress: Ingress, sides: Side[]): Promise<Map<Side, Measured[]>> {
  const results = new Map<Side, Measured[]>(sides.map((side) => [side, []]));
  const restate = await findChild(mesh, "/restate-server ");
  let live = 0;
  let version = 0;
  for (const n of COUNTS) {
    const rows = new Map<Side, Partial<Measured>>();
    for (const side of sides) {
      progress(`${side.name}: deploying services ${live + 1}..${n}`);
      for (let i = live + 1; i <= n; i++) {
        await side.prepare(i, "1.0.0");
        await side.deploy(i, "1.0.0");
      }
      rows.set(side, { n, ...(await coldCalls(ingress, side, live, n)) });
    }
    for (const side of sides) {
      progress(`${side.name}: ${LOAD_SECONDS} s of calls over ${n} services`);
      Object.assign(rows.get(side) ?? {}, await load(mesh, side, n, restate));
    }
    progress(`both sides idle for ${IDLE_SECONDS} s`);
    for (const [side, idle] of await idleCpu(sides)) Object.assign(rows.get(side) ?? {}, idle);
    for (const side of sides) {
      progress(`${side.name}: ${REDEPLOYS} redeploys`);
      const deploys: { deployMs: number; freedMs: number }[] = [];
      for (let k = 0; k < REDEPLOYS; k++) deploys.push(await redeploy(ingress, side, (k % n) + 1, `1.1.${version++}`));
      Object.assign(rows.get(side) ?? {}, {
        deployMs: median(deploys.map((d) => d.deployMs)),
        freedMs: median(deploys.map((d) => d.freedMs)),
      });
    }
    for (const side of sides) results.get(side)?.push(rows.get(side) as Measured);
    live = n;
  }
  return results;
}

/** The first call of the services deployed last (none called yet), one at a time, and a second call to each. */
async function coldCalls(ingress: Ingress, side: Side, from: number, to: number) {
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = to; i > Math.max(from, to - COLD_CALLS); i--) {
    cold.push(await timed(() => ingress.call(side.path(i))));
    warm.push(await timed(() => ingress.call(side.path(i))));
  }
  return { coldMs: median(cold), warmMs: median(warm) };
}

/** Calls spread evenly over services 1..n at BENCH_CONNECTIONS concurrency, after a warm-up; CPU per call. */
async function load(mesh: TestMesh, side: Side, n: number, restate: number) {
  let i = 0;
  const requests: autocannon.Request[] = [
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      setupRequest: (request) => ({ ...request, path: `/${side.path((i++ % n) + 1)}` }),
    },
  ];
  const way = wayIn(mesh.settings, side.name);
  await autocannon({ ...way, connections: BENCH_CONNECTIONS, duration: WARMUP_SECONDS, requests });
  const groups = { serving: await side.servingPids(), own: await side.ownPids(), restate };
  const before = await cpuSeconds(groups);
  const result = await autocannon({ ...way, connections: BENCH_CONNECTIONS, duration: LOAD_SECONDS, requests });
  const after = await cpuSeconds(groups);
  const calls = Math.max(1, result.requests.total);
  const perCall = (k: keyof typeof groups) => (((after[k] ?? 0) - (before[k] ?? 0)) * 1000) / calls;
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
    cpuPerCall: { serving: perCall("serving"), own: perCall("own"), restate: perCall("restate") },
  };
}

/** Both sides idle at once: their CPU over IDLE_SECONDS, and their memory at its end. */
async function idleCpu(sides: Side[]): Promise<Map<Side, Pick<Measured, "idle" | "memory">>> {
  // Let the load's last calls and connections wind down first.
  await sleep(2_000);
  const groups = new Map<Side, { serving: number[]; own: number[] }>();
  for (const side of sides) groups.set(side, { serving: await side.servingPids(), own: await side.ownPids() });
  const read = async () =>
    new Map(await Promise.all(sides.map(async (s) => [s, await cpuSeconds(groups.get(s) ?? {})] as const)));
  const before = await read();
  await sleep(IDLE_SECONDS * 1000);
  const after = await read();
  const out = new Map<Side, Pick<Measured, "idle" | "memory">>();
  for (const side of sides) {
    const { serving, own } = groups.get(side) ?? { serving: [], own: [] };
    const share = (k: "serving" | "own") =>
      (((after.get(side)?.[k] ?? 0) - (before.get(side)?.[k] ?? 0)) / IDLE_SECONDS) * 100;
    out.set(side, {
      idle: { serving: share("serving"), own: share("own") },
      memory: {
        servingRss: await sumOf(serving, rssMb),
        servingPss: await sumOf(serving, pssMb),
        ownRss: await sumOf(own, rssMb),
      },
    });
  }
  return out;
}

/**
 * A new version of live service i: from the deploy's start (the version is built) until a call is
 * answered by it, and until the version it replaced is freed.
 */
async function redeploy(ingress: Ingress, side: Side, i: number, version: string) {
  await side.prepare(i, version);
  const started = performance.now();
  const freed = await side.deploy(i, version);
  await answeredBy(ingress, side.path(i), `pong ${version}`);
  const deployMs = performance.now() - started;
  await freed();
  return { deployMs, freedMs: performance.now() - started };
}

async function timed(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? Number.NaN) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

function progress(line: string): void {
  console.error(`[bench] ${new Date().toISOString().slice(11, 19)} ${line}`);
}

const fixed = (x: number, digits = 0) => x.toFixed(digits);
const ratio = (x: number, of: number) => `${(x / of).toFixed(2)}x`;

async function report(results: Map<Side, Measured[]>, cellMb: number): Promise<string> {
  const [g = [], n = []] = [...results.values()];
  const pairs = g.map((row, k) => [row, n[k] as Measured] as const);
  const last = pairs.at(-1);
  return [
    `${await versions()}; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GB; one run. N services, each its own bundle (Gridiron) or process (Node), the same handler (bench/deploy-services.ts), behind one restate-server.`,
    "",
    `Cells: GRIDIRON_CELLS=${CELLS}, so ${alwaysRunningCells({ cells: Number(CELLS) }).length} workerd process(es) (the quarantine cell's starts only once a bundle is quarantined). A cell's own memory (a bare workerd with its router, before any deploy): ${fixed(cellMb)} MB RSS.`,
    "",
    `Memory and idle CPU, both sides idle at once for ${IDLE_SECONDS} s after the load. Gridiron serves from workerd (every cell, each with its router); its own processes (the supervisor, with the deployer's thread and the admin front, and the spare proof workerd) are shown apart. Node: the N processes. RSS counts shared pages in every process; PSS splits them. Ratios are Node / Gridiron's workerd.`,
    "",
    "| services | Gridiron: workerd RSS MB | Node: processes RSS MB | ratio | workerd PSS MB | Node PSS MB | ratio | Gridiron's own processes RSS MB | Node / (workerd + own) RSS | idle CPU % of a core: workerd / own / Node |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...pairs.map(([a, b]) => memoryRow(a, b)),
    "",
    `Deploy to serving: a new version of a live service, from its start (the version built) until a call through Restate's ingress is answered by it; Gridiron, \`activate\`; Node, a new process on a new port, registered with \`POST /deployments\`. Freed: until the replaced version is gone; Gridiron, pruned once drained (poll ${DRAIN_POLL_MS / 1000} s, grace ${DRAIN_GRACE_MS / 1000} s) and a fresh workerd taken over the build's cell, the old one exited (GRIDIRON_RELEASE_AFTER=${RELEASE_AFTER}); Node, unregistered and its process stopped by the same drain rule, first looked at one poll after the replacement as Gridiron's deployer does. Medians of ${REDEPLOYS}. First call: a service nobody called since its deploy (median of up to ${COLD_CALLS}), then its second call. Ratios are Node / Gridiron.`,
    "",
    "| services | Gridiron: deploy to serving ms | Node ms | ratio | Gridiron: to old version freed ms | Node ms | ratio | Gridiron: first call / second ms | Node: first / second ms | ratio, first call |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...pairs.map(([a, b]) => deployRow(a, b)),
    "",
    `Calls spread evenly over the N services, autocannon, ${BENCH_CONNECTIONS} connections, ${LOAD_SECONDS} s after ${WARMUP_SECONDS} s of warm-up. CPU ms per call from /proc. Ratio: Gridiron / Node throughput.`,
    "",
    "| services | Gridiron req/s | Node req/s | ratio | Gridiron p99 ms | Node p99 ms | errors G / N | CPU ms per call, Gridiron: restate + workerd + own | Node: restate + processes |",
    "|---|---|---|---|---|---|---|---|---|",
    ...pairs.map(([a, b]) => loadRow(a, b)),
    "",
    last
      ? `density N=${last[0].n}: memory ${ratio(last[1].memory.servingRss, last[0].memory.servingRss)}, deploy ${ratio(last[1].deployMs, last[0].deployMs)}, throughput ${ratio(last[0].rps, last[1].rps)}`
      : "no results",
  ].join("\n");
}

function memoryRow(g: Measured, n: Measured): string {
  const all = g.memory.servingRss + g.memory.ownRss;
  return `| ${g.n} | ${fixed(g.memory.servingRss)} | ${fixed(n.memory.servingRss)} | ${ratio(n.memory.servingRss, g.memory.servingRss)} | ${fixed(g.memory.servingPss)} | ${fixed(n.memory.servingPss)} | ${ratio(n.memory.servingPss, g.memory.servingPss)} | ${fixed(g.memory.ownRss)} | ${ratio(n.memory.servingRss, all)} | ${fixed(g.idle.serving, 1)} / ${fixed(g.idle.own, 1)} / ${fixed(n.idle.serving, 1)} |`;
}

function deployRow(g: Measured, n: Measured): string {
  return `| ${g.n} | ${fixed(g.deployMs)} | ${fixed(n.deployMs)} | ${ratio(n.deployMs, g.deployMs)} | ${fixed(g.freedMs)} | ${fixed(n.freedMs)} | ${ratio(n.freedMs, g.freedMs)} | ${fixed(g.coldMs, 1)} / ${fixed(g.warmMs, 1)} | ${fixed(n.coldMs, 1)} / ${fixed(n.warmMs, 1)} | ${ratio(n.coldMs, g.coldMs)} |`;
}

function loadRow(g: Measured, n: Measured): string {
  const c = (x: number) => x.toFixed(2);
  return `| ${g.n} | ${fixed(g.rps)} | ${fixed(n.rps)} | ${ratio(g.rps, n.rps)} | ${g.p99} | ${n.p99} | ${g.errors} / ${n.errors} | ${c(g.cpuPerCall.restate)} + ${c(g.cpuPerCall.serving)} + ${c(g.cpuPerCall.own)} | ${c(n.cpuPerCall.restate)} + ${c(n.cpuPerCall.serving)} |`;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
