import { Counter, Gauge, Registry } from "prom-client";
import type { KillCause } from "../node/workerd/watchdog.ts";

/**
 * What only the supervisor (`npm start`) sees happen, counted as it happens: restarts of the
 * processes it runs, workerd handovers and watchdog kills. These count from the supervisor's own
 * start (Prometheus takes a drop to zero for a counter reset); under runit there is no supervisor,
 * and they are not served.
 */
export const supervisorRegistry = new Registry();

export const restarts = new Counter({
  name: "gridiron_restarts_total",
  help: "Processes that exited without being asked to and were restarted by the supervisor, by component",
  labelNames: ["component"] as const,
  registers: [supervisorRegistry],
});

export const workerdHandovers = new Counter({
  name: "gridiron_workerd_handovers_total",
  help: "Fresh workerd processes that took over from the running one to free removed builds' memory, by result",
  labelNames: ["result"] as const,
  registers: [supervisorRegistry],
});

export const watchdogKills = new Counter({
  name: "gridiron_workerd_watchdog_kills_total",
  help: "workerd processes the watchdog killed, by reason: hang (stopped answering) or memory (over its limit)",
  labelNames: ["reason"] as const,
  registers: [supervisorRegistry],
});

export const culprits = new Counter({
  name: "gridiron_workerd_culprits_total",
  help: "Bundles the watchdog found hanging a cell alone and quarantined (their calls there refused), by bundle and cell",
  labelNames: ["bundle", "cell"] as const,
  registers: [supervisorRegistry],
});

export const heldBundles = new Gauge({
  name: "gridiron_workerd_held_bundles",
  help: "Bundles whose calls a cell refuses while its watchdog finds which one keeps hanging it, by cell (0: no hunt)",
  labelNames: ["cell"] as const,
  registers: [supervisorRegistry],
});

// Every series from the start, at 0, so that the first event shows as an increase.
for (const result of ["ok", "failed"]) workerdHandovers.inc({ result }, 0);
for (const reason of ["hang", "memory"] satisfies KillCause[]) watchdogKills.inc({ reason }, 0);
