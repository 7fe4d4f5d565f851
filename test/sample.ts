/** Many calls and the share of them a rollout sends to its canary: what the rollout tests share. */

/** The binomial 99.9% interval (normal approximation, z = 3.29) of the count of n draws at p. */
export const bounds = (n: number, p: number) => {
  const spread = 3.29 * Math.sqrt(n * p * (1 - p));
  return [n * p - spread, n * p + spread] as const;
};

/** Runs `task` over `items`, `width` at a time (the machine has two cores); results in order. */
export async function pool<T, R>(
  items: T[],
  width: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}

/**
 * Each call's answer, or for one that failed why: settled as each ends, so a call cut before the
 * test awaits it fails that test rather than the run (as an unhandled rejection).
 */
export const answersOf = <T>(calls: Promise<T>[]): Promise<(T | string)[]> =>
  Promise.allSettled(calls).then((settled) =>
    settled.map((call) => (call.status === "fulfilled" ? call.value : String(call.reason))),
  );
