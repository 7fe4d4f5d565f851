import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Ingress } from "../test/ingress.ts";
import { buildWorker } from "../test/mesh.ts";
import { BENCH_CONNECTIONS, BENCH_SECONDS } from "./load.ts";
import {
  alternate,
  atOnce,
  closedLoop,
  cpuDeltaLine,
  cpuPerThousand,
  type Load,
  latencies,
  ratioLine,
  rps,
  runOf,
  type Side,
  sideBySide,
  warmUp,
} from "./side-by-side.ts";

/**
 * What attributing builds' lines costs (README: Logs), measured in `npm run bench`: the same
 * stateless call on meshes with GRIDIRON_LOGS on and off, each measured alone and then beside a
 * noisy bundle that logs about NOISE_LINES_PER_SECOND lines a second, the meshes up at once and
 * loaded in turn (side-by-side.ts), then all loaded at once. A third mesh, off as well, is measured
 * alone beside them: the two off meshes' ratio (A/A) is the noise floor of the on/off ratio (A/B)
 * on this machine.
 */

/** Lines per second the noisy bundle aims at: test/fixtures/chatty's `noisy` handler, in calls of NOISE_BATCH lines. */
const NOISE_LINES_PER_SECOND = 10_000;
const NOISE_BATCH = 500;
/**
 * A slice's length: short, so that the slices of a round see nearly the same machine, yet long
 * against a call (1-s slices, at ~150 req/s and 180 ms a call, gave rounds' ratios of 0.8-1.3
 * between identical meshes).
 */
const SLICE_SECONDS = 2;
/** Rounds at the least, whatever `seconds`: fewer give no median worth reading. */
const MIN_ROUNDS = 5;
const CONFIGS = [
  { name: "on", env: { GRIDIRON_LOGS: "true" } },
  { name: "off", env: { GRIDIRON_LOGS: "false" } },
  { name: "off again (A/A control)", env: { GRIDIRON_LOGS: "false" } },
] as const;

export interface AttributionSources {
  /** bench/worker built in request-response mode with service prefix `gr_` (run.ts's bench-rr). */
  bench: string;
  /** test/fixtures/chatty. */
  chatty: string;
}

/** Lines the noisy bundle logged per side, and over how long, while `noisy` was measured. */
type Noise = Map<Side, { lines: number; ms: number }>;

/** `seconds` of calls per side and phase, cut into rounds of one SLICE_SECONDS slice per side. */
export async function attributionTable(
  sources: AttributionSources,
  seconds: number,
  connections: number,
): Promise<string> {
  console.error("[bench] attribution on, off and off again: starting a mesh each");
  const prepare = async (side: Side) => {
    await side.ingress.call("deployer/bench-rr/activate", { source: sources.bench, version: "1.0.0" });
    await side.ingress.call("deployer/chatty/activate", { source: sources.chatty, version: "1.0.0" });
  };
  return sideBySide(CONFIGS, prepare, async (sides) => {
    const [on, off] = sides;
    const load: Load = (side, s) => closedLoop(side, "gr_greeter/greet", '"bench"', s, connections);
    const rounds = Math.max(MIN_ROUNDS, Math.round(seconds / SLICE_SECONDS));
    const slices = { slices: rounds, seconds: seconds / rounds };
    const noise: Noise = new Map();
    await warmUp(sides, load);
    await alternate(sides, "alone", slices, load);
    await atOnce(sides, "at once", slices, load);
    await alternate([on, off], "noisy", slices, load, (side) => noiseBeside(side, noise));
    return table(sides, noise, slices, connections);
  });
}

function table(
  [on, off, control]: [Side, Side, Side],
  noise: Noise,
  { slices, seconds }: { slices: number; seconds: number },
  connections: number,
): string {
  const line = (side: Side) => {
    const [alone, noisy] = [runOf(side, "alone"), runOf(side, "noisy")];
    const made = noise.get(side);
    const beside = made
      ? `${rps(noisy).toFixed(0)} | ${latencies(noisy)} | ${((made.lines * 1000) / Math.max(1, made.ms)).toFixed(0)} | ${alone.errors} / ${noisy.errors}`
      : `- | - | - | ${alone.errors} / -`;
    return `| ${side.config.name} | ${rps(alone).toFixed(0)} | ${latencies(alone)} | ${cpuPerThousand(alone)} | ${beside} |`;
  };
  return [
    `Attribution of builds' lines (GRIDIRON_LOGS), greeter (stateless, request-response) alone and beside a bundle logging ~10,000 lines/s; the meshes up at once, loaded in turn in ${slices} rounds of one ${seconds.toFixed(1)}-s slice each, ${connections} connections; p50 / p99 are the medians of the slices'; the third mesh is off too, measured alone as a control:`,
    "",
    "| attribution | req/s | p50 / p99 ms | CPU s per 1k calls: workerd + supervisor | req/s beside the noisy bundle | p50 / p99 ms beside it | noisy bundle's lines/s | errors alone / beside |",
    "|---|---|---|---|---|---|---|---|",
    line(on),
    line(off),
    line(control),
    "",
    ratioLine("attribution on/off per-call throughput", runOf(on, "alone"), runOf(off, "alone")),
    ratioLine("A/A control, off again/off (the noise floor)", runOf(control, "alone"), runOf(off, "alone")),
    `The three meshes loaded at once, ${connections} connections each (each mesh's share of the machine follows its cost per call): ${atOnceLine(on)}, ${atOnceLine(off)}, ${atOnceLine(control)}.`,
    ratioLine("attribution on/off, loaded at once", runOf(on, "at once"), runOf(off, "at once")),
    ratioLine("A/A control, loaded at once", runOf(control, "at once"), runOf(off, "at once")),
    // CPU per call moves less with the machine's load than throughput does: the quieter figure.
    ...["alone", "at once"].flatMap((phase) => [
      cpuDeltaLine(`CPU, on - off (${phase})`, runOf(on, phase), runOf(off, phase)),
      cpuDeltaLine(`CPU, A/A control (${phase})`, runOf(control, phase), runOf(off, phase)),
    ]),
  ].join("\n");
}

/** A side's req/s and CPU per 1k calls while the meshes were loaded at once. */
function atOnceLine(side: Side): string {
  const run = runOf(side, "at once");
  return `${side.config.name} ${rps(run).toFixed(0)} req/s, ${cpuPerThousand(run)} CPU s per 1k calls`;
}

/** Starts the noisy bundle beside a slice on `side`; its stop adds what it made to `noise`. */
function noiseBeside(side: Side, noise: Noise): () => Promise<void> {
  const running = startNoise(side.ingress);
  return async () => {
    const made = await running.stop();
    const total = noise.get(side) ?? { lines: 0, ms: 0 };
    noise.set(side, { lines: total.lines + made.lines, ms: total.ms + made.ms });
  };
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
    console.log(await attributionTable({ bench, chatty }, BENCH_SECONDS, BENCH_CONNECTIONS));
  } finally {
    await rm(buildsDir, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
