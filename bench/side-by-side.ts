import autocannon from "autocannon";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { Ingress } from "../test/ingress.ts";
import { CELL_WORKERD, findChildren, startTestMesh, type TestMesh } from "../test/mesh.ts";
import { cpuSeconds, parentOf } from "./proc.ts";

/**
 * Configurations of the mesh compared in one run, for a per-call cost that is a few percent
 * (`bench:attribution`, `bench:cells`): the meshes run at once and are loaded in turn, in short
 * slices, each round starting with the next side (A B, B A, A B, ...), so neither side always
 * follows the other. The machine is shared, and a load that comes and goes then weighs on every
 * side alike rather than on whichever ran while it lasted; each round's slices are close in time,
 * so the ratio of a round's two slices is judged, and the median of those ratios. An idle mesh
 * costs a few percent of a core, the same to each side.
 */

/** One side: a name for the table and the mesh settings that make it. */
export interface Config {
  name: string;
  env: Record<string, string>;
}

/** One measurement: closed-loop calls for a while. */
export interface Sample {
  requests: number;
  seconds: number;
  errors: number;
  p50: number;
  p99: number;
}

/** A side's totals over one phase's slices. */
export interface Run {
  requests: number;
  seconds: number;
  errors: number;
  /** Each slice's req/s, p50 and p99 (ms). */
  rpss: number[];
  p50s: number[];
  p99s: number[];
  /** CPU seconds of the cells' workerds and of the supervisor (which holds the log collector). */
  workerdCpu: number;
  supervisorCpu: number;
}

export interface Side {
  config: Config;
  mesh: TestMesh;
  ingress: Ingress;
  /** Every cell's workerd, and their parent, the supervisor. */
  pids: { workerd: number[]; supervisor: number };
  /** Phase name -> its totals. */
  runs: Map<string, Run>;
}

/** One side per config, in the configs' order. */
export type Sides<C extends readonly Config[]> = { -readonly [K in keyof C]: Side };

/**
 * Starts a mesh per config at once, has `prepare` deploy what each serves, runs `bench` on them,
 * and stops every mesh whatever happens.
 */
export async function sideBySide<T, const C extends readonly Config[]>(
  configs: C,
  prepare: (side: Side) => Promise<void>,
  bench: (sides: Sides<C>) => Promise<T>,
): Promise<T> {
  const started = await Promise.allSettled(configs.map((config) => startSide(config, prepare)));
  const sides = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  try {
    const failed = started.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    return await bench(sides as Sides<C>);
  } finally {
    await Promise.all(sides.map((side) => side.mesh.stop()));
  }
}

/** A mesh started with `config`'s settings and prepared; the caller stops it. */
export async function startSide(config: Config, prepare: (side: Side) => Promise<void>): Promise<Side> {
  const mesh = await startTestMesh(config.env);
  try {
    const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
    const side: Side = { config, mesh, ingress, pids: { workerd: [], supervisor: 0 }, runs: new Map() };
    await prepare(side);
    // After the deploys: the quarantine cell's workerd, should one start, is counted too.
    const workerd = await findChildren(mesh, CELL_WORKERD);
    side.pids = { workerd, supervisor: await parentOf(workerd[0] ?? 0) };
    return side;
  } catch (error) {
    await mesh.stop();
    throw error;
  }
}

/** Loads `side` for `seconds`: one or more closed loops of calls. */
export type Load = (side: Side, seconds: number) => Promise<Sample>;

/**
 * Measures `phase` on every side in turn, `slices` rounds of one slice each, `seconds` a slice,
 * round i starting with side i (mod their number); `during`, if given, starts something beside
 * each slice (outside the counted calls) and returns its stop.
 */
export async function alternate(
  sides: readonly Side[],
  phase: string,
  { slices, seconds }: { slices: number; seconds: number },
  load: Load,
  during?: (side: Side) => () => Promise<void>,
): Promise<void> {
  for (let i = 0; i < slices; i++) {
    for (const side of rotated(sides, i)) {
      const stop = during?.(side);
      await measure(side, phase, seconds, load);
      await stop?.();
    }
  }
}

/**
 * Measures `phase` on every side at the same time, `slices` times, `seconds` a slice: the sides
 * share the machine at each instant, so a load that comes and goes weighs on all of them alike
 * even within a slice, and each side's share of the machine follows its cost per call.
 */
export async function atOnce(
  sides: readonly Side[],
  phase: string,
  { slices, seconds }: { slices: number; seconds: number },
  load: Load,
): Promise<void> {
  for (let i = 0; i < slices; i++) await Promise.all(sides.map((side) => measure(side, phase, seconds, load)));
}

/** `xs` starting at its (i mod length)-th. */
export function rotated<X>(xs: readonly X[], i: number): X[] {
  const at = xs.length ? i % xs.length : 0;
  return [...xs.slice(at), ...xs.slice(0, at)];
}

/** So isolates, connections and JIT are ready before the first slice. */
export async function warmUp(sides: readonly Side[], load: Load): Promise<void> {
  for (const side of sides) await load(side, 2);
}

