import { readdir } from "node:fs/promises";
import { removeBundle } from "../bundle-store.ts";
import type { BuildFiles, NodeAgent } from "../node-agent.ts";
import type { RoutedBuild } from "../ownership.ts";
import type { Settings } from "../settings.ts";
import type { ClusterMembership } from "./peers.ts";
import { StoreClient, storeKey } from "./store.ts";

/** How often a cluster node compares what it serves with what the `routes` object records. */
export const SYNC_MS = 1_000;

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
        const key = storeKey(build);
        if (routed.has(key) || (await store.isStored(build))) continue;
        await removeBundle(settings.bundlesDir, build);
        log(`[gridiron] deleted the files of ${key}: no longer stored`);
      }
    },
  };
}

/**
 * Before this node's restate-server starts, so it never leads a partition with a build it lacks:
 * serves what the cluster routes, read from the first peer that answers. Without any (the whole
 * cluster is starting), the node starts with the routes it served before.
 */
export async function catchUp(
  agent: NodeAgent,
  cluster: ClusterMembership,
  ingressPort: number,
  log: (line: string) => void,
): Promise<void> {
  for (const peer of cluster.peers.filter((p) => p !== cluster.self)) {
    try {
      const { builds } = await agent.sync(`http://${peer.address}:${ingressPort}`);
      log(`[gridiron] caught up from ${peer.name}: serving ${builds.length} build(s)`);
      return;
    } catch (error) {
      log(`[gridiron] could not catch up from ${peer.name}: ${(error as Error).message}`);
    }
  }
  log("[gridiron] no peer answered; starting with the builds served before");
}

/** Every `{name}/{buildId}` dir in the bundles dir (not a half-written `.partial` one). */
async function localBuilds(bundlesDir: string): Promise<{ name: string; buildId: string }[]> {
  const names = await readdir(bundlesDir, { withFileTypes: true }).catch(() => []);
  const builds: { name: string; buildId: string }[] = [];
  for (const name of names.filter((entry) => entry.isDirectory())) {
    const ids = await readdir(`${bundlesDir}/${name.name}`, { withFileTypes: true });
    for (const id of ids) {
      if (id.isDirectory() && !id.name.endsWith(".partial")) builds.push({ name: name.name, buildId: id.name });
    }
  }
  return builds;
}
