import autocannon from "autocannon";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { Ingress } from "../test/ingress.ts";
import { CELL_WORKERD, findChildren, startTestMesh, type TestMesh } from "../test/mesh.ts";
import { cpuSeconds, parentOf } from "./proc.ts";

/**
 * Two configurations of the mesh compared in one run, for a per-call cost that is a few percent
 * (`bench:attribution`, `bench:cells`): both meshes run at once and are loaded in turn, in short
 * slices (A, B, A, B, ...). The machine is shared, and a load that comes and goes then weighs on
 * both sides alike rather than on whichever ran while it lasted. The idle mesh costs a few percent
 * of a core, the same to each side.
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

/**
 * Starts a mesh per config at once, has `prepare` deploy what each serves, runs `bench` on both,
 * and stops both meshes whatever happens.
 */
export async function sideBySide<T>(
  configs: readonly [Config, Config],
  prepare: (side: Side) => Promise<void>,
  bench: (sides: [Side, Side]) => Promise<T>,
): Promise<T> {
  const started = await Promise.allSettled(configs.map((config) => startSide(config, prepare)));
  const sides = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  try {
    const failed = started.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    return await bench(sides as [Side, Side]);
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
 * Measures `phase` on both sides in turn, `slices` times each, `seconds` a slice; `during`, if
 * given, starts something beside each slice (outside the counted calls) and returns its stop.
 */
export async function alternate(
  sides: [Side, Side],
  phase: string,
  { slices, seconds }: { slices: number; seconds: number },
  load: Load,
  during?: (side: Side) => () => Promise<void>,
): Promise<void> {
  for (let i = 0; i < slices; i++) {
    for (const side of sides) {
      const stop = during?.(side);
      await measure(side, phase, seconds, load);
      await stop?.();
    }
  }
}

/** So isolates, connections and JIT are ready before the first slice. */
export async function warmUp(sides: [Side, Side], load: Load): Promise<void> {
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
  return `${median(run.p50s)} / ${median(run.p99s)}`;
}

/** "workerd + supervisor" CPU seconds per 1,000 calls. */
export function cpuPerThousand(run: Run): string {
  const per = (cpu: number) => ((cpu * 1000) / Math.max(1, run.requests)).toFixed(2);
  return `${per(run.workerdCpu)} + ${per(run.supervisorCpu)}`;
}

/** a's req/s over b's, over all slices and of their slices' medians (which one slice disturbed by the shared machine cannot move). */
export function ratios(a: Run, b: Run): { total: number; medians: number } {
  const ratio = (x: number, y: number) => x / Math.max(1e-9, y);
  return { total: ratio(rps(a), rps(b)), medians: ratio(median(a.rpss), median(b.rpss)) };
}

/** `label`: both ratios of a's req/s to b's, and whether the medians' is within 5%. */
export function ratioLine(label: string, a: Run, b: Run): string {
  const { total, medians } = ratios(a, b);
  return `${label}: ${total.toFixed(3)}x, slice medians ${medians.toFixed(3)}x (${medians >= 0.95 ? "within" : "NOT within"} 5%)`;
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
}
