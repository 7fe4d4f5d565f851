/** The load the benchmarks apply, one source for all: BENCH_SECONDS per measured run, BENCH_CONNECTIONS at once. */
export const BENCH_SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
export const BENCH_CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

/**
 * Where a side's load goes in, as autocannon takes it: Gridiron's calls through its ingress front,
 * the Node side's straight into Restate's ingress socket, as a Restate user without Gridiron
 * calls Restate (the front's own cost is bench:front's).
 */
export function wayIn(
  settings: { ingressUrl: string; ingressSocket: string },
  side: "Gridiron" | "Node",
): { url: string; socketPath?: string } {
  return side === "Node"
    ? { url: settings.ingressUrl, socketPath: settings.ingressSocket }
    : { url: settings.ingressUrl };
}
