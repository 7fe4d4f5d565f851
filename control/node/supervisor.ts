import type { Server } from "node:http";
import { Agent } from "undici";
import { closeServer } from "../close-server.ts";
import { catchUp, SYNC_MS, storedFiles } from "../cluster/agent.ts";
import { askPeers, confirmToken, RECHECK_MS, serveTokenCheck, watchToken } from "../cluster/token-check.ts";
import { readAdminToken } from "../credentials/admin-token.ts";
import { removeMeshFile, writeMeshFile } from "../mesh-file.ts";
import type { Quarantine } from "../objects/routes.ts";
import { quarantineBundle } from "../objects/routes-client.ts";
import { serveOps } from "../ops/server.ts";
import { culprits, heldBundles, watchdogKills } from "../ops/supervisor-metrics.ts";
import { AdminClient } from "../restate/admin-client.ts";
import { serveAdminFront } from "../restate/admin-front.ts";
import { serveIngressFront } from "../restate/ingress-front.ts";
import type { Settings } from "../settings.ts";
import { answers, waitFor, withTimeout } from "../wait.ts";
import { holdCellSockets } from "./cell-sockets.ts";
import { componentSpecs, deployerThread, prepareDataDir } from "./components.ts";
import { type CellProcesses, NodeAgent, serveAgentSocket } from "./node-agent.ts";
import { Supervised } from "./supervised.ts";
import { SupervisedThread } from "./supervised-thread.ts";
import { deployerReady } from "./supervisor-ipc.ts";
import { alwaysRunningCells, cellUrl } from "./workerd/cells.ts";
import { cellsInRoutes } from "./workerd/config.ts";
import { LiveWorkerd } from "./workerd/live.ts";
import { watchWorkerd } from "./workerd/watchdog.ts";

const STARTUP_TIMEOUT_MS = 60_000;

export interface Mesh {
  stop(): Promise<void>;
  /** Ends the deployer's thread at once, as a crash would; it is started again (SIGUSR2 to `npm start`). */
  killDeployer(): void;
  /** Settles once the mesh stopped on its own: a cluster node whose peers refuse its admin token. */
  failed: Promise<Error>;
}

/**
 * Starts workerd, restate-server, the fronts of its admin API and ingress, and the deployer
 * endpoint, waits until the deployer has registered itself with Restate, and keeps them all
 * running until `stop`. Runs the node agent, which the deployer tells over its socket to serve the
 * routes; on a cluster node it first serves what the cluster routes, then polls. Every workerd of
 * cell i serves `cellSockets[i]` (cell-sockets.ts).
 */
async function startMesh(
  settings: Settings,
  cellSockets: number[],
  log: (line: string) => void = console.log,
): Promise<Mesh> {
  await prepareDataDir(settings, log);
  const token = await readAdminToken(settings);
  const admin = new AdminClient({ socketPath: settings.adminSocket });
  const adminFront = new AdminClient({ url: settings.adminUrl, token });
  const specs = componentSpecs(settings, cellSockets);
  const restate = new Supervised(specs.restate, undefined, log);
  const cells = specs.cells.map((spec) => new LiveWorkerd(settings, spec, log));
  const files = settings.cluster ? storedFiles(settings, token, log) : undefined;
  const agent = new NodeAgent(settings, token, cellProcesses(cells), log, files);
  // First, so /livez answers and /readyz says what is missing while the rest starts. Only a
  // cluster node reports what its agent serves (`/node`, and readiness once caught up).
  const ops = await serveOps(settings, "supervisor", token, settings.cluster ? agent : undefined);
  const agentSocket = await serveAgentSocket(agent, settings.agentSocket);
  // Before restate-server, so nodes of a cluster starting together can check each other's token.
  const tokenSettings = settings.cluster && {
    cluster: settings.cluster,
    clusterTls: settings.clusterTls,
    port: settings.clusterTokenPort,
  };
  const tokenCheck = tokenSettings && (await serveTokenCheck(tokenSettings, token));
  let registered: Promise<void> = Promise.resolve();
  const deployer = new SupervisedThread(deployerThread, (thread) => (registered = deployerReady(thread)), log);
  const all = [deployer, ...cells, restate];
  // In this process, as the ops port is: a process of its own cost ~90 MB resident (Node's own
  // share); under runit they are one (main.ts fronts).
  const fronts: Server[] = [];
  const watching = new AbortController();
  // All at once: on Ctrl-C the terminal signals every child too, and each must be marked as
  // stopping before its exit is taken for a crash and restarted.
  const stop = async () => {
    watching.abort();
    await Promise.all([
      ...all.map((child) => child.stop()),
      ops.close(),
      agentSocket.close(),
      tokenCheck?.close(),
      ...fronts.map(closeServer),
    ]);
  };

  try {
    log(`[gridiron] starting workerd: ${cells.length} cell(s)`);
    log(servicesLinesNote(settings.logs.attribution));
    // The quarantine cell only if a build was placed there before: else once one is (the node agent starts it).
    const placed = await cellsInRoutes(settings.bundlesDir);
    const starting = [...new Set([...alwaysRunningCells(settings), ...placed])];
    await Promise.all(starting.map((cell) => cells[cell]?.start()));
    // Before restate-server: a node whose token is not the cluster's must never lead a partition,
    // and a node that leads one must already serve every live build.
    if (tokenSettings) await confirmToken(askPeers(tokenSettings, token), tokenSettings.cluster.peers.length, log);
    if (settings.cluster) await catchUp(agent, settings.cluster, settings.ports.ingress, log);
    log("[gridiron] starting restate-server");
    restate.start();
    await waitFor("restate-server admin API", () => admin.healthy(), STARTUP_TIMEOUT_MS);
    const ingressSocket = new Agent({ connect: { socketPath: settings.ingressSocket } });
    const ingressHealthy = () => answers("http://localhost/restate/health", { dispatcher: ingressSocket });
    await waitFor("restate-server ingress", ingressHealthy, STARTUP_TIMEOUT_MS).finally(() => ingressSocket.close());
    log("[gridiron] starting the fronts of Restate's admin API and ingress");
    fronts.push(await serveAdminFront(settings));
    fronts.push(await serveIngressFront(settings));
    await waitFor("the admin API front", () => adminFront.healthy(), STARTUP_TIMEOUT_MS);
    await waitFor("the ingress front", () => answers(`${settings.ingressUrl}/restate/health`), STARTUP_TIMEOUT_MS);
    cells.forEach((workerd, cell) => {
      // Each cell has its own watchdog: a cell that hangs or grows is killed alone.
      void watchWorkerd(workerd, admin, cellUrl(settings, cell), settings.watchdog, {
        log: (line) => log(line.replace(/^\[gridiron\] /, `[gridiron] cell ${cell}: `)),
        killed: (cause) => watchdogKills.inc({ reason: cause }),
        bundles: () => agent.bundlesIn(cell),
        hold: async (bundles, live) => {
          heldBundles.set({ cell }, bundles.length);
          await agent.hold(cell, bundles, live);
        },
        culprit: (bundle, reason) => quarantineCulprit(settings, token, agent, { bundle, cell, reason }),
        signal: watching.signal,
      });
    });
    log("[gridiron] starting the deployer");
    deployer.start();
    // The deployer registers itself with Restate once it listens (see endpoint.ts).
    await withTimeout(registered, STARTUP_TIMEOUT_MS, "the deployer did not register with Restate");
    // A cluster node follows what other nodes' deployers route; this node's deployer tells its agent.
    if (settings.cluster) void agent.poll(SYNC_MS, watching.signal);
  } catch (error) {
    await stop();
    throw error;
  }
  log(
    `[gridiron] ready: ingress ${settings.ingressUrl}, admin ${settings.adminUrl}, workerd ${cells.length} cell(s) from ${settings.workerdUrl}, deployer ${settings.deployerUrl}, ops ${settings.opsUrl}`,
  );
  // The cluster may be given another token while this node runs: then this node stops too.
  const failed = new Promise<Error>((resolve) => {
    if (!tokenSettings) return;
    const ask = askPeers(tokenSettings, token);
    void watchToken(ask, tokenSettings.cluster.peers.length, RECHECK_MS, watching.signal, (message) => {
      log(`[gridiron] ${message}`);
      void stop().then(() => resolve(new Error(message)));
    });
  });
  return { stop, killDeployer: () => deployer.kill(), failed };
}