async function measure(side: Side, phase: string, seconds: number, load: Load): Promise<void> {
  const run = side.runs.get(phase) ?? emptyRun();
  side.runs.set(phase, run);
  const before = await cpuSeconds(side.pids);
  const sample = await load(side, seconds);
  const after = await cpuSeconds(side.pids);
  run.requests += sample.requests;
  run.seconds += sample.seconds;
  run.errors += sample.errors;
  run.rpss.push(sample.requests / Math.max(1e-9, sample.seconds));
  run.p50s.push(sample.p50);
  run.p99s.push(sample.p99);
  run.workerdCpu += (after.workerd ?? 0) - (before.workerd ?? 0);
  run.supervisorCpu += (after.supervisor ?? 0) - (before.supervisor ?? 0);
}

function emptyRun(): Run {
  return { requests: 0, seconds: 0, errors: 0, rpss: [], p50s: [], p99s: [], workerdCpu: 0, supervisorCpu: 0 };
}

/**
 * Closed-loop calls of `path` with a JSON `body` through `side`'s ingress: its front, or with
 * `socketPath` another way in (bench:front calls Restate's own socket).
 */
export async function closedLoop(
  side: Side,
  path: string,
  body: string,
  seconds: number,
  connections: number,
  socketPath?: string,
): Promise<Sample> {
  const result = await autocannon({
    url: `${side.mesh.settings.ingressUrl}/${path}`,
    ...(socketPath ? { socketPath } : {}),
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    connections,
    duration: seconds,
  });
  return {
    requests: result.requests.total,
    seconds: result.duration,
    errors: result.errors + result.non2xx,
    p50: result.latency.p50,
    p99: result.latency.p99,
  };
}

/** Loops run at once as one sample: their calls summed, the slower loop's latency. */
export function together(samples: Sample[]): Sample {
  const sum = (pick: (s: Sample) => number) => samples.reduce((total, s) => total + pick(s), 0);
  const max = (pick: (s: Sample) => number) => Math.max(0, ...samples.map(pick));
  return {
    requests: sum((s) => s.requests),
    seconds: max((s) => s.seconds),
    errors: sum((s) => s.errors),
    p50: max((s) => s.p50),
    p99: max((s) => s.p99),
  };
}

/** A side's totals for `phase` (empty if it was not measured). */
export function runOf(side: Side, phase: string): Run {
  return side.runs.get(phase) ?? emptyRun();
}

export function rps(run: Run): number {
  return run.requests / Math.max(1e-9, run.seconds);
}

/** "p50 / p99" in ms: the medians of the slices'. */
export function latencies(run: Run): string {
  return `${quantile(run.p50s, 0.5)} / ${quantile(run.p99s, 0.5)}`;
}

/** "workerd + supervisor" CPU seconds per 1,000 calls. */
export function cpuPerThousand(run: Run): string {
  const { workerd, supervisor } = cpuPerCall(run);
  return `${(workerd * 1000).toFixed(2)} + ${(supervisor * 1000).toFixed(2)}`;
}

/** CPU seconds per call of the cells' workerds and of the supervisor. */
export function cpuPerCall(run: Run): { workerd: number; supervisor: number } {
  const calls = Math.max(1, run.requests);
  return { workerd: run.workerdCpu / calls, supervisor: run.supervisorCpu / calls };
}

/** `label`: how much more CPU a's calls took than b's, in µs a call, workerd's and the supervisor's. */
export function cpuDeltaLine(label: string, a: Run, b: Run): string {
  const [x, y] = [cpuPerCall(a), cpuPerCall(b)];
  const us = (seconds: number) => `${seconds >= 0 ? "+" : ""}${(seconds * 1e6).toFixed(0)} µs`;
  return `${label}: workerd ${us(x.workerd - y.workerd)}, supervisor ${us(x.supervisor - y.supervisor)} a call`;
}

/**
 * a's req/s over b's: over all slices, of their slices' medians, and the median of each round's
 * ratio (a's slice over b's in the same round, close in time), which is judged; with the lower
 * and upper quartile of the rounds' ratios, to show their spread.
 */
export function ratios(
  a: Run,
  b: Run,
): { total: number; medians: number; paired: number; pairedLow: number; pairedHigh: number } {
  const rounds = a.rpss.slice(0, b.rpss.length).map((x, i) => ratio(x, b.rpss[i] ?? 0));
  return {
    total: ratio(rps(a), rps(b)),
    medians: ratio(quantile(a.rpss, 0.5), quantile(b.rpss, 0.5)),
    paired: quantile(rounds, 0.5),
    pairedLow: quantile(rounds, 0.25),
    pairedHigh: quantile(rounds, 0.75),
  };
}

/**
 * `label`: a's req/s over b's (ratios above), and whether the median of the rounds' ratios is
 * within 5%.
 */
export function ratioLine(label: string, a: Run, b: Run): string {
  const r = ratios(a, b);
  const judged = r.paired >= 0.95 ? "within" : "NOT within";
  return `${label}: ${r.paired.toFixed(3)}x, the median of ${a.rpss.length} rounds' ratios (quartiles ${r.pairedLow.toFixed(3)}-${r.pairedHigh.toFixed(3)}; totals ${r.total.toFixed(3)}x, slice medians ${r.medians.toFixed(3)}x) (${judged} 5%)`;
}

function ratio(x: number, y: number): number {
  return x / Math.max(1e-9, y);
}

/** The q-quantile of `xs`, interpolated between its two nearest values (q = 0.5: the median). */
export function quantile(xs: number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  if (!sorted.length) return 0;
  const at = (sorted.length - 1) * q;
  const low = sorted[Math.floor(at)] ?? 0;
  const high = sorted[Math.ceil(at)] ?? 0;
  return low + (high - low) * (at - Math.floor(at));
}
