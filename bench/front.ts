import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildWorker } from "../test/mesh.ts";
import { BENCH_CONNECTIONS, BENCH_SECONDS } from "./load.ts";
import {
  alternate,
  closedLoop,
  cpuPerThousand,
  type Load,
  latencies,
  ratioLine,
  rps,
  runOf,
  type Side,
  startSide,
  warmUp,
} from "./side-by-side.ts";

/**
 * What the ingress front costs a tenant's call (issue 23: refuse before queueing): one mesh, the
 * same calls through the front (GRIDIRON_INGRESS_PORT) and straight into Restate's ingress socket,
 * in turn, in slices (side-by-side.ts), so a load that comes and goes on the shared machine
 * weighs on both alike. The front runs in the supervisor, so its CPU shows in the supervisor's.
 */

const SLICES = 5;
const BUNDLE = "bench-rr";

export async function frontTable(bench: string, seconds: number, connections: number): Promise<string> {
  console.error("[bench] the ingress front: starting a mesh");
  const front = await startSide({ name: "through the front", env: { GRIDIRON_CELLS: "1" } }, async (side) => {
    await side.ingress.call(`deployer/${BUNDLE}/activate`, { source: bench, version: "1.0.0" });
  });
  try {
    // The same mesh, called another way: its own runs.
    const direct: Side = { ...front, config: { name: "Restate's socket", env: {} }, runs: new Map() };
    const sides: [Side, Side] = [front, direct];
    const load: Load = (side, s) =>
      closedLoop(
        side,
        "gr_greeter/greet",
        '"bench"',
        s,
        connections,
        side === direct ? side.mesh.settings.ingressSocket : undefined,
      );
    await warmUp(sides, load);
    await alternate(sides, "calls", { slices: SLICES, seconds: seconds / SLICES }, load);
    const line = (side: Side) => {
      const run = runOf(side, "calls");
      return `| ${side.config.name} | ${rps(run).toFixed(0)} | ${latencies(run)} | ${cpuPerThousand(run)} | ${run.errors} |`;
    };
    return [
      `The ingress front, greeter (stateless, request-response), one mesh, one cell: the same calls through the front and straight into Restate's ingress socket, in turn, in ${SLICES} slices of ${(seconds / SLICES).toFixed(1)} s each, ${connections} connections; p50 / p99 are the medians of the slices':`,
      "",
      "| way in | req/s | p50 / p99 ms | CPU s per 1k calls: workerd + supervisor (with the front) | errors |",
      "|---|---|---|---|---|",
      line(front),
      line(direct),
      "",
      ratioLine("through the front / straight in, per-call throughput", runOf(front, "calls"), runOf(direct, "calls")),
    ].join("\n");
  } finally {
    await front.mesh.stop();
  }
}

/** `npm run bench:front`: this comparison alone (BENCH_SECONDS, BENCH_CONNECTIONS as in run.ts). */
async function main(): Promise<void> {
  const buildsDir = await mkdtemp(join(tmpdir(), "gridiron-bench-front-"));
  try {
    const bench = await buildWorker("bench/worker", join(buildsDir, "gr"), {
      PREFIX: JSON.stringify("gr_"),
      BIDIRECTIONAL: "false",
    });
    console.log(await frontTable(bench, BENCH_SECONDS, BENCH_CONNECTIONS));
  } finally {
    await rm(buildsDir, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
