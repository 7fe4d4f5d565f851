import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import autocannon from "autocannon";
import { readAdminToken } from "../control/admin-token.ts";
import { rssMb } from "../control/memory.ts";
import { Ingress } from "../test/ingress.ts";
import { buildWorker, findChild, startTestMesh, type TestMesh } from "../test/mesh.ts";
import { failedAttempts } from "../test/restate-metrics.ts";
import { versions } from "./versions.ts";

/**
 * `npm run bench:deploy`: how deploys behave with the old restart-based reload and with the
 * Worker Loader, side by side, each on a mesh of its own. For N live bundles: activate-to-serving
 * time and workerd memory per build. Under a steady load of counter increments: failed requests,
 * attempts Restate retried (its own counter), exact final counts and latency, with and without
 * deploys. Then workerd memory after activate/prune cycles. Prints markdown tables.
 *
 * BENCH_RATE (200 calls/s), BENCH_LOAD_SECONDS (60), BENCH_CYCLES (50) and BENCH_MODES
 * (restart,loader) scale it down for a quick look.
 */

const RATE = Number(process.env.BENCH_RATE ?? 200);
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 60);
const CYCLES = Number(process.env.BENCH_CYCLES ?? 50);
const MODES = (process.env.BENCH_MODES ?? "restart,loader").split(",") as Mode[];
const COUNTS = [1, 10, 50];
const DEPLOYS = 10;
const KEYS = 64;
const PLACEHOLDER = "BENCH_SERVICE_NAME";

type Mode = "restart" | "loader";

interface Sources {
  counter: string;
  bundle: (i: number) => string;
}

interface LiveBundles {
  n: number;
  activateMs: number;
  mbPerBuild: number;
}

interface Load {
  /** How many times a new workerd process took over during the run. */
  replaced: number;
  ok: number;
  failed: number;
  retried: number;
  exact: boolean;
  p50: number;
  p99: number;
}

interface ModeResult {
  live: LiveBundles[];
  steady: Load;
  deploying: Load;
  cycles: { beforeMb: number; afterMb: number };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "gridiron-bench-deploy-"));
  try {
    console.error(`[bench] building the counter and ${Math.max(...COUNTS)} bundles`);
    const sources = await buildSources(dir);
    const results = new Map<Mode, ModeResult>();
    for (const mode of MODES) results.set(mode, await benchMode(mode, sources));
    console.log(await report(results));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One wrangler build of the bench worker, copied once per bundle with its own service name. */
async function buildSources(dir: string): Promise<Sources> {
  const counter = await buildWorker("counter", join(dir, "counter"));
  const template = fileURLToPath(await buildWorker("bench/deploy-worker", join(dir, "template")));
  for (let i = 1; i <= Math.max(...COUNTS); i++) {
    const target = join(dir, `b${i}`);
    await cp(template, target, { recursive: true });
    for (const file of await readdir(target)) {
      if (!file.endsWith(".js")) continue;
      const code = await readFile(join(target, file), "utf8");
      await writeFile(join(target, file), code.replaceAll(PLACEHOLDER, `ping${i}`));
    }
  }
  return { counter, bundle: (i) => pathToFileURL(join(dir, `b${i}`)).href };
}

async function benchMode(mode: Mode, sources: Sources): Promise<ModeResult> {
  console.error(`[bench] ${mode}: starting a mesh`);
  // Short drain timers, so builds replaced during the load are also pruned during it.
  const mesh = await startTestMesh({
    GRIDIRON_WORKERD_RELOAD: mode,
    GRIDIRON_DRAIN_POLL_SECONDS: "1",
    GRIDIRON_DRAIN_GRACE_SECONDS: "2",
  });
  try {
    const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
    let version = 0;
    const activate = (name: string, source: string) =>
      ingress.call(`deployer/${name}/activate`, { source, version: `1.0.${version++}` });
    await activate("counter", sources.counter);

    const baseMb = await workerdMb(mesh);
    const live: LiveBundles[] = [];
    for (let i = 1; i <= Math.max(...COUNTS); i++) {
      const started = performance.now();
      await activate(`b${i}`, sources.bundle(i));
      await ingress.call(`ping${i}/ping`);
      const activateMs = performance.now() - started;
      if (COUNTS.includes(i)) {
        live.push({ n: i, activateMs, mbPerBuild: ((await workerdMb(mesh)) - baseMb) / i });
        console.error(`[bench] ${mode}: ${i} live bundles, activate to serving ${activateMs.toFixed(0)} ms`);
      }
    }

    console.error(`[bench] ${mode}: ${LOAD_SECONDS} s of ${RATE} calls/s, no deploys`);
    const steady = await load(mesh, "steady", async () => {});
    console.error(`[bench] ${mode}: ${LOAD_SECONDS} s of ${RATE} calls/s, ${DEPLOYS} deploys`);
    const deploying = await load(mesh, "deploying", async () => {
      for (let k = 0; k < DEPLOYS; k++) {
        await sleep((LOAD_SECONDS * 1000) / DEPLOYS / 2);
        // Every other deploy is counter itself: the bundle taking the load.
        if (k % 2 === 0) await activate("counter", sources.counter);
        else await activate(`b${k}`, sources.bundle(k));
      }
    });

    console.error(`[bench] ${mode}: ${CYCLES} activate/prune cycles`);
    await waitForPrunes(ingress, "counter");
    const beforeMb = await workerdMb(mesh);
    for (let c = 0; c < CYCLES; c++) {
      await activate("b1", sources.bundle(1));
      await waitForPrunes(ingress, "b1");
    }
    return { live, steady, deploying, cycles: { beforeMb, afterMb: await workerdMb(mesh) } };
  } finally {
    await mesh.stop();
  }
}

/** Counter increments at RATE calls/s for LOAD_SECONDS while `during` runs, over KEYS keys. */
async function load(mesh: TestMesh, run: string, during: () => Promise<void>): Promise<Load> {
  const ingress = new Ingress(mesh.settings.ingressUrl);
  const retriedBefore = await failedAttempts(mesh.settings);
  const outputFrom = mesh.output.length;
  const workerds = new Set([await findChild(mesh, "/workerd ")]);
  const watching = setInterval(() => {
    findChild(mesh, "/workerd ").then(
      (pid) => workerds.add(pid),
      () => {},
    );
  }, 1_000);
  let i = 0;
  const [result] = await Promise.all([
    autocannon({
      url: mesh.settings.ingressUrl,
      connections: 32,
      overallRate: RATE,
      // A fixed number of calls rather than a duration: autocannon then waits for every one,
      // so the counts can be checked exactly.
      amount: RATE * LOAD_SECONDS,
      timeout: 30,
      requests: [
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          setupRequest: (request) => ({ ...request, path: `/counter/${run}-${i++ % KEYS}/add`, body: "1" }),
        },
      ],
    }),
    during(),
  ]).finally(() => clearInterval(watching));
  // Let retried attempts finish before counting.
  await sleep(2_000);
  let total = 0;
  for (let k = 0; k < KEYS; k++) total += await ingress.call<number>(`counter/${run}-${k}/get`);
  // Why Restate retried, in its own words, so a nonzero count can be looked into.
  const said = mesh.output.slice(outputFrom);
  const retries = said.filter((line) => line.includes("Invocation error")).map((line) => line.replace(/.*error=/, ""));
  const failures = said.filter((line) => line.startsWith("[workerd]") && /error|exception/i.test(line));
  for (const line of new Set(
    [...retries, ...failures].map((l) => l.slice(0, 200).concat(l.includes("500") ? l.slice(200, 1200) : "")),
  )) {
    console.error(`[bench] ${run}: ${line}`);
  }
  return {
    replaced: workerds.size - 1,
    ok: result["2xx"],
    failed: result.errors + result.non2xx,
    retried: (await failedAttempts(mesh.settings)) - retriedBefore,
    exact: total === result["2xx"],
    p50: result.latency.p50,
    p99: result.latency.p99,
  };
}

