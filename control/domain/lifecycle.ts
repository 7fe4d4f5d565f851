import type { Build, Vars } from "./bundle.ts";
import type { RecordedManifest } from "./manifest.ts";
import type { Owners, TakenOver } from "./ownership.ts";
import type { ProtocolMode } from "./protocol-mode.ts";
import type { RolloutView } from "./rollout.ts";
import { revisionsOf } from "./secrets.ts";

/**
 * The life of a build, as pure rules over the deployer's records: the deployer object does the
 * I/O and asks these functions what to do next.
 *
 *   active ──replaced──> draining <──busy again── drained ──grace over──> pruned
 *      ^                    │                        │                      │
 *      └──────────────── rollback (files still kept) ┴──────────────────────┘
 *   failed: activation did not get as far as serving.
 *   canary: proved and routed, taking a share of new calls through a split (rollout.ts) until it
 *   is promoted (active) or aborted (draining, until no split sends it calls).
 */

export const BUILD_STATES = ["active", "draining", "drained", "pruned", "failed", "canary"] as const;
export type BuildState = (typeof BUILD_STATES)[number];

export interface BuildRecord extends Build {
  deploymentId: string | null;
  uri: string;
  /** The cell that serves it (workerd/cells.ts); absent in records from before cells, and for failed builds. */
  cell?: number;
  services: string[];
  /** As the build's manifest declared it; absent if it failed before discovery. */
  protocolMode?: ProtocolMode;
  /** The manifest its proof read: what Restate is shown (manifest.ts); absent in older records. */
  manifest?: RecordedManifest;
  state: BuildState;
  /** When the build last entered each state (ISO times). */
  times: Partial<Record<BuildState, string>>;
  /** False once a pruned build's files are deleted; it can no longer be rolled back to. */
  filesKept: boolean;
  /** Identifies the current chain of drain checks, so a stale delayed check ends itself. */
  watch?: string;
  error?: string;
  /** Services this build's bundle took over from other bundles when it was activated. */
  tookOver?: TakenOver[];
  /** Secrets it was activated as needing (`requireSecrets`): they cannot be deleted while it is active. */
  requiredSecrets?: string[];
  /** Where the build came from and what its deployer said of it (absent in older records). */
  origin?: Origin;
  /** When a drain check last looked at this replaced build. */
  lastDrainCheck?: string;
  /**
   * What was done to the build, oldest first, written in the same state write as the change. The
   * ops port counts deploys, rollbacks and prunes from it, so a handler Restate retried or
   * replayed is counted once. Absent in records written before it existed.
   */
  history?: HistoryEntry[];
}

/**
 * What can be done to a build: an activation makes it active, a rollback makes it active again,
 * an activation of it fails, or it is pruned; a canary is rolled out to a percentage of new calls
 * (each step is an event) and promoted (activated) or aborted.
 */
export const BUILD_EVENTS = ["activated", "rolled back to", "failed", "pruned", "rolled out", "aborted"] as const;
export type BuildEvent = (typeof BUILD_EVENTS)[number];

export interface HistoryEntry {
  at: string;
  event: BuildEvent;
  /** For an activation, successful or failed: from the handler's start to the record's write. */
  durationMs?: number;
  /** For a rollout step: the canary's percentage. */
  percent?: number;
}

export interface Origin {
  /** The activation's source URL, or the project it was built from (`project` in activate). */
  source: string;
  message?: string;
}

/** A build record with a Restate deployment. */
export type DeployedRecord = BuildRecord & { deploymentId: string };

/** What Restate's introspection says runs on a deployment right now. */
export interface DrainObservation {
  /** Services for which this deployment is the latest: new calls would go to it. */
  latestFor: string[];
  /** Invocations pinned to it that are not completed (paused ones included). */
  pinned: number;
  paused: number;
  /** Attempts running on it that are not pinned yet. */
  running: number;
}

export function isDrained(o: DrainObservation): boolean {
  return o.latestFor.length === 0 && o.pinned === 0 && o.running === 0;
}

/**
 * Whether a delayed drain check still has a replaced build to look at. A check is stale once a
 * newer watch, a rollback or a prune took over its build; it then ends without a look.
 */
export function isCurrentDrainCheck<R extends Pick<BuildRecord, "state" | "watch">>(
  record: R | undefined,
  watch: string,
): record is R {
  if (!record || record.watch !== watch) return false;
  return record.state === "draining" || record.state === "drained";
}

