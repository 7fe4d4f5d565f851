import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { Ingress } from "../test/ingress.ts";
import { buildWorker, CELL_WORKERD, findChild, startTestMesh, type TestMesh } from "../test/mesh.ts";
import { cpuSeconds, parentOf } from "./proc.ts";

/**
 * What attributing builds' lines costs (README: Logs), measured in `npm run bench`: the same
 * stateless call on two meshes, one with GRIDIRON_LOGS on and one with it off, each measured alone
 * and then beside a noisy bundle that logs about NOISE_LINES_PER_SECOND lines a second. Both meshes
 * run at once and are loaded in turn, in short slices (on, off, on, off, ...): the machine is
 * shared, and a load that comes and goes then weighs on both sides alike rather than on whichever
 * ran while it lasted. The idle mesh costs a few percent of a core, the same to each side.
 */

/** Lines per second the noisy bundle aims at: test/fixtures/chatty's `noisy` handler, in calls of NOISE_BATCH lines. */
const NOISE_LINES_PER_SECOND = 10_000;
const NOISE_BATCH = 500;
/** Slices each side's `seconds` is cut into. */
const SLICES = 5;

/** One side's totals over its slices. */
interface Run {
  requests: number;
  seconds: number;
  errors: number;
  /** Each slice's p50 and p99, ms. */
  p50s: number[];
  p99s: number[];
  /** CPU seconds of workerd and of the supervisor (which holds the collector). */
  workerdCpu: number;
  supervisorCpu: number;
}

interface Side {
  attribution: boolean;
  mesh: TestMesh;
  ingress: Ingress;
  pids: Record<string, number>;
  alone: Run;
  noisy: Run;
  /** Lines the noisy bundle logged, and over how long, while `noisy` was measured. */
  noiseLines: number;
  noiseMs: number;
}

export interface AttributionSources {
  /** bench/worker built in request-response mode with service prefix `gr_` (run.ts's bench-rr). */
  bench: string;
  /** test/fixtures/chatty. */
  chatty: string;
}

export async function attributionTable(
  sources: AttributionSources,
  seconds: number,
  connections: number,
): Promise<string> {
  console.error("[bench] attribution on and off: starting a mesh each");
  const sides = await Promise.all([true, false].map((attribution) => startSide(attribution, sources)));
  try {
    for (const side of sides) await warmUp(side, connections);
    const slice = seconds / SLICES;
    for (let i = 0; i < SLICES; i++) for (const side of sides) await measure(side, side.alone, slice, connections);
    for (let i = 0; i < SLICES; i++) {
      for (const side of sides) {
        const noise = startNoise(side.ingress);
        await measure(side, side.noisy, slice, connections);
        const made = await noise.stop();
        side.noiseLines += made.lines;
        side.noiseMs += made.ms;
      }
    }
  } finally {
    await Promise.all(sides.map((side) => side.mesh.stop()));
  }
  return table(sides as [Side, Side], seconds, connections);
}

function table([on, off]: [Side, Side], seconds: number, connections: number): string {
  const rps = (run: Run) => run.requests / run.seconds;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const perThousand = (cpu: number, run: Run) => ((cpu * 1000) / Math.max(1, run.requests)).toFixed(2);
  const f = (x: number) => x.toFixed(0);
  const line = (side: Side) => {
    const { alone, noisy } = side;
    return `| ${side.attribution ? "on" : "off"} | ${f(rps(alone))} | ${median(alone.p50s)} / ${median(alone.p99s)} | ${perThousand(alone.workerdCpu, alone)} + ${perThousand(alone.supervisorCpu, alone)} | ${f(rps(noisy))} | ${median(noisy.p50s)} / ${median(noisy.p99s)} | ${f((side.noiseLines * 1000) / Math.max(1, side.noiseMs))} | ${alone.errors} / ${noisy.errors} |`;
  };
  const ratio = rps(on.alone) / rps(off.alone);
  return [
    `Attribution of builds' lines (GRIDIRON_LOGS), greeter (stateless, request-response) alone and beside a bundle logging ~10,000 lines/s; both meshes up, loaded in turn in ${SLICES} slices of ${(seconds / SLICES).toFixed(1)} s each, ${connections} connections; p50 / p99 are the medians of the slices':`,
    "",
    "| attribution | req/s | p50 / p99 ms | CPU s per 1k calls: workerd + supervisor | req/s beside the noisy bundle | p50 / p99 ms beside it | noisy bundle's lines/s | errors alone / beside |",
    "|---|---|---|---|---|---|---|---|",
    line(on),
    line(off),
    "",
    `attribution on/off per-call throughput: ${ratio.toFixed(3)}x (${ratio >= 0.95 ? "within" : "NOT within"} 5%)`,
  ].join("\n");
}

