import { createRequire } from "node:module";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { z } from "zod";
import { cellConfigPath, cellIds } from "../node/workerd/cells.ts";
import { AdminClient } from "../restate/admin-client.ts";
import type { Settings } from "../settings.ts";
import { withTimeout } from "../wait.ts";
import { cached } from "./cached.ts";
import { type DeployerState, readDeployerState } from "./deployer-state.ts";
import { type DeployFacts, deployFacts } from "./deploys.ts";
import { supervisorRegistry } from "./supervisor-metrics.ts";
import { workerdResidentBytes } from "./workerd-memory.ts";

/** How long one reading of Restate's state serves every scrape; scraping more often costs nothing. */
const CACHE_MS = 1_000;
/** The longest a scrape waits for Restate: a slow Restate makes the state metrics absent, not the scrape slow. */
const QUERY_TIMEOUT_MS = 2_000;
const DURATION_BUCKETS = [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];

const { version } = z.object({ version: z.string() }).parse(createRequire(import.meta.url)("../../package.json"));

/** Which process serves the metrics: the supervisor adds what only it sees (supervisor-metrics.ts). */
export type OpsProcess = "supervisor" | "ops";

/**
 * Gridiron's metrics for Prometheus. Deploys, rollbacks, prunes and builds are derived from the
 * deployer's durable records at scrape time (deploys.ts), invocations from Restate's
 * introspection, workerd's memory from /proc; each reading is cached for a second.
 */
export function opsRegistry(
  settings: Pick<Settings, "adminSocket" | "cells" | "workerdConfigPath">,
  servedBy: OpsProcess,
): Registry {
  const admin = new AdminClient({ socketPath: settings.adminSocket }, { timeoutMs: QUERY_TIMEOUT_MS });
  const read = cached(async () => {
    const state = await withTimeout(readDeployerState(admin), QUERY_TIMEOUT_MS, "Restate did not answer in time");
    return { state, facts: deployFacts(state.bundles) };
  }, CACHE_MS);
  /** Restate's state and what follows from it, or undefined while it cannot be read. */
  const reading = (): Promise<{ state: DeployerState; facts: DeployFacts } | undefined> =>
    read().catch(() => undefined);
  const memory = cached(
    () => workerdResidentBytes(cellIds(settings).map((cell) => cellConfigPath(settings, cell))),
    CACHE_MS,
  );
  const registry = new Registry();
  const registers = [registry];

  new Gauge({
    name: "gridiron_info",
    help: "Always 1: Gridiron's version, and which process serves these metrics (supervisor: npm start; ops: its own process, e.g. under runit)",
    labelNames: ["version", "process"] as const,
    registers,
  }).set({ version, process: servedBy }, 1);

  new Gauge({
    name: "gridiron_deployer_state_up",
    help: "1 if the deployer's records could be read from Restate for this scrape, else 0 (and the metrics derived from them are absent)",
    registers,
    async collect() {
      this.set((await reading()) ? 1 : 0);
    },
  });

  new Counter({
    name: "gridiron_deploys_total",
    help: "Activations of a bundle, by result: activated (a build became active, or was repaired) or failed (after its files were copied); from the builds' durable history",
    labelNames: ["bundle", "result"] as const,
    registers,
    async collect() {
      const facts = (await reading())?.facts;
      this.reset();
      for (const { bundle, event, count } of facts?.events ?? []) {
        if (event === "activated" || event === "failed") this.inc({ bundle, result: event }, count);
      }
    },
  });

  new Histogram({
    name: "gridiron_deploy_duration_seconds",
    help: "How long each activation took, from the deployer's activate handler's start to its result's write (crash recoveries included), by bundle and result",
    labelNames: ["bundle", "result"] as const,
    buckets: DURATION_BUCKETS,
    registers,
    async collect() {
      const facts = (await reading())?.facts;
      this.reset();
      for (const { bundle, result, seconds } of facts?.durations ?? []) this.observe({ bundle, result }, seconds);
    },
  });

  for (const [name, event, help] of [
    ["gridiron_rollbacks_total", "rolled back to", "Rollbacks of a bundle: a build made active again by rollback"],
    ["gridiron_prunes_total", "pruned", "Builds of a bundle pruned: unregistered from Restate and unrouted"],
    [
      "gridiron_rollout_steps_total",
      "rolled out",
      "Rollout steps of a bundle: a canary given a percentage of new calls",
    ],
    ["gridiron_rollout_aborts_total", "aborted", "Rollouts of a bundle aborted, by hand or by the automatic analysis"],
  ] as const) {
    new Counter({
      name,
      help,
      labelNames: ["bundle"] as const,
      registers,
      async collect() {
        const facts = (await reading())?.facts;
        this.reset();
        for (const fact of facts?.events ?? []) if (fact.event === event) this.inc({ bundle: fact.bundle }, fact.count);
      },
    });
  }

  new Gauge({
    name: "gridiron_builds",
    help: "Builds of a bundle by recorded state: active, draining, drained, pruned, failed",
    labelNames: ["bundle", "state"] as const,
    registers,
    async collect() {
      const facts = (await reading())?.facts;
      this.reset();
      for (const { bundle, state, count } of facts?.builds ?? []) this.set({ bundle, state }, count);
    },
  });

  for (const [name, count, help] of [
    [
      "gridiron_pinned_invocations",
      "pinned",
      "Invocations pinned to a live build that are not completed, paused ones included: they finish on this build",
    ],
    [
      "gridiron_paused_invocations",
      "paused",
      "Invocations pinned to a live build that Restate paused (retries used up); they keep it from draining",
    ],
  ] as const) {
    new Gauge({
      name,
      help,
      labelNames: ["bundle", "build"] as const,
      registers,
      async collect() {
        const now = await reading();
        this.reset();
        for (const { bundle, build, deploymentId } of now?.facts.live ?? []) {
          this.set({ bundle, build }, now?.state.pinned.get(deploymentId)?.[count] ?? 0);
        }
      },
    });
  }

  new Gauge({
    name: "gridiron_rollout_percent",
    help: "The canary's share of new calls in a bundle's rollout in progress (the stable build has the rest); absent without one",
    labelNames: ["bundle", "stable", "canary"] as const,
    registers,
    async collect() {
      const rollouts = (await reading())?.state.rollouts;
      this.reset();
      for (const { bundle, stable, canary, percent } of rollouts ?? []) this.set({ bundle, stable, canary }, percent);
    },
  });

  new Gauge({
    name: "gridiron_rollout_next_judgement_timestamp_seconds",
    help: "When the automatic analysis next judges a bundle's rollout (Unix time); absent for rollouts by hand",
    labelNames: ["bundle"] as const,
    registers,
    async collect() {
      const rollouts = (await reading())?.state.rollouts;
      this.reset();
      for (const { bundle, auto } of rollouts ?? []) if (auto) this.set({ bundle }, Date.parse(auto.nextAt) / 1000);
    },
  });

  new Gauge({
    name: "gridiron_workerd_resident_memory_bytes",
    help: "Resident memory of every cell's live workerd (both processes of a cell during its handover), from /proc",
    registers,
    async collect() {
      this.set(await memory());
    },
  });

  return servedBy === "supervisor" ? Registry.merge([registry, supervisorRegistry]) : registry;
}