export type DrainStep =
  | { kind: "busy" }
  | { kind: "drained"; checkAgainMs: number }
  | { kind: "wait"; checkAgainMs: number }
  | { kind: "prune" };

/**
 * The next step for a replaced build after one look at Restate. A build must stay drained for a
 * whole grace period before it is pruned; any work seen in between starts the grace period over.
 */
export function drainStep(
  record: Pick<BuildRecord, "state" | "times">,
  observed: DrainObservation,
  nowMs: number,
  graceMs: number,
): DrainStep {
  if (!isDrained(observed)) return { kind: "busy" };
  const drainedAt = record.state === "drained" && record.times.drained ? Date.parse(record.times.drained) : undefined;
  if (drainedAt === undefined) return { kind: "drained", checkAgainMs: graceMs };
  const left = drainedAt + graceMs - nowMs;
  return left <= 0 ? { kind: "prune" } : { kind: "wait", checkAgainMs: left };
}

/** What follows one drain check: look again after `checkAgainMs` with `record` stored, or prune. */
export type DrainFollowUp<R = BuildRecord> = { kind: "watch"; record: R; checkAgainMs: number } | { kind: "prune" };

/** What drains: a replaced build, or a split (rollout.ts) that is no longer the latest. */
export type Drainable = Pick<BuildRecord, "state" | "times" | "lastDrainCheck">;

/**
 * The build's next record and next look after a drain step. It looks again at least every poll
 * interval, so work that starts during the grace period is seen and starts it over: a drained
 * build seen busy goes back to draining.
 */
export function afterDrainCheck<R extends Drainable>(
  record: R,
  step: DrainStep,
  now: string,
  pollMs: number,
): DrainFollowUp<R> {
  const checked = { ...record, lastDrainCheck: now };
  switch (step.kind) {
    case "busy": {
      const next = record.state === "drained" ? withState(checked, "draining", now) : checked;
      return { kind: "watch", record: next, checkAgainMs: pollMs };
    }
    case "drained":
      return {
        kind: "watch",
        record: withState(checked, "drained", now),
        checkAgainMs: Math.min(step.checkAgainMs, pollMs),
      };
    case "wait":
      return { kind: "watch", record: checked, checkAgainMs: Math.min(step.checkAgainMs, pollMs) };
    case "prune":
      return { kind: "prune" };
  }
}

export function withState<R extends Drainable>(record: R, state: BuildState, now: string): R {
  return { ...record, state, times: { ...record.times, [state]: now } };
}

/**
 * The history a build has in `records`. It outlives the record it was written in: a failed
 * record replaced by a successful activation of the same content, a pruned one by a rollback.
 */
function historyOf(records: BuildRecord[], buildId: string): HistoryEntry[] {
  return records.find((r) => r.buildId === buildId)?.history ?? [];
}

function withEvent(record: BuildRecord, entry: HistoryEntry, history = record.history ?? []): BuildRecord {
  return { ...record, history: [...history, entry] };
}

/**
 * Makes `promoted` the active build, recording `entry` (an activation or a rollback, at
 * `entry.at`) in its history; the build it replaces starts draining.
 */
export function promote(records: BuildRecord[], promoted: BuildRecord, entry: HistoryEntry): BuildRecord[] {
  const others = records
    .filter((r) => r.buildId !== promoted.buildId)
    .map((r) => (r.state === "active" ? withState(r, "draining", entry.at) : r));
  return [...others, withEvent(withState(promoted, "active", entry.at), entry, historyOf(records, promoted.buildId))];
}

/**
 * The records once an activation of `build` failed `durationMs` after it started. A build that
 * never served is recorded as failed, its route and files removed; the same content failing again
 * replaces its earlier failed record, so retries leave one record, not a pile. A build that did
 * serve before keeps its record and state, and only its history tells of the failure.
 */