/** Waits until no build of `name` is still draining or drained but not yet pruned. */
async function waitForPrunes(ingress: Ingress, name: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status = await ingress.call<{ builds: { state: string }[] }>(`deployer/${name}/status`);
    if (status.builds.every((b) => b.state === "active" || b.state === "pruned")) return;
    if (Date.now() > deadline) throw new Error(`builds of ${name} were not pruned within 120 s`);
    await sleep(250);
  }
}

/** Resident memory of the mesh's current workerd process, in MB. */
async function workerdMb(mesh: TestMesh): Promise<number> {
  return rssMb(await findChild(mesh, "/workerd "));
}

async function report(results: Map<Mode, ModeResult>): Promise<string> {
  const modes = [...results.keys()];
  const get = (mode: Mode) => results.get(mode) as ModeResult;
  const ms = (x: number) => x.toFixed(0);
  const mb = (x: number) => x.toFixed(1);
  const lines = [
    `${await versions()}; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GB; one run.`,
    "",
    `| live bundles | ${modes.map((m) => `${m}: activate to serving, ms | ${m}: workerd MB per live build`).join(" | ")} |`,
    `|---|${modes.map(() => "---|---").join("|")}|`,
    ...COUNTS.map((n) => {
      const cells = modes.map((m) => {
        const row = get(m).live.find((r) => r.n === n);
        return row ? `${ms(row.activateMs)} | ${mb(row.mbPerBuild)}` : "- | -";
      });
      return `| ${n} | ${cells.join(" | ")} |`;
    }),
    "",
    `Counter increments over ${KEYS} keys at ${RATE} calls/s for ${LOAD_SECONDS} s (autocannon, 32 connections), ${Math.max(...COUNTS)} other bundles live; drain poll 1 s, grace 2 s, so replaced builds are pruned during the run.`,
    "",
    "| reload | deploys | workerd replaced | calls ok | calls failed | attempts Restate retried | counts exact | p50 ms | p99 ms | p99 vs no deploys |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...modes.flatMap((m) => {
      const { steady, deploying } = get(m);
      return [
        loadRow(m, "none", steady, steady),
        loadRow(m, `${DEPLOYS} (${DEPLOYS / 2} of counter)`, deploying, steady),
      ];
    }),
    "",
    `| reload | workerd MB before ${CYCLES} activate/prune cycles | after | ratio |`,
    "|---|---|---|---|",
    ...modes.map((m) => {
      const { beforeMb, afterMb } = get(m).cycles;
      return `| ${m} | ${mb(beforeMb)} | ${mb(afterMb)} | ${(afterMb / beforeMb).toFixed(2)}x |`;
    }),
  ];
  return lines.join("\n");
}

function loadRow(mode: Mode, deploys: string, run: Load, steady: Load): string {
  return `| ${mode} | ${deploys} | ${run.replaced} | ${run.ok} | ${run.failed} | ${run.retried} | ${run.exact ? "yes" : "**no**"} | ${run.p50} | ${run.p99} | ${(run.p99 / steady.p99).toFixed(2)}x |`;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
