/**
 * `load` behind a short-lived cache: its answer (or failure) is reused for `ttlMs` after it
 * settles, and callers while it runs share that one run. So what the ops port asks of Restate is
 * bounded by time, however often it is scraped.
 */
export function cached<T>(load: () => Promise<T>, ttlMs: number): () => Promise<T> {
  let current: Promise<T> | undefined;
  let running = false;
  let settledAt = 0;
  return () => {
    if (current && (running || Date.now() - settledAt < ttlMs)) return current;
    running = true;
    current = load().finally(() => {
      running = false;
      settledAt = Date.now();
    });
    return current;
  };
}
