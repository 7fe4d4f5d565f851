import { setTimeout as sleep } from "node:timers/promises";
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
 * Pure: which invocations to kill. An invocation running on workerd at `strikes` kills in a row
 * is the cause, not a bystander: bystanders finish once workerd is back.
 */
export function culprits(runningAtKill: string[], history: Map<string, number>, strikes: number): string[] {
  const next = new Map<string, number>();
  for (const id of runningAtKill) next.set(id, (history.get(id) ?? 0) + 1);
  history.clear();
  for (const [id, n] of next) history.set(id, n);
  return [...next].filter(([, n]) => n >= strikes).map(([id]) => id);
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
const STRIKES = 2;

export interface WatchedWorkerd {
  pid(): number | undefined;
  /** Where this very process answers, once it listens. */
  probeUrl(): string | undefined;
  kill(): void;
}

/** Where the watchdog says what it does, and until when it watches. */
export interface WatchdogOutput {
  log: (line: string) => void;
  /** Called for every workerd it kills (the supervisor counts them). */
  killed: (cause: KillCause) => void;
  /** Called with the deployment uris of the invocations it killed in Restate at one kill, if any. */
  culprits?: (endpoints: string[]) => Promise<void>;
  signal: AbortSignal;
}

/**
 * Polls workerd's probe port and memory; kills a workerd that hangs or grows past the limit (the
 * supervisor restarts it), and kills in Restate the invocation that keeps causing it, so Restate
 * does not retry it into the next workerd forever. Runs until `signal` aborts.
 */
export async function watchWorkerd(
  workerd: WatchedWorkerd,
  admin: AdminClient,
  workerdUrl: string,
  limits: WatchdogLimits,
  { log, killed, culprits: blame, signal }: WatchdogOutput,
): Promise<void> {
  let silentSinceMs: number | undefined;
  const strikes = new Map<string, number>();
  while (!signal.aborted) {
    await sleep(POLL_MS, undefined, { signal }).catch(() => {});
    const pid = workerd.pid();
    if (signal.aborted || pid === undefined) continue;
    const probeUrl = workerd.probeUrl();
    const answered = probeUrl !== undefined && (await answers(probeUrl, { timeoutMs: POLL_MS }));
    silentSinceMs = answered ? undefined : (silentSinceMs ?? Date.now());
    const decision = verdict({ silentSinceMs, rssMb: await rssMb(pid) }, Date.now(), limits);
    if (decision.kind === "ok") continue;

    const running = (await admin.runningUnder(`${workerdUrl}/`).catch(() => [])).filter(
      (invocation) => !waitsOnRestate(invocation.journal),
    );
    log(`[gridiron] ${decision.reason}; killing it`);
    killed(decision.cause);
    workerd.kill();
    silentSinceMs = undefined;
    const guilty = culprits(
      running.map((r) => r.id),
      strikes,
      STRIKES,
    ).flatMap((id) => running.filter((r) => r.id === id));
    for (const { id, target } of guilty) {
      log(
        `[gridiron] invocation ${id} (${target}) was running at ${STRIKES} workerd kills in a row; killing it in Restate`,
      );
      await admin.killInvocation(id).catch((error: unknown) => log(`[gridiron] could not kill ${id}: ${error}`));
    }
    if (guilty.length && blame) {
      await blame(guilty.map((r) => r.endpoint)).catch((error: unknown) => log(`[gridiron] ${error}`));
    }
  }
}
