import { Counter, Histogram, Registry } from "prom-client";
import { z } from "zod";
import { type Attempt, type Batch, type Line, type LogRecord, OUTCOMES, type Outcome } from "./records.ts";

/**
 * The node's recent lines per bundle, in memory, and the outcomes of every Restate call its
 * builds served. Bounded per bundle by lines and by bytes: the oldest go first. Nothing survives a
 * restart of the process holding it (the supervisor, or the `ops` process under runit), and each
 * node keeps only what its own workerd served.
 */

export interface Limits {
  /** Lines kept per bundle. */
  lines: number;
  /** Characters of text kept per bundle (a cut line is at most ~4 KiB). */
  chars: number;
}

const DEFAULT_LIMITS: Limits = { lines: 10_000, chars: 4 * 1024 * 1024 };

/**
 * Which lines a reader wants; every field narrows. status ok: lines of attempts that went well;
 * error: of those that did not (error, exception, killed). search: a case-insensitive substring.
 * since: epoch milliseconds.
 */
export const LogFilterSchema = z.object({
  build: z.string().optional(),
  invocation: z.string().optional(),
  status: z.enum(["ok", "error"]).optional(),
  search: z.string().optional(),
  since: z.coerce.number().optional(),
});
export type LogFilter = z.infer<typeof LogFilterSchema>;

/**
 * A build's Restate calls (attempts) on this node, by outcome: what a gradual rollout judges a
 * canary by. `counts` since the process started (with `durationSeconds`, their summed duration);
 * `lastMinute` those that arrived in the last 60 s, for rates.
 */
export interface BuildOutcomes {
  bundle: string;
  build: string;
  counts: Record<Outcome, number>;
  durationSeconds: number;
  lastMinute: Record<Outcome, number>;
}

const WINDOW_SECONDS = 60;

const zeroCounts = (): Record<Outcome, number> =>
  Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;

interface Tally {
  bundle: string;
  build: string;
  counts: Record<Outcome, number>;
  durationSeconds: number;
  /** Per second of arrival, the last WINDOW_SECONDS of them at most. */
  seconds: { second: number; counts: Record<Outcome, number> }[];
}

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function matches(record: LogRecord, filter: LogFilter): boolean {
  if (filter.build !== undefined && record.build !== filter.build) return false;
  if (filter.invocation !== undefined && record.invocationId !== filter.invocation) return false;
  if (filter.status !== undefined && (record.outcome === "ok") !== (filter.status === "ok")) return false;
  if (filter.since !== undefined && record.time < filter.since) return false;
  if (filter.search !== undefined && !record.text.toLowerCase().includes(filter.search.toLowerCase())) return false;
  return true;
}

interface Ring {
  records: LogRecord[];
  chars: number;
}

type Listener = (records: LogRecord[]) => void;