/**
 * Quarantines the bundle found to hang its cell alone (domain/culprit.ts): every node's router
 * refuses its builds' calls in that cell, and its next build goes to the quarantine cell. The
 * cell's own hold on those builds, which applied at once, can stay: it holds nothing refused.
 * The cell is just restarting, so the sync may fail to tell its router; the routes file it reads
 * as it starts is written all the same, and the next sync tells it again.
 */
async function quarantineCulprit(
  settings: Pick<Settings, "ingressUrl">,
  token: string,
  agent: NodeAgent,
  culprit: Quarantine,
): Promise<void> {
  culprits.inc({ bundle: culprit.bundle, cell: culprit.cell });
  heldBundles.set({ cell: culprit.cell }, 0);
  await quarantineBundle(settings.ingressUrl, token, culprit);
  await agent.sync();
}

/** The cells' workerds as the node agent drives them: a handover frees removed builds' memory. */
function cellProcesses(cells: LiveWorkerd[]): CellProcesses {
  const at = (cell: number) => {
    const workerd = cells[cell];
    if (!workerd) throw new Error(`this node runs no cell ${cell}`);
    return workerd;
  };
  return {
    release: (cell) => at(cell).handover(),
    runs: (cell) => at(cell).runs(),
    start: (cell) => at(cell).start(),
  };
}

/**
 * `npm start`: the mesh in the foreground, its address recorded for the CLI (mesh-file.ts), until
 * Ctrl-C or SIGTERM stops every process.
 */
export async function runMesh(settings: Settings): Promise<void> {
  const mesh = await startMesh(settings, await holdCellSockets(settings));
  await writeMeshFile(settings);
  void mesh.failed.then(async (error) => {
    console.error(`[gridiron] stopped: ${error.message}`);
    await removeMeshFile(settings);
    process.exit(1);
  });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`[gridiron] ${signal}: stopping`);
    await removeMeshFile(settings);
    await mesh.stop();
    console.log("[gridiron] stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  // The deployer is a thread, so nothing outside can signal it alone; this is how (crash tests,
  // an operator's kill of a stuck control plane).
  process.on("SIGUSR2", () => {
    console.log("[gridiron] SIGUSR2: ending the deployer's thread");
    mesh.killDeployer();
  });
}

/**
 * Where a user's lines go, said where they would look for them. With attribution they are kept,
 * not printed (router/attribute.js); without it workerd prints them unprefixed, with the SDK's
 * signature warning, which is explained here.
 */
function servicesLinesNote(attribution: boolean): string {
  if (attribution) return "[gridiron] your services' lines: `gridiron tail BUNDLE` (or `gridiron logs BUNDLE`)";
  return "[gridiron] workerd prints your services' lines unprefixed (GRIDIRON_LOGS=false); the Restate SDK's \"Accepting requests without validating request signatures\" is expected there: Gridiron's router checks Restate's signature before a build sees a request";
}
