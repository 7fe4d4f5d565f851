import { z } from "zod";
import type { BuildOutcomes as RolloutOutcomes } from "../domain/rollout.ts";
import type { Settings } from "../settings.ts";
import { answerOf } from "../wait.ts";
import { OUTCOMES, type Outcome } from "./records.ts";
import type { BuildOutcomes } from "./store.ts";

/**
 * Every build's call outcomes across the mesh: what a gradual rollout judges a canary by. Each
 * node counts the attempts its own workerd served (LogStore.outcomes, served at `/outcomes` on its
 * ops port); this asks every node and sums per build. Counts are since each node's ops process
 * started, so compare two readings (or use `lastMinute`) rather than totals.
 */

const ASK_TIMEOUT_MS = 2_000;

const Counts = z.object({
  ok: z.number(),
  error: z.number(),
  exception: z.number(),
  killed: z.number(),
}) satisfies z.ZodType<Record<Outcome, number>>;
const BuildOutcomesList = z.array(
  z.object({
    bundle: z.string(),
    build: z.string(),
    counts: Counts,
    durationSeconds: z.number(),
    lastMinute: Counts,
  }),
);

export interface MeshOutcomes {
  builds: BuildOutcomes[];
  /** Nodes whose counts are in `builds`; a node that did not answer in time is in `missing`. */
  answered: string[];
  missing: string[];
}

/** Where the outcomes are read: this node's ops port, or every peer's on a cluster. */
type OutcomeSettings = Pick<Settings, "cluster" | "ports" | "opsUrl">;

/** Asks this node, or on a cluster every node, for its outcomes, and sums them per build. */
export async function meshOutcomes(settings: OutcomeSettings): Promise<MeshOutcomes> {
  const nodes = settings.cluster
    ? settings.cluster.peers.map((peer) => ({ name: peer.name, url: `http://${peer.address}:${settings.ports.ops}` }))
    : [{ name: "local", url: settings.opsUrl }];
  const readings = await Promise.all(
    nodes.map(async (node) => ({
      node,
      builds: await answerOf(`${node.url}/outcomes`, BuildOutcomesList, ASK_TIMEOUT_MS),
    })),
  );
  return {
    builds: sumOutcomes(readings.flatMap((r) => (r.builds ? [r.builds] : []))),
    answered: readings.filter((r) => r.builds).map((r) => r.node.name),
    missing: readings.filter((r) => !r.builds).map((r) => r.node.name),
  };
}

/**
 * What the automatic rollout analysis reads (domain/rollout.ts): a build's attempts across the
 * mesh, ok or failed (error, exception or killed). The nodes keep rates for the last minute
 * only, so the window is the minute before the judgement, whatever `fromMs` the step began at:
 * a step's interval should be a minute or more for the judgement to see the whole of it. Nodes
 * that do not answer in time are named in `unread`: the judgement then does not step up.
 */
export function rolloutOutcomes(settings: OutcomeSettings): RolloutOutcomes {
  return {
    async counts(name, buildId) {
      const { builds, missing } = await meshOutcomes(settings);
      const last = builds.find((b) => b.bundle === name && b.build === buildId)?.lastMinute;
      const unread = missing.length ? { unread: missing } : {};
      if (!last) return { ok: 0, error: 0, ...unread };
      return { ok: last.ok, error: last.error + last.exception + last.killed, ...unread };
    },
  };
}

/** One entry per build, each count the sum of the nodes'. */
export function sumOutcomes(perNode: BuildOutcomes[][]): BuildOutcomes[] {
  const sums = new Map<string, BuildOutcomes>();
  for (const entry of perNode.flat()) {
    const key = `${entry.bundle}/${entry.build}`;
    const sum = sums.get(key);
    if (!sum) {
      sums.set(key, { ...entry, counts: { ...entry.counts }, lastMinute: { ...entry.lastMinute } });
      continue;
    }
    sum.durationSeconds += entry.durationSeconds;
    for (const o of OUTCOMES) {
      sum.counts[o] += entry.counts[o];
      sum.lastMinute[o] += entry.lastMinute[o];
    }
  }
  return [...sums.values()];
}

/** A build's share of attempts that failed (error, exception, killed) among `counts`; 0 with none. */
export function errorRate(counts: Record<Outcome, number>): number {
  const failed = counts.error + counts.exception + counts.killed;
  const all = failed + counts.ok;
  return all === 0 ? 0 : failed / all;
}
