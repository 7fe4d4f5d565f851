import { cpus, totalmem } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import autocannon from "autocannon";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { Ingress } from "../test/ingress.ts";
import type { TestMesh } from "../test/mesh.ts";
import { failedAttempts } from "../test/restate-metrics.ts";
import {
  activate,
  answeredBy,
  bundleName,
  DRAIN_GRACE_MS,
  DRAIN_POLL_MS,
  type NodeFleet,
  type Sources,
  waitForPrunes,
  withSides,
  workerdMb,
  workerdPid,
} from "./sides.ts";
import { versions } from "./versions.ts";

/**
 * `npm run bench:deploy`: deploys under load, with Gridiron and with what a Restate user does
 * without it: one Node SDK endpoint process per service, and per version a new process on a new
 * port, registered with Restate's admin API, the old one stopped once drained. Both sides serve
 * the same handlers (bench/deploy-services.ts) behind the mesh's one restate-server, each with a
 * counter and LIVE small services live. Under a steady load of counter increments: failed calls,
 * attempts Restate retried (its own counter), exact final counts and latency, with and without
 * deploys. Then workerd's memory after activate/prune cycles (Gridiron only: a stopped process
 * gives its memory back). Deploy time and memory by number of services are `npm run
 * bench:density`'s. Prints markdown tables; ratios are Node's figure over Gridiron's.
 *
 * BENCH_RATE (200 calls/s), BENCH_LOAD_SECONDS (60), BENCH_CYCLES (50) and BENCH_LIVE (50 small
 * services) scale it down for a quick look.
 */

const RATE = Number(process.env.BENCH_RATE ?? 200);
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 60);
const CYCLES = Number(process.env.BENCH_CYCLES ?? 50);
const LIVE = Number(process.env.BENCH_LIVE ?? 50);
const WARMUP_SECONDS = 2;
const DEPLOYS = 10;
const KEYS = 64;

/** What a deploy is of: the counter, or the i-th small service. */
type Deployed = "counter" | number;

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
  gridiron: { loads: Loads; cycles: { beforeMb: number; afterMb: number } };
  node: { loads: Loads };
}

async function main(): Promise<void> {
  const results = await withSides({}, async (mesh, fleet, sources) => ({
    results: await bench(mesh, fleet, sources),
    releaseAfter: mesh.settings.releaseAfter,
  }));
  console.log(await report(results.results, results.releaseAfter));
}

/**
 * Both sides in one mesh. Their services stay live through all of it, so each side's load runs
 * beside the same processes.
 */
async function bench(mesh: TestMesh, fleet: NodeFleet, sources: Sources): Promise<Results> {
  const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
  let version = 0;
  const gridiron = async (what: Deployed) => {
    const next = `1.0.${version++}`;
    if (what === "counter") return activate(ingress, "counter", sources.counter, next);
    return activate(ingress, bundleName(what), await sources.ping(what, next), next);
  };
  const node = (what: Deployed) =>
    what === "counter" ? fleet.deploy("counter", "node_counter") : fleet.deploy("ping", `node_ping${what}`);
  for (const [side, deploy, prefix] of [
    ["Gridiron", gridiron, ""],
    ["Node", node, "node_"],
  ] as const) {
    console.error(`[bench] ${side}: deploying the counter and ${LIVE} small services`);
    await deploy("counter");
    for (let i = 1; i <= LIVE; i++) {
      await deploy(i);
      await answeredBy(ingress, `${prefix}ping${i}/ping`);
    }
  }
  const gridironLoads = await loads("Gridiron", gridiron, (run, during) => gridironLoad(mesh, run, during));
  const nodeLoads = await loads("Node", node, (run, during) => nodeLoad(mesh, fleet, run, during));
  const cycles = await pruneCycles(mesh, ingress, gridiron);
  return { gridiron: { loads: gridironLoads, cycles }, node: { loads: nodeLoads } };
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
      await deploy(k % 2 === 0 ? "counter" : ((k - 1) % LIVE) + 1);
    }
  });
  return { steady, deploying };
}

/** Gridiron's counter under load; a replaced process is a new workerd taking over (PIDs sampled each second). */
async function gridironLoad(mesh: TestMesh, run: string, during: () => Promise<void>): Promise<Load> {
  const workerds = new Set([await workerdPid(mesh)]);
  const watching = setInterval(() => {
    workerdPid(mesh).then(
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
    await waitForPrunes(ingress, bundleName(1));
  }
  return { beforeMb, afterMb: await workerdMb(mesh) };
}

/**
 * Why Restate retried, in its own words, and what else logged an error (workerd's lines come
 * unprefixed, straight from workerd), so a nonzero count can be looked into.
 */
function logFailures(said: string[], label: string): void {
  const retries = said.filter((line) => line.includes("Invocation error")).map((line) => line.replace(/.*error=/, ""));
  const failures = said.filter((line) => !line.includes("Invocation error") && /error|exception/i.test(line));
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

async function report({ gridiron, node }: Results, releaseAfter: number): Promise<string> {
  return [
    `${await versions()}; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GB; one run. Both sides behind the mesh's one restate-server, serving the same handlers (bench/deploy-services.ts), each with a counter and ${LIVE} small services live. Ratios are Node / Gridiron.`,
    "",
    `Counter increments over ${KEYS} keys at ${RATE} calls/s for ${LOAD_SECONDS} s (autocannon, 32 connections), ${LIVE} small services live on each side. ${DEPLOYS} deploys spread over the run, every other one of the counter. Gridiron: \`activate\`; the deployer prunes a replaced build once Restate shows nothing on it for ${DRAIN_GRACE_MS / 1000} s (polled each ${DRAIN_POLL_MS / 1000} s), and every ${releaseAfter} prunes a fresh workerd takes over. Node: a new process and its registration; the old deployment is unregistered and its process stopped by the same drain rule, polled as often through the admin API's \`/query\`. Processes replaced: workerd handovers (Gridiron), old versions' processes stopped (Node).`,
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
