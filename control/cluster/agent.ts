import { readdir } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { HttpCallError } from "@restatedev/restate-sdk-clients";
import type { Build } from "../bundle.ts";
import { removeBundle } from "../bundle-store.ts";
import { routedBuilds } from "../routes.ts";
import type { Settings } from "../settings.ts";
import { answers } from "../wait.ts";
import { writeRoutes } from "../workerd/config.ts";
import { refreshRoutes } from "../workerd/router-client.ts";
import { catchUpStep, type PeerAttempt } from "./catch-up.ts";
import type { ClusterMembership, Peer } from "./peers.ts";
import { hostPort } from "./restate-config.ts";
import { StoreClient, storeKey } from "./store.ts";

/** How often a node compares what it serves with what the `routes` object says should be served. */
const SYNC_MS = 1_000;
/** How often files of builds neither routed nor stored are looked for, besides after each change. */
const CLEANUP_EVERY_SYNCS = 10;
/** How long a starting node waits for the running cluster to answer it (its leaders may be moving). */
const CATCH_UP_MS = 60_000;
const CATCH_UP_PAUSE_MS = 1_000;
/** Whether a peer's restate-server runs at all: it answers its ingress health at once if it does. */
const PROBE_TIMEOUT_MS = 1_000;

/** What this node serves, for the deployer's "every live node serves it" and for status. */
export interface NodeReport {
  node: string;
  /** `{name}@{buildId}` of every build this node's workerd serves. */
  builds: string[];
  /** Whether this node has served what the cluster routes at least once since it started. */
  caughtUp: boolean;
}

/**
 * A cluster node's agent: makes this node's workerd serve exactly the builds the `routes` object
 * routes, fetching each from the bundle store (Restate's replicated state) into the local bundles
 * dir, and deletes the files of builds no longer stored. The supervisor runs it, and runs its
 * catch-up before this node's restate-server starts, so the node serves every live build before
 * it can lead a partition, and a node with a wrong token stops before it can answer anything.
 */
export class NodeAgent {
  private served: Build[] | undefined;
  private removedSinceRelease = 0;
  private syncs = 0;
  private lastError = "";
  private readonly settings: Settings;
  private readonly cluster: ClusterMembership;
  private readonly adminToken: string;
  private readonly release: () => Promise<void>;
  private readonly log: (line: string) => void;

  /** `release` lets a fresh workerd take over, to free the memory of builds no longer served. */
  constructor(
    settings: Settings,
    cluster: ClusterMembership,
    adminToken: string,
    release: () => Promise<void>,
    log: (line: string) => void,
  ) {
    this.settings = settings;
    this.cluster = cluster;
    this.adminToken = adminToken;
    this.release = release;
    this.log = log;
  }

  report(): NodeReport {
    return {
      node: this.cluster.self.name,
      builds: (this.served ?? []).map(storeKey),
      caughtUp: this.served !== undefined,
    };
  }

  /**
   * Serves what the cluster routes, read from a peer, before this node's restate-server starts
   * (see catch-up.ts for when it may start without). Throws, with a message for the operator,
   * when it must not start: its token is refused, or the running cluster does not answer it.
   */
  async catchUp(): Promise<void> {
    const others = this.cluster.peers.filter((p) => p !== this.cluster.self);
    const deadline = Date.now() + CATCH_UP_MS;
    const told = new Map<string, string>();
    for (;;) {
      const attempts: PeerAttempt[] = [];
      for (const peer of others) {
        const attempt = await this.attempt(peer);
        attempts.push(attempt);
        if (attempt.outcome === "served") break;
        const said = attempt.outcome === "failed" ? attempt.reason : "refused this node's admin token";
        if (told.get(peer.name) !== said) this.log(`[gridiron] could not catch up from ${peer.name}: ${said}`);
        told.set(peer.name, said);
      }
      const step = catchUpStep(attempts, this.cluster.peers.length, Date.now() < deadline);
      if (step.kind === "caught-up") {
        this.log(`[gridiron] caught up from ${step.from}: serving ${this.served?.length ?? 0} build(s)`);
        return;
      }
      if (step.kind === "start-as-before") {
        this.log(`[gridiron] starting with the builds served before: ${step.why}`);
        return;
      }
      if (step.kind === "stop") throw new Error(step.message);
      await sleep(CATCH_UP_PAUSE_MS);
    }
  }

  /** One try to serve what `peer`'s ingress says is routed. */
  private async attempt(peer: Peer): Promise<PeerAttempt> {
    const ingress = `http://${hostPort(peer.address, this.settings.ports.ingress)}`;
    try {
      await this.sync(ingress);
      return { peer: peer.name, outcome: "served" };
    } catch (error) {
      if (error instanceof HttpCallError && (error.status === 401 || error.status === 403)) {
        return { peer: peer.name, outcome: "refused" };
      }
      const alive = await answers(`${ingress}/restate/health`, { timeoutMs: PROBE_TIMEOUT_MS });
      return { peer: peer.name, outcome: "failed", reason: (error as Error).message, alive };
    }
  }

  /** Syncs through this node's own restate-server every second until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.sync(this.settings.ingressUrl);
        this.lastError = "";
      } catch (error) {
        const message = (error as Error).message;
        if (message !== this.lastError) this.log(`[gridiron] node agent: ${message}`);
        this.lastError = message;
      }
      await sleep(SYNC_MS, undefined, { signal }).catch(() => {});
    }
  }

  /**
   * One pass through the ingress at `ingressUrl`: fetch what is routed and missing, serve exactly
   * that, and now and then delete what is gone.
   */
  private async sync(ingressUrl: string): Promise<void> {
    const store = new StoreClient(ingressUrl, this.adminToken);
    const routed = await routedBuilds(ingressUrl, this.adminToken);
    for (const build of routed) await store.fetch(this.settings.bundlesDir, build, this.settings.maxBundleBytes);
    const keys = routed.map(storeKey);
    const before = (this.served ?? []).map(storeKey);
    const changed = this.served === undefined || keys.join() !== before.join();
    if (changed) {
      await writeRoutes(this.settings.bundlesDir, routed);
      await refreshRoutes(this.settings, routed.length);
      await this.countRemovals(before.filter((key) => !keys.includes(key)).length);
    }
    this.served = routed;
    if (changed || ++this.syncs % CLEANUP_EVERY_SYNCS === 0) await this.deleteUnstored(store, new Set(keys));
  }

  /** A removed build stays compiled until its workerd ends; a fresh one takes over now and then. */
  private async countRemovals(removed: number): Promise<void> {
    this.removedSinceRelease += removed;
    if (this.removedSinceRelease < this.settings.releaseAfter) return;
    await this.release();
    this.removedSinceRelease = 0;
  }

  /**
   * Deletes local builds neither routed nor stored. Each dir is listed before the store is asked:
   * the deployer stores a build before it copies it here, so a new build is never taken for a
   * deleted one.
   */
  private async deleteUnstored(store: StoreClient, routed: Set<string>): Promise<void> {
    for (const build of await localBuilds(this.settings.bundlesDir)) {
      const key = storeKey(build);
      if (routed.has(key) || (await store.isStored(build))) continue;
      await removeBundle(this.settings.bundlesDir, build);
      this.log(`[gridiron] deleted the files of ${key}: no longer stored`);
    }
  }
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