export function recordFailure(
  records: BuildRecord[],
  build: Build,
  error: string,
  now: string,
  durationMs: number,
  origin?: Origin,
): BuildRecord[] {
  const entry: HistoryEntry = { at: now, event: "failed", durationMs };
  const known = records.find((r) => r.buildId === build.buildId && r.state !== "failed");
  if (known) return records.map((r) => (r === known ? withEvent(r, entry) : r));
  const failed: BuildRecord = {
    ...build,
    ...(origin ? { origin } : {}),
    deploymentId: null,
    uri: "",
    services: [],
    filesKept: false,
    error,
    state: "failed",
    times: { failed: now },
  };
  return [
    ...records.filter((r) => r.buildId !== build.buildId),
    withEvent(failed, entry, historyOf(records, build.buildId)),
  ];
}

/** A build once it is unregistered and unrouted: pruned, its drain watch ended. */
export function recordPrune(record: BuildRecord, now: string): BuildRecord {
  const { watch: _ended, ...rest } = record;
  return withEvent(withState(rest, "pruned", now), { at: now, event: "pruned" });
}

/**
 * Whether a rollback may go back to `build`: one that is not the active one (a drifted build is the
 * active one, as status shows it), did not fail, and whose files are still kept. The dashboard
 * offers rollback by the same rule.
 */
export function canRollBackTo(build: { state: BuildView["state"]; filesKept: boolean }): boolean {
  const unable: BuildView["state"][] = ["active", "drifted", "failed", "canary"];
  return !unable.includes(build.state) && build.filesKept;
}

/**
 * The builds a prune takes: the named one, else every drained build. A build pruned already is
 * left alone, so pruning twice is a no-op the second time (one event, one count).
 */
export function pruneTargets(
  records: BuildRecord[],
  buildId?: string,
): BuildRecord[] | { error: string; status: number } {
  if (!buildId) return records.filter((r) => r.state === "drained");
  const record = records.find((r) => r.buildId === buildId);
  if (!record) return { error: `no build ${buildId}`, status: 404 };
  if (record.state === "active" || record.state === "canary") {
    return {
      error: `build ${buildId} is ${record.state}; ${record.state === "active" ? "activate or roll back to another build" : "abort or promote its rollout"} first`,
      status: 409,
    };
  }
  return record.state === "pruned" ? [] : [record];
}

/** The build a rollback goes to: the named one, else the most recently active one still on disk. */
export function rollbackTarget(records: BuildRecord[], buildId?: string): BuildRecord | { error: string } {
  const candidates = records.filter(canRollBackTo);
  if (buildId) {
    const named = records.find((r) => r.buildId === buildId);
    if (!named) return { error: `no build ${buildId}` };
    if (named.state === "active") return { error: `build ${buildId} is already active` };
    if (!candidates.includes(named)) return { error: `build ${buildId} is ${named.state} and its files are gone` };
    return named;
  }
  const newest = candidates.sort((a, b) => (b.times.active ?? "").localeCompare(a.times.active ?? ""))[0];
  return newest ?? { error: "there is no earlier build to roll back to" };
}

/**
 * Pruned builds whose files can go: all but the `keep` most recently active builds keep their
 * files for rollback.
 */
export function filesToDelete(records: BuildRecord[], keep: number): BuildRecord[] {
  const byRecency = [...records]
    .filter((r) => r.state !== "failed")
    .sort((a, b) => (b.times.active ?? "").localeCompare(a.times.active ?? ""));
  const kept = new Set(byRecency.slice(0, keep).map((r) => r.buildId));
  return records.filter((r) => r.state === "pruned" && r.filesKept && !kept.has(r.buildId));
}

/** What is seen of a build that should serve: its route, its registration, and service owners. */
export interface ServingObservation {
  routed: boolean;
  registered: boolean;
  /** Services for which its deployment is the latest. */
  latestFor: string[];
  owners: Owners;
}

export interface Drift {
  /** Why the build does not serve as recorded; empty when it does. */
  problems: string[];
  /** Its services that another bundle took over: service -> bundle. Not a problem: asked for. */
  movedTo: Record<string, string>;
}

/** Pure: how an active build differs from serving every service it declares. */
export function driftOf(
  record: Pick<BuildRecord, "name" | "deploymentId" | "services">,
  seen: ServingObservation,
): Drift {
  const problems: string[] = [];
  const movedTo: Record<string, string> = {};
  if (!seen.routed) problems.push("its route is gone: workerd does not serve it");
  if (!seen.registered) problems.push(`Restate no longer knows its deployment ${record.deploymentId}`);
  for (const service of record.services) {
    const owner = seen.owners[service];
    if (owner && owner !== record.name) movedTo[service] = owner;
    else if (seen.registered && !seen.latestFor.includes(service)) {
      problems.push(`another deployment is the latest for service ${service}`);
    }
  }
  return { problems, movedTo };
}

