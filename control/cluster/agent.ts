import { readdir } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { buildKey } from "../contracts.ts";
import type { RoutedBuild } from "../domain/ownership.ts";
import { removeBundle, storedBuildIds } from "../files/bundle-store.ts";
import type { BuildFiles, NodeAgent } from "../node/node-agent.ts";
import type { Settings } from "../settings.ts";
import { answers } from "../wait.ts";
import { catchUpStep, type PeerAttempt } from "./catch-up.ts";
import type { ClusterMembership, Peer } from "./peers.ts";
import { hostPort } from "./restate-config.ts";
import { StoreClient } from "./store-client.ts";

/** How often a cluster node compares what it serves with what the `routes` object records. */
export const SYNC_MS = 1_000;
/** How long a starting node waits for the running cluster to answer it (its leaders may be moving). */
const CATCH_UP_MS = 60_000;
const CATCH_UP_PAUSE_MS = 1_000;
/** Whether a peer's restate-server runs at all: it answers its ingress health at once if it does. */
const PROBE_TIMEOUT_MS = 1_000;

/**
 * A cluster node's build files: fetched from the bundle store (Restate's replicated state) into
 * the local bundles dir before the node agent serves them, and deleted once no longer stored.
 */
export function storedFiles(
  settings: Pick<Settings, "bundlesDir" | "maxBundleBytes">,
  adminToken: string,
  log: (line: string) => void,
): BuildFiles {
  return {
    async fetch(ingressUrl: string, builds: RoutedBuild[]) {
      const store = new StoreClient(ingressUrl, adminToken);
      for (const build of builds) await store.fetch(settings.bundlesDir, build, settings.maxBundleBytes);
    },
    /**
     * Deletes local builds neither routed nor stored. Each dir is listed before the store is
     * asked: the deployer stores a build before it copies it here, so a new build is never taken
     * for a deleted one.
     */
    async cleanUp(ingressUrl: string, routed: Set<string>) {
      const store = new StoreClient(ingressUrl, adminToken);
      for (const build of await localBuilds(settings.bundlesDir)) {
        const key = buildKey(build);
        if (routed.has(key) || (await store.isStored(build))) continue;
        await removeBundle(settings.bundlesDir, build);
        log(`[gridiron] deleted the files of ${key}: no longer stored`);
      }
    },
  };
}

/**
 * Before this node's restate-server starts, so it never leads a partition with a build it lacks:
 * the agent serves what the cluster routes, read from a peer (see catch-up.ts for when the node
 * may start without). Throws, with a message for the operator, when it must not start: the
 * running cluster does not answer it.
 */
export async function catchUp(
  agent: NodeAgent,
  cluster: ClusterMembership,
  ingressPort: number,
  log: (line: string) => void,
): Promise<void> {
  const others = cluster.peers.filter((p) => p !== cluster.self);
  const deadline = Date.now() + CATCH_UP_MS;
  const told = new Map<string, string>();
  for (;;) {
    const attempts: PeerAttempt[] = [];
    for (const peer of others) {
      const attempt = await attemptFrom(agent, peer, ingressPort);
      attempts.push(attempt);
      if (attempt.outcome === "served") break;
      const said = attempt.reason;
      if (told.get(peer.name) !== said) log(`[gridiron] could not catch up from ${peer.name}: ${said}`);
      told.set(peer.name, said);
    }
    const step = catchUpStep(attempts, cluster.peers.length, Date.now() < deadline);
    if (step.kind === "caught-up") {
      log(`[gridiron] caught up from ${step.from}: serving ${agent.report().builds.length} build(s)`);
      return;
    }
    if (step.kind === "start-as-before") {
      log(`[gridiron] starting with the builds served before: ${step.why}`);
      return;
    }
    if (step.kind === "stop") throw new Error(step.message);
    await sleep(CATCH_UP_PAUSE_MS);
  }
}

/** One try to have the agent serve what `peer`'s ingress says is routed. */
async function attemptFrom(agent: NodeAgent, peer: Peer, ingressPort: number): Promise<PeerAttempt> {
  const ingress = `http://${hostPort(peer.address, ingressPort)}`;
  try {
    await agent.sync(ingress);
    return { peer: peer.name, outcome: "served" };
  } catch (error) {
    const alive = await answers(`${ingress}/restate/health`, { timeoutMs: PROBE_TIMEOUT_MS });
    return { peer: peer.name, outcome: "failed", reason: (error as Error).message, alive };
  }
}

/** Every build stored in the bundles dir, of every bundle. */
async function localBuilds(bundlesDir: string): Promise<{ name: string; buildId: string }[]> {
  const bundles = (await readdir(bundlesDir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory());
  const builds: { name: string; buildId: string }[] = [];
  for (const { name } of bundles) {
    for (const buildId of await storedBuildIds(bundlesDir, name)) builds.push({ name, buildId });
  }
  return builds;
}
