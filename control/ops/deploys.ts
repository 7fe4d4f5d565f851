import {
  BUILD_EVENTS,
  BUILD_STATES,
  type BuildEvent,
  type BuildRecord,
  type BuildState,
  liveBuilds,
} from "../domain/lifecycle.ts";

/**
 * What the metrics say about deploys, derived from the deployer's durable records alone: each
 * count is the number of history entries, so a handler that Restate retried or replayed, or a
 * deployer that crashed halfway, is counted once, and every process that reads the records (the
 * supervisor, a runit `ops` process, after any restart) gives the same numbers.
 */

/** The part of a build record the metrics read. */
export type StoredBuild = Pick<BuildRecord, "buildId" | "state" | "deploymentId" | "history">;

export interface BundleRecords {
  bundle: string;
  records: StoredBuild[];
}

/** The outcome of an activation, as the deploy metrics label it. */
export type DeployResult = Extract<BuildEvent, "activated" | "failed">;

export interface DeployFacts {
  /** How often each event happened to the bundle's builds: every bundle and event, zeros too. */
  events: { bundle: string; event: BuildEvent; count: number }[];
  /** How long each activation took, from its handler's start to its record's write. */
  durations: { bundle: string; result: DeployResult; seconds: number }[];
  /** The bundle's builds in each state: every bundle and state, zeros too. */
  builds: { bundle: string; state: BuildState; count: number }[];
  /** Builds whose deployment Restate still has, so invocations may be pinned to them. */
  live: { bundle: string; build: string; deploymentId: string }[];
}

export function deployFacts(bundles: BundleRecords[]): DeployFacts {
  const facts: DeployFacts = { events: [], durations: [], builds: [], live: [] };
  for (const { bundle, records } of bundles) {
    const history = records.flatMap((r) => r.history ?? []);
    for (const event of BUILD_EVENTS) {
      facts.events.push({ bundle, event, count: history.filter((h) => h.event === event).length });
    }
    for (const { event, durationMs } of history) {
      if ((event === "activated" || event === "failed") && durationMs !== undefined) {
        facts.durations.push({ bundle, result: event, seconds: durationMs / 1000 });
      }
    }
    for (const state of BUILD_STATES) {
      facts.builds.push({ bundle, state, count: records.filter((r) => r.state === state).length });
    }
    for (const r of liveBuilds(records)) facts.live.push({ bundle, build: r.buildId, deploymentId: r.deploymentId });
  }
  return facts;
}
