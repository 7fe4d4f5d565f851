import { setTimeout as sleep } from "node:timers/promises";
import { atCalm, atKill, type CellWatch } from "../../domain/culprit.ts";
import { bundleOfUri } from "../../domain/placement.ts";
import { rssMb } from "../../memory.ts";
import type { AdminClient, JournalEntry } from "../../restate/admin-client.ts";
import { answers } from "../../wait.ts";

/**
 * workerd enforces no CPU or memory limit on a request: one handler that never yields stops
 * every build (workerd runs them all on one event loop), and one that allocates without bound
 * grows the process until the machine runs out. The watchdog bounds both from outside.
 */

export interface WatchdogLimits {
  hangMs: number;
  maxMb: number;
}

export interface Health {
  /** Since when workerd has not answered, or undefined if it just did. */
  silentSinceMs: number | undefined;
  rssMb: number;
}

/** Which limit workerd broke: it stopped answering, or it uses too much memory. */
export type KillCause = "hang" | "memory";

export type Verdict = { kind: "ok" } | { kind: "kill"; cause: KillCause; reason: string };

/** Pure: whether workerd must be killed, and why in words an operator can act on. */
export function verdict(health: Health, nowMs: number, limits: WatchdogLimits): Verdict {
  if (health.rssMb > limits.maxMb) {
    return {
      kind: "kill",
      cause: "memory",
      reason: `workerd uses ${Math.round(health.rssMb)} MB, over GRIDIRON_WORKERD_MAX_MB=${limits.maxMb} (a handler allocating without bound?)`,
    };
  }
  if (health.silentSinceMs !== undefined && nowMs - health.silentSinceMs >= limits.hangMs) {
    return {
      kind: "kill",
      cause: "hang",
      reason: `workerd has not answered for ${Math.round((nowMs - health.silentSinceMs) / 1000)} s (a handler that never yields?)`,
    };
  }
  return { kind: "ok" };
}

/**
 * Pure: whether an invocation waits on Restate (a sleep, a call's answer, a promise), from its
 * journal: some command expects a completion that no notification has brought yet. Then it runs
 * no code and cannot be what hogs workerd, though a bidirectional one is in flight all the while.
 * A `ctx.run` in progress does run code, so its pending completion does not count.
 */
export function waitsOnRestate(journal: JournalEntry[]): boolean {
  const pending = new Set<unknown>();
  for (const entry of journal) {
    if ("Notification" in entry) {
      pending.delete(entry.Notification.id.CompletionId);
      continue;
    }
    for (const [command, fields] of Object.entries(entry.Command)) {
      if (command === "Run") continue;
      for (const [field, value] of Object.entries(fields)) if (field.endsWith("completion_id")) pending.add(value);
    }
  }
  return pending.size > 0;
}

const POLL_MS = 1_000;
/**
 * How long a cell must stay calm to clear the bundles that ran meanwhile (culprit.ts): long enough
 * for Restate to retry a culprit's invocation after a kill (its backoff grows with each failed
 * attempt; held calls wait in the router instead, so it stays short) and for it to hang the cell again.
 */
const QUIET_MIN_MS = 20_000;

export function quietMs(limits: WatchdogLimits): number {
  return Math.max(QUIET_MIN_MS, 5 * limits.hangMs);
}

export interface WatchedWorkerd {
  pid(): number | undefined;
  /** Where this very process answers, once it listens. */
  probeUrl(): string | undefined;
  kill(): void;
}

/** What the watchdog is told and tells about its cell, and until when it watches. */
export interface WatchdogOutput {
  log: (line: string) => void;
  /** Called for every workerd it kills (the supervisor counts them). */
  killed: (cause: KillCause) => void;
  /** The bundles with a build serving in the cell now: the suspects when it keeps hanging. */
  bundles: () => string[];
  /** Makes the cell hold these bundles' calls from now on (none: hold none); `live`: its workerd answers. */
  hold: (bundles: string[], live: boolean) => Promise<void>;
  /** Quarantines the bundle found to hang the cell alone, saying why. */
  culprit: (bundle: string, reason: string) => Promise<void>;
  signal: AbortSignal;
}

/**
 * Polls workerd's probe port and memory; kills a workerd that hangs or grows past the limit (the
 * supervisor restarts it). A cell that keeps hanging has its bundles held half at a time until one
 * alone still hangs it (domain/culprit.ts); that bundle is quarantined and its invocations running
 * code at that kill are killed in Restate, so Restate does not retry them into the next workerd
 * forever. No other bundle's invocation is ever killed. Runs until `signal` aborts.
 */
export async function watchWorkerd(
  workerd: WatchedWorkerd,
  admin: AdminClient,
  workerdUrl: string,
  limits: WatchdogLimits,
  output: WatchdogOutput,
): Promise<void> {
  const { log, killed, signal } = output;
  const quiet = quietMs(limits);
  let silentSinceMs: number | undefined;
  let watch: CellWatch = {};
  while (!signal.aborted) {
    await sleep(POLL_MS, undefined, { signal }).catch(() => {});
    const pid = workerd.pid();
    if (signal.aborted || pid === undefined) continue;
    const probeUrl = workerd.probeUrl();
    const answered = probeUrl !== undefined && (await answers(probeUrl, { timeoutMs: POLL_MS }));
    silentSinceMs = answered ? undefined : (silentSinceMs ?? Date.now());
    const decision = verdict({ silentSinceMs, rssMb: await rssMb(pid) }, Date.now(), limits);
    if (decision.kind === "ok") {
      const calm = atCalm(watch, Date.now(), quiet);
      watch = calm.watch;
      if (calm.finding.kind === "hold") await hold(output, calm.finding.held, true);
      continue;
    }

    const running = (await admin.runningUnder(`${workerdUrl}/`).catch(() => [])).filter(
      (invocation) => !waitsOnRestate(invocation.journal),
    );
    const step = atKill(watch, output.bundles(), Date.now(), quiet);
    watch = step.watch;
    // Before the kill: the workerd the supervisor starts next reads who is held.
    const { finding } = step;
    if (finding.kind === "hold") await hold(output, finding.held, false);
    if (finding.kind === "culprit") await output.hold([finding.bundle], false).catch(() => {});
    log(`[gridiron] ${decision.reason}; killing it`);
    killed(decision.cause);
    workerd.kill();
    silentSinceMs = undefined;
    if (finding.kind !== "culprit") continue;

    const reason = `bundle ${finding.bundle} hung this cell with no other suspect running (${decision.cause}); it is quarantined: its calls here are refused until its build is pruned, and its next build goes to the quarantine cell`;
    log(`[gridiron] ${reason}`);
    for (const { id, target } of running.filter((r) => bundleOfUri(r.endpoint) === finding.bundle)) {
      log(`[gridiron] invocation ${id} (${target}) was running the culprit's code; killing it in Restate`);
      await admin.killInvocation(id).catch((error: unknown) => log(`[gridiron] could not kill ${id}: ${error}`));
    }
    await output.culprit(finding.bundle, reason).catch((error: unknown) => log(`[gridiron] ${error}`));
  }
}

/** Applies a hold, saying so; a failure is logged (the next kill or calm spell tries again). */
async function hold({ hold: apply, log }: WatchdogOutput, bundles: string[], live: boolean): Promise<void> {
  log(
    bundles.length
      ? `[gridiron] the cell keeps hanging: holding the calls of ${bundles.join(", ")} while finding which bundle does it`
      : "[gridiron] holding no bundle's calls",
  );
  await apply(bundles, live).catch((error: unknown) =>
    log(`[gridiron] could not hold ${bundles.join(", ")}: ${error}`),
  );
}