/** Builds whose deployment Restate still has, so invocations may be bound to them. */
export function liveBuilds<R extends Pick<BuildRecord, "deploymentId" | "state">>(
  records: R[],
): (R & { deploymentId: string })[] {
  return records.filter(
    (r): r is R & { deploymentId: string } => Boolean(r.deploymentId) && r.state !== "pruned" && r.state !== "failed",
  );
}

/** Invocations bound to a build's deployment now. */
export type InvocationCounts = Pick<DrainObservation, "pinned" | "paused">;

/** A build as `status` shows it. */
export interface BuildView {
  version: string;
  buildId: string;
  deploymentId: string | null;
  uri: string;
  cell?: number;
  services: string[];
  state: BuildState | "drifted";
  times: BuildRecord["times"];
  filesKept: boolean;
  pinned: number;
  paused: number;
  drift?: string[];
  movedTo?: Record<string, string>;
  tookOver?: TakenOver[];
  error?: string;
  source?: string;
  message?: string;
  /** What was done to the build, oldest first: activations, rollbacks to it, failures, its prune. */
  history?: HistoryEntry[];
  lastDrainCheck?: string;
  /** In a cluster: the nodes whose workerd serves the build now. */
  nodes?: string[];
  /** Why the routers refuse its calls: it hung its cell alone, and its bundle is quarantined (culprit.ts). */
  refused?: string;
  /** The vars it runs with. */
  vars?: Vars;
  /** The revision of each secret it runs with; never a value, sealed or not. */
  secrets?: Record<string, string>;
}

export interface StatusView {
  name: string;
  active: string | null;
  builds: BuildView[];
  /** The rollout in progress, if one is. */
  rollout?: RolloutView;
}

/**
 * What `status` answers for a bundle. `counts` are by build id (a build not counted shows 0);
 * `drift` is the active build's, as driftOf found it; in a cluster, `serving` lists by build id
 * the nodes that serve it; `refused`, by build id, why the routers refuse a build's calls.
 */
export function statusView(
  name: string,
  records: BuildRecord[],
  counts: Record<string, InvocationCounts>,
  drift: Drift | undefined,
  serving?: Record<string, string[]>,
  rollout?: RolloutView,
  refused: Record<string, string> = {},
): StatusView {
  const active = records.find((r) => r.state === "active");
  return {
    name,
    active: active?.buildId ?? null,
    builds: records.map((r) => ({
      ...buildView(r, counts[r.buildId], r === active ? drift : undefined),
      ...(serving ? { nodes: serving[r.buildId] ?? [] } : {}),
      ...(refused[r.buildId] ? { refused: refused[r.buildId] } : {}),
    })),
    ...(rollout ? { rollout } : {}),
  };
}

function buildView(record: BuildRecord, counts: InvocationCounts | undefined, drift: Drift | undefined): BuildView {
  const problems = drift?.problems ?? [];
  const movedTo = drift?.movedTo ?? {};
  return {
    version: record.version,
    buildId: record.buildId,
    deploymentId: record.deploymentId,
    uri: record.uri,
    ...(record.cell === undefined ? {} : { cell: record.cell }),
    services: record.services,
    // An active build that does not serve as recorded is not shown as active.
    state: problems.length ? "drifted" : record.state,
    times: record.times,
    filesKept: record.filesKept,
    pinned: counts?.pinned ?? 0,
    paused: counts?.paused ?? 0,
    ...(problems.length ? { drift: problems } : {}),
    ...(Object.keys(movedTo).length ? { movedTo } : {}),
    ...(record.tookOver ? { tookOver: record.tookOver } : {}),
    ...(record.error ? { error: record.error } : {}),
    ...(record.origin ? { source: record.origin.source } : {}),
    ...(record.origin?.message ? { message: record.origin.message } : {}),
    ...(record.history?.length ? { history: record.history } : {}),
    ...(record.lastDrainCheck ? { lastDrainCheck: record.lastDrainCheck } : {}),
    ...(record.vars ? { vars: record.vars } : {}),
    ...(record.secrets ? { secrets: revisionsOf(record.secrets) } : {}),
  };
}
