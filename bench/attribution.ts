import autocannon from "autocannon";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { Ingress } from "../test/ingress.ts";
import { findChild, startTestMesh } from "../test/mesh.ts";
import { cpuSeconds, parentOf } from "./proc.ts";

/**
 * What attributing builds' lines costs (README: Logs), measured in `npm run bench`: the same
 * stateless call on two meshes, one with GRIDIRON_LOGS on (every request's trace goes through the
 * tail worker to the collector) and one with it off, each measured alone and then beside a noisy
 * bundle that logs about NOISE_LINES_PER_SECOND lines a second. One mesh at a time, so they never
 * share the cores.
 */

/** Lines per second the noisy bundle aims at: test/fixtures/chatty's `noisy` handler, in calls of NOISE_BATCH lines. */
const NOISE_LINES_PER_SECOND = 10_000;
const NOISE_BATCH = 500;

interface Run {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU seconds per 1,000 calls of workerd and of the supervisor (which holds the collector). */
  workerdCpu: number;
  supervisorCpu: number;
}

interface Row {
  attribution: boolean;
  alone: Run;
  noisy: Run;
  /** Lines per second the noisy bundle really logged while `noisy` was measured. */
  noiseRate: number;
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
  const rows: Row[] = [];
  for (const attribution of [true, false]) rows.push(await measureMesh(attribution, sources, seconds, connections));
  const [on, off] = rows as [Row, Row];
  const f = (x: number) => x.toFixed(0);
  const c = (x: number) => x.toFixed(2);
  const line = (row: Row) =>
    `| ${row.attribution ? "on" : "off"} | ${f(row.alone.rps)} | ${row.alone.p50} / ${row.alone.p99} | ${c(row.alone.workerdCpu)} + ${c(row.alone.supervisorCpu)} | ${f(row.noisy.rps)} | ${row.noisy.p50} / ${row.noisy.p99} | ${f(row.noiseRate)} | ${row.alone.errors} / ${row.noisy.errors} |`;
  const ratio = on.alone.rps / off.alone.rps;
  return [
    "Attribution of builds' lines (GRIDIRON_LOGS), greeter (stateless, request-response) alone and beside a bundle logging ~10,000 lines/s:",
    "",
    "| attribution | req/s | p50 / p99 ms | CPU s per 1k calls: workerd + supervisor | req/s beside the noisy bundle | p50 / p99 ms beside it | noisy bundle's lines/s | errors alone / beside |",
    "|---|---|---|---|---|---|---|---|",
    line(on),
    line(off),
    "",
    `attribution on/off per-call throughput: ${ratio.toFixed(3)}x (${ratio >= 0.95 ? "within" : "NOT within"} 5%)`,
  ].join("\n");
}

async function measureMesh(attribution: boolean, sources: AttributionSources, seconds: number, connections: number) {
  console.error(`[bench] attribution ${attribution ? "on" : "off"}: starting a mesh`);
  const mesh = await startTestMesh({ GRIDIRON_LOGS: String(attribution) });
  try {
    const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
    await ingress.call("deployer/bench-rr/activate", { source: sources.bench, version: "1.0.0" });
    await ingress.call("deployer/chatty/activate", { source: sources.chatty, version: "1.0.0" });
    const workerd = await findChild(mesh, "/workerd ");
    const pids = { workerd, supervisor: await parentOf(workerd) };
    const url = mesh.settings.ingressUrl;
    const alone = await load(url, pids, seconds, connections);
    const noise = startNoise(ingress);
    const noisy = await load(url, pids, seconds, connections);
    const noiseRate = await noise.stop();
    return { attribution, alone, noisy, noiseRate };
  } finally {
    await mesh.stop();
  }
}

/** Closed-loop calls of gr_greeter/greet, after a short warm-up. */
async function load(url: string, pids: Record<string, number>, seconds: number, connections: number): Promise<Run> {
  const options = {
    url: `${url}/gr_greeter/greet`,
    method: "POST" as const,
    headers: { "content-type": "application/json" },
    body: '"bench"',
    connections,
  };
  await autocannon({ ...options, duration: 2 });
  const before = await cpuSeconds(pids);
  const result = await autocannon({ ...options, duration: seconds });
  const after = await cpuSeconds(pids);
  const perThousand = (k: string) => (((after[k] ?? 0) - (before[k] ?? 0)) * 1000) / Math.max(1, result.requests.total);
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
    workerdCpu: perThousand("workerd"),
    supervisorCpu: perThousand("supervisor"),
  };
}

/** Calls chatty/noisy at NOISE_LINES_PER_SECOND until stopped; stop() says the rate it reached. */
function startNoise(ingress: Ingress): { stop(): Promise<number> } {
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
      return (lines * 1000) / Math.max(1, Date.now() - started);
    },
  };
}
