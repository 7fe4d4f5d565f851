/** The load the benchmarks apply, one source for all: BENCH_SECONDS per measured run, BENCH_CONNECTIONS at once. */
export const BENCH_SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
export const BENCH_CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
