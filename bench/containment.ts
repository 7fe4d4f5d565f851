import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { AdminClient } from "../control/restate/admin-client.ts";
import { Ingress } from "../test/ingress.ts";
import { buildWorker, startTestMesh } from "../test/mesh.ts";

/**
 * `npm run bench:containment`: what one bundle's busy loop or unbounded allocation does to the
 * others, with one workerd (GRIDIRON_CELLS=1, as before cells) and with cells (the misbehaving
 * bundle in a dedicated cell), side by side in one run. For each side, a mesh with greeter,
 * counter and hog:
 * - spin: while hog/spin holds its workerd for SPIN_SECONDS (the hang limit is set just above it,
 *   so nothing is killed meanwhile), LOOPS loops call greeter/greet and counter/add one call after
 *   another; their latency and failures;
 * - allocate: the spin is killed in Restate and its workerd killed by the watchdog and restarted;
 *   then while hog/allocate grows its workerd past GRIDIRON_WORKERD_MAX_MB, again and again, until
 *   the watchdog has found hog the culprit (README: Resource limits), the same loops; their
 *   failures, and the bystanders' invocations the watchdog killed.
 * Prints a markdown table. BENCH_SPIN_SECONDS (30) and BENCH_LOOPS (4) set the run.
 */

const SPIN_SECONDS = Number(process.env.BENCH_SPIN_SECONDS ?? 30);
const LOOPS = Number(process.env.BENCH_LOOPS ?? 4);
const MAX_MB = 1024;
const ALLOCATE_TIMEOUT_MS = 300_000;

interface Calls {
  latencies: number[];
  failures: number;
}

interface SideResult {
  side: string;
  spin: Calls;
  allocate: Calls;
  bystandersKilled: number;
}

const SIDES = [
  { side: "one workerd", cells: "1", hogCell: undefined },
  { side: "cells (hog dedicated)", cells: "2", hogCell: "dedicated" },
] as const;

async function main(): Promise<void> {
  console.error(`[bench] ${cpus().length} cores, spin ${SPIN_SECONDS} s, ${LOOPS} calling loops`);
  const dir = await mkdtemp(join(tmpdir(), "gridiron-bench-containment-"));
  try {
    const sources = {
      greeter: await buildWorker("greeter", join(dir, "greeter")),
      counter: await buildWorker("counter", join(dir, "counter")),
      hog: await buildWorker("test/fixtures/hog", join(dir, "hog")),
    };
    const results: SideResult[] = [];
    for (const side of SIDES) results.push(await runSide(side, sources));
    console.log(table(results));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function runSide(side: (typeof SIDES)[number], sources: Record<string, string>): Promise<SideResult> {
  console.error(`[bench] ${side.side}: starting a mesh`);
  const mesh = await startTestMesh({
    GRIDIRON_CELLS: side.cells,
    GRIDIRON_WORKERD_HANG_SECONDS: String(SPIN_SECONDS + 5),
    GRIDIRON_WORKERD_MAX_MB: String(MAX_MB),
  });
  try {
    const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
    const admin = new AdminClient({ socketPath: mesh.settings.adminSocket });
    for (const name of ["greeter", "counter"]) {
      await ingress.call(`deployer/${name}/activate`, { source: sources[name], version: "1.0.0" });
    }
    await ingress.call("deployer/hog/activate", {
      source: sources.hog,
      version: "1.0.0",
      ...(side.hogCell ? { cell: side.hogCell } : {}),
    });
    const call = (i: number) =>
      i % 2 ? ingress.call("greeter/greet", `b${i}`) : ingress.call(`counter/bench${i}/add`);

    console.error(`[bench] ${side.side}: hog/spin for ${SPIN_SECONDS} s`);
    const spinId = await ingress.send("hog/spin");
    const spin = await callLoops(call, sleep(SPIN_SECONDS * 1000));
    // Killed in Restate, the spin is not retried once the watchdog has killed its workerd (at the
    // hang limit) and the supervisor started it again.
    await admin.killInvocation(spinId);
    await waitUntil(async () => mesh.output.some((line) => line.includes("has not answered")));
    await waitUntil(async () => mesh.output.some((line) => /workerd(-\d+)? exited with signal SIGKILL/.test(line)));
    await sleep(2_000);

    console.error(`[bench] ${side.side}: hog/allocate until the watchdog has found it the culprit`);
    const allocateId = await ingress.send("hog/allocate");
    // Until the watchdog has found hog the culprit (its invocation killed, its build refused).
    const done = waitUntil(async () => {
      const [row] = await admin.query(`SELECT status FROM sys_invocation WHERE id = '${allocateId}'`);
      return row?.status === "completed" || mesh.output.some((line) => /bundle hog hung this cell/.test(line));
    });
    const allocate = await callLoops(call, done);
    const killed = await admin.query(
      "SELECT id FROM sys_invocation WHERE target NOT LIKE 'hog/%' AND target NOT LIKE 'deployer/%' AND target NOT LIKE 'routes/%' AND completion_result = 'failure'",
    );
    return { side: side.side, spin, allocate, bystandersKilled: killed.length };
  } finally {
    await mesh.stop();
  }
}

/** LOOPS loops calling one call after another until `until` resolves. */
async function callLoops(call: (i: number) => Promise<unknown>, until: Promise<unknown>): Promise<Calls> {
  let finished = false;
  void until.finally(() => (finished = true));
  const calls: Calls = { latencies: [], failures: 0 };
  await Promise.all(
    Array.from({ length: LOOPS }, async (_, i) => {
      while (!finished) {
        const started = performance.now();
        await call(i).catch(() => calls.failures++);
        calls.latencies.push(performance.now() - started);
      }
    }),
  );
  return calls;
}

async function waitUntil(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ALLOCATE_TIMEOUT_MS;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`gave up after ${ALLOCATE_TIMEOUT_MS / 1000} s`);
    await sleep(250);
  }
}

function percentile(sorted: number[], p: number): string {
  const value = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
  return value === undefined ? "-" : `${(value / 1000).toFixed(3)} s`;
}

function table(results: SideResult[]): string {
  const rows = results.map(({ side, spin, allocate, bystandersKilled }) => {
    const sorted = [...spin.latencies].sort((a, b) => a - b);
    return `| ${side} | ${spin.latencies.length} | ${spin.failures} | ${percentile(sorted, 0.5)} | ${percentile(sorted, 0.99)} | ${percentile(sorted, 1)} | ${allocate.latencies.length} | ${allocate.failures} | ${bystandersKilled} |`;
  });
  return [
    `Bystanders (greeter and counter, ${LOOPS} loops) while hog spins ${SPIN_SECONDS} s, then while it allocates past ${MAX_MB} MB until the watchdog has found it the culprit:`,
    "",
    "| side | calls while spinning | failed | p50 | p99 | max | calls while allocating | failed | bystander invocations killed |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}

await main();
