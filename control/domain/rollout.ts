import { z } from "zod";
import { splitSegment } from "../node/workerd/router/split.js";
import type { BuildState, HistoryEntry } from "./lifecycle.ts";
import type { RecordedManifest } from "./manifest.ts";

/**
 * Gradual rollouts, as pure rules over the deployer's records. A rollout step is a "split": one
 * Restate deployment, registered as the latest for the bundle's services, whose URI names the
 * stable build, the canary build and the canary's percentage (workerd/router/split.js picks the
 * build per request by a fixed hash of the key or invocation id). A split never changes: a new
 * percentage is a new split, and the old one drains and is pruned like a replaced build.
 */

/**
 * The canary's share of new calls in one step: 0-99 (100 is a promote). At 0 the canary is an
 * upload: proved, routed and compiled beside the active build, sent no call, so that `promote`
 * only registers it (Cloudflare's `versions upload`, then `versions deploy`).
 */
export const Percent = z
  .number()
  .int()
  .min(0, "a rollout percentage is 0-99: `abort` gives the stable build every call and ends the rollout")
  .max(99, "a rollout percentage is 0-99: `promote` gives the canary every call");

export interface SplitRecord {
  /** Its path segment, `split~{stable}~{canary}~{percent}`: its id among the bundle's splits. */
  segment: string;
  stable: string;
  canary: string;
  percent: number;
  deploymentId: string;
  uri: string;
  /** active while it is the latest; then draining, drained and pruned like a replaced build. */
  state: Extract<BuildState, "active" | "draining" | "drained" | "pruned">;
  times: Partial<Record<BuildState, string>>;
  watch?: string;
  lastDrainCheck?: string;
}

/** The automatic analysis asked for with `--auto`: its steps and thresholds. */
export const AutoPolicy = z.strictObject({
  /** The percentages to step through, rising; after the last one the canary is promoted. */
  steps: z
    .array(Percent.min(1, "an automatic rollout's steps are 1-99: a step of 0 would judge a canary sent no call"))
    .min(1)
    .max(10)
    .refine((steps) => steps.every((step, i) => i === 0 || step > (steps[i - 1] as number)), "steps must rise"),
  /** How long each step runs before its calls are judged; also the window they are counted over. */
  intervalSeconds: z.number().int().min(1).max(86_400),
  /** A step is not judged on fewer canary calls than this; it waits another interval. */
  minCalls: z.number().int().min(1).max(1_000_000),
  /** The canary is aborted when its error ratio exceeds the stable build's by more than this. */
  margin: z.number().min(0).max(1),
});
export type AutoPolicy = z.infer<typeof AutoPolicy>;

/** What `--auto` means without more: 10%, 50%, then promote, judged every 5 minutes. */
export const DEFAULT_AUTO: AutoPolicy = { steps: [10, 50], intervalSeconds: 300, minCalls: 20, margin: 0.05 };

/** The bundle's rollout in progress: one per bundle, from `activate` with a percent to promote or abort. */
export interface Rollout {
  stable: string;
  canary: string;
  percent: number;
  /** The segment of the split that is the latest now. */
  split: string;
  startedAt: string;
  /** When the current step (percentage) began. */
  stepAt: string;
  auto?: AutoState;
}

export interface AutoState {
  policy: AutoPolicy;
  /** When the deployer judges the current step (a delayed message to itself). */
  nextAt: string;
  /** Identifies the current chain of judgements, so a stale delayed one ends itself. */
  watch: string;
  /** Why the last judgement waited, if it did. */
  waiting?: string;
}

export const splitOf = (stable: string, canary: string, percent: number) => splitSegment({ stable, canary, percent });

/** Whether a split that is not pruned still sends calls to `buildId`: it must stay routed. */
export function heldBySplit(splits: SplitRecord[], buildId: string): boolean {
  return splits.some((s) => s.state !== "pruned" && (s.stable === buildId || s.canary === buildId));
}

/** What the shape check reads of a manifest. */
const Shape = z.object({
  protocolMode: z.string(),
  services: z.array(
    z.object({
      name: z.string(),
      ty: z.string(),
      handlers: z.array(z.object({ name: z.string(), ty: z.string().optional() })),
    }),
  ),
});

/**
 * How two builds differ in what one split deployment must declare for both: their services,
 * each service's kind and handlers, each handler's kind, and the protocol mode. Undefined if
 * they do not. Restate registers one manifest for a deployment, so both builds must fit it.
 */