export class LogStore {
  readonly registry = new Registry();
  private readonly rings = new Map<string, Ring>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly tallies = new Map<string, Tally>();
  private readonly attempts = new Counter({
    name: "gridiron_attempts_total",
    help: "Requests Restate made to a build on this node (attempts of invocations), by bundle, build and outcome: ok, error (the handler failed, or an HTTP error), exception (the build threw past the SDK), killed (workerd ended it)",
    labelNames: ["bundle", "build", "outcome"] as const,
    registers: [this.registry],
  });
  private readonly durations = new Histogram({
    name: "gridiron_attempt_duration_seconds",
    help: "How long those attempts took, from the request's start to the end of its response body, by bundle and build",
    labelNames: ["bundle", "build"] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly dropped = new Counter({
    name: "gridiron_log_lines_dropped_total",
    help: "Lines of a bundle dropped before they were kept, because more were waiting in its isolate than it holds",
    labelNames: ["bundle"] as const,
    registers: [this.registry],
  });

  private readonly node: string | undefined;
  private readonly limits: Limits;

  /** `node`: this node's name on a cluster, put on every record. */
  constructor(node?: string, limits: Limits = DEFAULT_LIMITS) {
    this.node = node;
    this.limits = limits;
  }

  /** `now`: when the batch arrived, which places its calls in the last minute's counts. */
  add(batch: Batch, now = Date.now()): void {
    for (const [bundle, count] of Object.entries(batch.dropped)) this.dropped.inc({ bundle }, count);
    const byBundle = new Map<string, LogRecord[]>();
    for (const attempt of batch.attempts) {
      if (attempt.counted) this.count(attempt, now);
      const records = byBundle.get(attempt.bundle) ?? [];
      for (const line of attempt.lines) records.push(this.recordOf(attempt, line));
      byBundle.set(attempt.bundle, records);
    }
    for (const [bundle, records] of byBundle) {
      if (records.length === 0) continue;
      this.keep(bundle, records);
      for (const listener of this.listeners.get(bundle) ?? []) listener(records);
    }
  }

  /** The kept lines of a bundle that match, oldest first. */
  query(bundle: string, filter: LogFilter): LogRecord[] {
    return (this.rings.get(bundle)?.records ?? []).filter((record) => matches(record, filter));
  }

  /** Calls `listener` with each new group of a bundle's lines that match, until the returned function is called. */
  subscribe(bundle: string, filter: LogFilter, listener: Listener): () => void {
    const filtered: Listener = (records) => {
      const wanted = records.filter((record) => matches(record, filter));
      if (wanted.length) listener(wanted);
    };
    const set = this.listeners.get(bundle) ?? new Set();
    set.add(filtered);
    this.listeners.set(bundle, set);
    return () => {
      set.delete(filtered);
      if (set.size === 0) this.listeners.delete(bundle);
    };
  }

  /** Every build's outcome counts on this node: since the process started, and in the last minute. */
  outcomes(now = Date.now()): BuildOutcomes[] {
    const from = Math.floor(now / 1000) - WINDOW_SECONDS;
    return [...this.tallies.values()].map((tally) => {
      const lastMinute = zeroCounts();
      for (const { second, counts } of tally.seconds) {
        if (second <= from) continue;
        for (const o of OUTCOMES) lastMinute[o] += counts[o];
      }
      const { bundle, build, durationSeconds } = tally;
      return { bundle, build, counts: { ...tally.counts }, durationSeconds, lastMinute };
    });
  }

  private count(attempt: Attempt, now: number): void {
    const { bundle, build, outcome } = attempt;
    const key = `${bundle}/${build}`;
    let tally = this.tallies.get(key);
    if (!tally) {
      tally = { bundle, build, counts: zeroCounts(), durationSeconds: 0, seconds: [] };
      this.tallies.set(key, tally);
      // Every outcome from the first call on, at 0, so the first error shows as an increase.
      for (const o of OUTCOMES) this.attempts.inc({ bundle, build, outcome: o }, 0);
    }
    tally.counts[outcome] += 1;
    tally.durationSeconds += attempt.durationMs / 1000;
    const second = Math.floor(now / 1000);
    let bucket = tally.seconds.at(-1);
    if (bucket?.second !== second) {
      bucket = { second, counts: zeroCounts() };
      tally.seconds.push(bucket);
      if (tally.seconds.length > WINDOW_SECONDS) tally.seconds.shift();
    }
    bucket.counts[outcome] += 1;
    this.attempts.inc({ bundle, build, outcome });
    this.durations.observe({ bundle, build }, attempt.durationMs / 1000);
  }

  private recordOf(attempt: Attempt, line: Line): LogRecord {
    return {
      time: line.time,
      level: line.level,
      text: line.text,
      bundle: attempt.bundle,
      build: attempt.build,
      target: attempt.target,
      invocationId: attempt.invocationId,
      outcome: attempt.outcome,
      ...(this.node ? { node: this.node } : {}),
    };
  }

  /** Appends, then lets the oldest go until the bundle is within both limits. */
  private keep(bundle: string, records: LogRecord[]): void {
    const ring = this.rings.get(bundle) ?? { records: [], chars: 0 };
    this.rings.set(bundle, ring);
    for (const record of records) {
      ring.records.push(record);
      ring.chars += record.text.length;
    }
    let excess = Math.max(0, ring.records.length - this.limits.lines);
    let chars = ring.chars;
    for (let i = 0; i < excess; i++) chars -= ring.records[i]?.text.length ?? 0;
    while (chars > this.limits.chars && excess < ring.records.length) {
      chars -= ring.records[excess]?.text.length ?? 0;
      excess += 1;
    }
    ring.records.splice(0, excess);
    ring.chars = chars;
  }
}