async function startSide(attribution: boolean, sources: AttributionSources): Promise<Side> {
  const mesh = await startTestMesh({ GRIDIRON_LOGS: String(attribution) });
  try {
    const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
    await ingress.call("deployer/bench-rr/activate", { source: sources.bench, version: "1.0.0" });
    await ingress.call("deployer/chatty/activate", { source: sources.chatty, version: "1.0.0" });
    const workerd = await findChild(mesh, CELL_WORKERD);
    const pids = { workerd, supervisor: await parentOf(workerd) };
    return { attribution, mesh, ingress, pids, alone: emptyRun(), noisy: emptyRun(), noiseLines: 0, noiseMs: 0 };
  } catch (error) {
    await mesh.stop();
    throw error;
  }
}

function emptyRun(): Run {
  return { requests: 0, seconds: 0, errors: 0, p50s: [], p99s: [], workerdCpu: 0, supervisorCpu: 0 };
}

/** Closed-loop calls of gr_greeter/greet. */
function load(side: Side, seconds: number, connections: number) {
  return autocannon({
    url: `${side.mesh.settings.ingressUrl}/gr_greeter/greet`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '"bench"',
    connections,
    duration: seconds,
  });
}

/** So isolates, connections and JIT are ready before the first slice. */
async function warmUp(side: Side, connections: number): Promise<void> {
  await load(side, 2, connections);
}

async function measure(side: Side, run: Run, seconds: number, connections: number): Promise<void> {
  const before = await cpuSeconds(side.pids);
  const result = await load(side, seconds, connections);
  const after = await cpuSeconds(side.pids);
  run.requests += result.requests.total;
  run.seconds += result.duration;
  run.errors += result.errors + result.non2xx;
  run.p50s.push(result.latency.p50);
  run.p99s.push(result.latency.p99);
  run.workerdCpu += (after.workerd ?? 0) - (before.workerd ?? 0);
  run.supervisorCpu += (after.supervisor ?? 0) - (before.supervisor ?? 0);
}

/** Calls chatty/noisy at NOISE_LINES_PER_SECOND until stopped; stop() says how many lines it made in how long. */
function startNoise(ingress: Ingress): { stop(): Promise<{ lines: number; ms: number }> } {
  let running = true;
  let lines = 0;
  const started = Date.now();
  const loop = (async () => {
    while (running) {
      const tick = Date.now();
      await ingress.call("chatty/noisy", NOISE_BATCH).catch(() => undefined);
      lines += NOISE_BATCH;
      const due = (NOISE_BATCH / NOISE_LINES_PER_SECOND) * 1000 - (Date.now() - tick);
      if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { lines, ms: Date.now() - started };
    },
  };
}

/**
 * `npm run bench:attribution`: this comparison alone (BENCH_SECONDS, BENCH_CONNECTIONS as in
 * run.ts), building the two bundles it serves, for quick runs while working on attribution's cost.
 */
async function main(): Promise<void> {
  const buildsDir = await mkdtemp(join(tmpdir(), "gridiron-bench-attribution-"));
  try {
    const [bench, chatty] = await Promise.all([
      buildWorker("bench/worker", join(buildsDir, "bench-rr"), { PREFIX: '"gr_"', BIDIRECTIONAL: "false" }),
      buildWorker("test/fixtures/chatty", join(buildsDir, "chatty")),
    ]);
    const seconds = Number(process.env.BENCH_SECONDS ?? 10);
    const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
    console.log(await attributionTable({ bench, chatty }, seconds, connections));
  } finally {
    await rm(buildsDir, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
