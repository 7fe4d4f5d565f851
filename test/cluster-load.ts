import { setTimeout as sleep } from "node:timers/promises";

/** What a run of idempotent increments saw. */
export interface LoadResult {
  /** Increments sent per key, each once. */
  sent: Map<string, number>;
  /** Calls that needed another ingress after a failure. */
  retried: number;
  /** The longest time between two completions, in ms: how long the cluster answered nothing. */
  longestGapMs: number;
  /** The slowest call, retries included, in ms. */
  slowestMs: number;
}

const ATTEMPT_TIMEOUT_MS = 15_000;
const GIVE_UP_MS = 120_000;

/**
 * `total` increments of `counter/{key}/add`, each with its own idempotency key, spread over the
 * ingresses in turn, `concurrency` at a time. A failed attempt is retried on the next ingress with
 * the same key, as a client behind a load balancer would; `onProgress` sees each completion count.
 */
export async function incrementEverywhere(options: {
  ingresses: string[];
  keys: string[];
  total: number;
  concurrency: number;
  /** Names this run's idempotency keys, so two runs never share one. */
  run: string;
  onProgress?: (completed: number) => void;
}): Promise<LoadResult> {
  const { ingresses, keys, total, concurrency } = options;
  const sent = new Map<string, number>();
  const completions: number[] = [];
  let next = 0;
  let retried = 0;
  let slowestMs = 0;
  const started = Date.now();

  const call = async (index: number) => {
    const key = keys[index % keys.length] as string;
    sent.set(key, (sent.get(key) ?? 0) + 1);
    const began = Date.now();
    for (let attempt = 0; ; attempt++) {
      const ingress = ingresses[(index + attempt) % ingresses.length];
      try {
        const response = await fetch(`${ingress}/counter/${key}/add`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": `${options.run}-${index}` },
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        await response.text();
        if (response.ok) break;
      } catch {
        // Refused, cut or timed out: the next ingress.
      }
      if (Date.now() - began > GIVE_UP_MS) throw new Error(`increment ${index} did not complete in ${GIVE_UP_MS} ms`);
      if (attempt === 0) retried++;
      await sleep(100);
    }
    slowestMs = Math.max(slowestMs, Date.now() - began);
    completions.push(Date.now());
    options.onProgress?.(completions.length);
  };

  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await call(next++);
    }),
  );
  const times = [started, ...completions.sort((a, b) => a - b)];
  const longestGapMs = Math.max(...times.slice(1).map((t, i) => t - (times[i] as number)));
  return { sent, retried, longestGapMs, slowestMs };
}
