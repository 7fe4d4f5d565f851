/** Many calls and the share of them a rollout sends to its canary: what the rollout tests share. */

/**
 * The binomial 99.999% interval (normal approximation, z = 4.42) of the count of n draws at p: a
 * share drawn from random invocation ids falls outside about once in 100,000 runs, not once in
 * 1,000 as at 99.9%, and a split that sends all or none to the canary is still far outside.
 */
export const bounds = (n: number, p: number) => {
  const spread = 4.42 * Math.sqrt(n * p * (1 - p));
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