export function shapeDifference(stable: RecordedManifest, canary: RecordedManifest): string | undefined {
  // A proof reads only the services' names: a build's discovery may leave out the rest.
  const [stableShape, canaryShape] = [
    Shape.safeParse(JSON.parse(stable.body)),
    Shape.safeParse(JSON.parse(canary.body)),
  ];
  if (!stableShape.success || !canaryShape.success) {
    return `the ${stableShape.success ? "canary's" : "stable build's"} manifest does not declare every service's kind and handlers`;
  }
  const [a, b] = [stableShape.data, canaryShape.data];
  const differences: string[] = [];
  if (a.protocolMode !== b.protocolMode) {
    differences.push(`protocol mode ${a.protocolMode} on the stable build, ${b.protocolMode} on the canary`);
  }
  const kinds = (services: typeof a.services) =>
    new Map(
      services.flatMap((s) => [
        [s.name, `a ${s.ty.toLowerCase()}`],
        ...s.handlers.map((h): [string, string] => [`${s.name}/${h.name}`, `a ${(h.ty ?? "handler").toLowerCase()}`]),
      ]),
    );
  const before = kinds(a.services);
  const after = kinds(b.services);
  for (const [name, kind] of before) {
    const other = after.get(name);
    if (!other) differences.push(`${name} is only on the stable build`);
    else if (other !== kind) differences.push(`${name} is ${kind} on the stable build, ${other} on the canary`);
  }
  for (const name of after.keys()) if (!before.has(name)) differences.push(`${name} is only on the canary`);
  return differences.length ? differences.join("; ") : undefined;
}

/** How many calls of one build ended well or with an error, over a window. */
export interface OutcomeCounts {
  ok: number;
  error: number;
  /** Nodes whose counts could not be read (on a cluster, a node that did not answer in time). */
  unread?: string[];
}

/**
 * Where the automatic analysis reads per-build outcomes: the logs-and-outcomes work (issue #26)
 * counts each build's calls by how they ended. `counts` answers for the calls that ended in
 * [fromMs, toMs) on `buildId` of bundle `name`, whichever deployment (the build's own or a
 * split) Restate sent them through; an error is an attempt that threw (retried or terminal).
 */
export interface BuildOutcomes {
  counts(name: string, buildId: string, fromMs: number, toMs: number): Promise<OutcomeCounts>;
}

export type AutoDecision =
  | { kind: "abort"; reason: string }
  | { kind: "step"; percent: number }
  | { kind: "promote" }
  | { kind: "wait"; reason: string };

const ratio = ({ ok, error }: OutcomeCounts) => (ok + error ? error / (ok + error) : 0);
const percentText = (r: number) => `${(r * 100).toFixed(1)}%`;

/**
 * The automatic analysis, once per step: abort when the canary's error ratio is worse than the
 * stable build's by more than the margin; wait when the canary had too few calls to judge, or
 * when a node's counts could not be read (its calls might be the failing ones: part of the calls
 * may justify an abort, never a step up); else step up to the next percentage of the policy, or
 * promote after the last.
 */
export function judgeStep(
  policy: AutoPolicy,
  percent: number,
  stable: OutcomeCounts,
  canary: OutcomeCounts,
): AutoDecision {
  const calls = canary.ok + canary.error;
  const canaryRatio = ratio(canary);
  const stableRatio = ratio(stable);
  if (calls && canaryRatio > stableRatio + policy.margin) {
    return {
      kind: "abort",
      reason: `the canary's error ratio ${percentText(canaryRatio)} (${canary.error} of ${calls}) is over the stable build's ${percentText(stableRatio)} by more than ${percentText(policy.margin)}`,
    };
  }
  if (calls < policy.minCalls) {
    return { kind: "wait", reason: `the canary had ${calls} call(s) in the window, fewer than ${policy.minCalls}` };
  }
  const unread = [...new Set([...(stable.unread ?? []), ...(canary.unread ?? [])])];
  if (unread.length) {
    return { kind: "wait", reason: `the calls on ${unread.join(", ")} could not be counted (no answer in time)` };
  }
  const next = policy.steps.find((step) => step > percent);
  return next === undefined ? { kind: "promote" } : { kind: "step", percent: next };
}

/** A rollout as `status` shows it. */
export interface RolloutView extends Omit<Rollout, "auto"> {
  deploymentId: string;
  auto?: { policy: AutoPolicy; next: { at: string; percent: number | "promote" }; waiting?: string };
  /** Every split not yet pruned, with the invocations still pinned to it. */
  splits: (Pick<SplitRecord, "segment" | "percent" | "state" | "deploymentId"> & { pinned: number })[];
}

/** What `status` answers for the rollout: the current step, the next one and every live split. */
export function rolloutView(
  rollout: Rollout | undefined,
  splits: SplitRecord[],
  pinned: Record<string, number>,
): RolloutView | undefined {
  if (!rollout) return undefined;
  const { auto, ...rest } = rollout;
  const current = splits.find((s) => s.segment === rollout.split);
  return {
    ...rest,
    deploymentId: current?.deploymentId ?? "",
    ...(auto
      ? {
          auto: {
            policy: auto.policy,
            next: { at: auto.nextAt, percent: auto.policy.steps.find((s) => s > rollout.percent) ?? "promote" },
            ...(auto.waiting ? { waiting: auto.waiting } : {}),
          },
        }
      : {}),
    splits: liveSplits(splits).map(({ segment, percent, state, deploymentId }) => ({
      segment,
      percent,
      state,
      deploymentId,
      pinned: pinned[segment] ?? 0,
    })),
  };
}

export const liveSplits = (splits: SplitRecord[]) => splits.filter((s) => s.state !== "pruned");

/** A build's record with one more rollout event in its history. */
export function withRolloutEvent<R extends { history?: HistoryEntry[] }>(record: R, entry: HistoryEntry): R {
  return { ...record, history: [...(record.history ?? []), entry] };
}
