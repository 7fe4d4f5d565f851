import { rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import autocannon from "autocannon";
import { execa } from "execa";
import getPort from "get-port";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { AdminClient } from "../control/restate/admin-client.ts";
import type { Settings } from "../control/settings.ts";
import { waitFor } from "../control/wait.ts";
import { Ingress } from "../test/ingress.ts";
import { buildWorker, CELL_WORKERD, findChild, startTestMesh } from "../test/mesh.ts";
import { endpointRequests } from "../test/restate-metrics.ts";
import { attributionTable } from "./attribution.ts";
import { cellsTable } from "./cells.ts";
import { frontTable } from "./front.ts";
import { BENCH_CONNECTIONS, BENCH_SECONDS, wayIn } from "./load.ts";
import { cpuSeconds, parentOf } from "./proc.ts";
import { versions } from "./versions.ts";

/**
 * `npm run bench`: the same handlers served by Gridiron (workerd) and by the Node SDK's HTTP/2
 * endpoint, behind one restate-server, under the same closed-loop load from autocannon over
 * loopback (Gridiron's through its ingress front, the Node side's straight into Restate: load.ts). Gridiron serves two builds of them: bidirectional, as the demos are, and in
 * request-response mode, the Workers SDK's default. Prints two markdown tables. BENCH_SECONDS
 * (default 10) and BENCH_CONNECTIONS (default 32) set the load; BENCH_WORKLOADS (a comma list of
 * workload names' first words, e.g. "greeter,counter") runs only those, for quick A/B runs.
 * Then it compares meshes with attribution of builds' lines on and off (attribution.ts), and with
 * cells and one cell (cells.ts), and calls through the ingress front and straight in (front.ts).
 */

const ROOT = resolve(import.meta.dirname, "..");
const KEYS = 64;

/** The two Gridiron builds of bench/worker: bundle name, service prefix, protocol mode. */
const BUILDS = [
  { bundle: "bench", prefix: "gw_", bidirectional: true },
  { bundle: "bench-rr", prefix: "gr_", bidirectional: false },
] as const;

interface Workload {
  name: string;
  /** Path and body of the i-th request, for a service prefix. */
  request: (prefix: string, i: number) => { path: string; body: string };
}

const ALL_WORKLOADS: Workload[] = [
  { name: "greeter (stateless)", request: (p) => ({ path: `/${p}greeter/greet`, body: '"bench"' }) },
  { name: `counter add, ${KEYS} keys`, request: (p, i) => ({ path: `/${p}counter/k${i % KEYS}/add`, body: "" }) },
  { name: "3 ctx.run steps", request: (p) => ({ path: `/${p}steps/run`, body: "3" }) },
  { name: "9 ctx.run steps", request: (p) => ({ path: `/${p}steps/run`, body: "9" }) },
  { name: "call chain A -> B", request: (p) => ({ path: `/${p}front/greet`, body: '"bench"' }) },
];
const CHOSEN = process.env.BENCH_WORKLOADS?.split(",");
const WORKLOADS = ALL_WORKLOADS.filter((w) => !CHOSEN || CHOSEN.some((first) => w.name.startsWith(first)));

interface Measured {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU seconds per 1,000 invocations, by process. */
  cpu: Record<string, number>;
  /** HTTP requests restate-server sent to the endpoint per call (its own counter). */
  requestsPerCall: number;
}

async function main(): Promise<void> {
  console.error(`[bench] ${cpus().length} cores, ${BENCH_SECONDS} s per run, ${BENCH_CONNECTIONS} connections`);
  const buildsDir = join(tmpdir(), `gridiron-bench-${process.pid}`);
  const [mesh, chatty, second, ...sources] = await Promise.all([
    startTestMesh(),
    buildWorker("test/fixtures/chatty", join(buildsDir, "chatty")),
    buildWorker("bench/worker", join(buildsDir, "bench-gs"), { PREFIX: '"gs_"', BIDIRECTIONAL: "false" }),
    ...BUILDS.map((build) =>
      buildWorker("bench/worker", join(buildsDir, build.bundle), {
        PREFIX: JSON.stringify(build.prefix),
        BIDIRECTIONAL: String(build.bidirectional),
      }),
    ),
  ]);
  const nodePort = await getPort({ host: "127.0.0.1" });
  const nodeEndpoint = execa(process.execPath, [join(ROOT, "bench/node-endpoint.ts"), String(nodePort)], {
    reject: false,
    stdio: "ignore",
  });
  try {
    const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
    const admin = new AdminClient({ socketPath: mesh.settings.adminSocket });
    console.error("[bench] deploying the Gridiron builds and registering the Node endpoint");
    for (const [i, build] of BUILDS.entries()) {
      await ingress.call(`deployer/${build.bundle}/activate`, { source: sources[i], version: "1.0.0" });
    }
    await waitFor(
      "the Node endpoint",
      async () => {
        await admin.registerDeployment({ uri: `http://127.0.0.1:${nodePort}`, http11: false, force: true });
        return true;
      },
      30_000,
    );
    const workerd = await findChild(mesh, CELL_WORKERD);
    const pids = {
      "restate-server": await findChild(mesh, "/restate-server "),
      workerd,
      // It relays workerd's output (the SDK logs a line per invocation), so its CPU is Gridiron's.
      supervisor: await parentOf(workerd),
      node: nodeEndpoint.pid ?? 0,
    };

    const bidiRows: string[] = [];
    const requestResponseRows: string[] = [];
    for (const workload of WORKLOADS) {
      const bidi = await measure(mesh.settings, workload, BUILDS[0].prefix, pids);
      const requestResponse = await measure(mesh.settings, workload, BUILDS[1].prefix, pids);
      const node = await measure(mesh.settings, workload, "node_", pids, "Node");
      bidiRows.push(row(workload.name, bidi, node));
      requestResponseRows.push(row(workload.name, requestResponse, node));
    }
    const header = [
      "| workload | Gridiron req/s | Node req/s | ratio | Gridiron p50 / p99 ms | Node p50 / p99 ms | errors G / N | CPU s per 1k calls, Gridiron: restate + workerd + supervisor | CPU s per 1k calls, Node: restate + node | Restate requests to the endpoint per call, G / N |",
      "|---|---|---|---|---|---|---|---|---|---|",
    ];
    console.log(
      [
        `${await versions()}, ${cpus().length} cores; autocannon, ${BENCH_CONNECTIONS} connections, ${BENCH_SECONDS} s per cell, one run.`,
        "",
        "Gridiron builds served bidirectionally (`bidirectional: true`, as the demos are):",
        "",
        ...header,
        ...bidiRows,
        "",
        "The same handlers in a Gridiron build in request-response mode (the Workers SDK's default), against the same Node runs:",
        "",
        ...header,
        ...requestResponseRows,
      ].join("\n"),
    );
  } catch (error) {
    await rm(buildsDir, { recursive: true, force: true });
    throw error;
  } finally {
    nodeEndpoint.kill("SIGTERM");
    await mesh.stop();
  }
  // After the first mesh stopped: each side-by-side comparison starts two meshes of its own.
  try {
    const bench = sources[1] ?? "";
    console.log(`\n${await attributionTable({ bench, chatty }, BENCH_SECONDS, BENCH_CONNECTIONS)}`);
    console.log(`\n${await cellsTable({ bench, second }, BENCH_SECONDS, BENCH_CONNECTIONS)}`);
    console.log(`\n${await frontTable(bench, BENCH_SECONDS, BENCH_CONNECTIONS)}`);
  } finally {
    await rm(buildsDir, { recursive: true, force: true });
  }
}

async function measure(
  settings: Settings,
  workload: Workload,
  prefix: string,
  pids: Record<string, number>,
  side: "Gridiron" | "Node" = "Gridiron",
): Promise<Measured> {
  const way = wayIn(settings, side);
  let i = 0;
  const requests: autocannon.Request[] = [
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      setupRequest: (request) => {
        const { path, body } = workload.request(prefix, i++);
        return { ...request, path, body };
      },
    },
  ];
  // A short warm-up, so isolates, connections and JIT are ready before the timed run.
  await autocannon({ ...way, connections: BENCH_CONNECTIONS, duration: 2, requests });
  const before = await cpuSeconds(pids);
  const requestsBefore = await endpointRequests(settings);
  const result = await autocannon({ ...way, connections: BENCH_CONNECTIONS, duration: BENCH_SECONDS, requests });
  const after = await cpuSeconds(pids);
  const requestsAfter = await endpointRequests(settings);
  const calls = Math.max(1, result.requests.total);
  const cpu = Object.fromEntries(
    Object.keys(pids).map((k) => [k, (((after[k] ?? 0) - (before[k] ?? 0)) * 1000) / calls]),
  );
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
    cpu,
    requestsPerCall: (requestsAfter - requestsBefore) / calls,
  };
}

function row(name: string, g: Measured, n: Measured): string {
  const f = (x: number) => x.toFixed(0);
  const c = (x: number | undefined) => (x ?? 0).toFixed(2);
  return `| ${name} | ${f(g.rps)} | ${f(n.rps)} | ${(g.rps / n.rps).toFixed(2)}x | ${g.p50} / ${g.p99} | ${n.p50} / ${n.p99} | ${g.errors} / ${n.errors} | ${c(g.cpu["restate-server"])} + ${c(g.cpu.workerd)} + ${c(g.cpu.supervisor)} | ${c(n.cpu["restate-server"])} + ${c(n.cpu.node)} | ${g.requestsPerCall.toFixed(1)} / ${n.requestsPerCall.toFixed(1)} |`;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
