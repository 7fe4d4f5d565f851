import { rm } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import { z } from "zod";
import { closeServer } from "../close-server.ts";
import { buildKey } from "../contracts.ts";
import type { RoutedBuild } from "../domain/ownership.ts";
import { afterChange, RouteChange, type Routes } from "../domain/route-changes.ts";
import { routedBuilds } from "../objects/routes-client.ts";
import type { Settings } from "../settings.ts";
import { cellIds, cellOf, cellUrl } from "./workerd/cells.ts";
import { writeRoutes } from "./workerd/config.ts";
import type { ServedBuild } from "./workerd/router/types.ts";
import { PROVED_WARM_TIMEOUT_MS, refreshRoutes, warm } from "./workerd/router-client.ts";

/** What a node serves, for the deployer's "every node serves it" and for status. */
export const NodeReport = z.object({
  node: z.string(),
  /** `{name}@{buildId}` of every build this node's workerd serves. */
  builds: z.array(z.string()),
  /** Whether this node has served what `routes` records at least once since it started. */
  caughtUp: z.boolean(),
});
export type NodeReport = z.infer<typeof NodeReport>;

/**
 * Where a node's build files come from besides the deployer's own copy: on a cluster node, the
 * bundle store (cluster/agent.ts). On one node the deployer copies and deletes them itself.
 */
export interface BuildFiles {
  /** Puts every routed build's files in the bundles dir, read through the ingress at `ingressUrl`. */
  fetch(ingressUrl: string, builds: RoutedBuild[]): Promise<void>;
  /** Deletes the files of builds that are neither in `routed` (keys) nor kept elsewhere. */
  cleanUp(ingressUrl: string, routed: Set<string>): Promise<void>;
}

/** What the agent needs of the settings. */
export type AgentSettings = Pick<
  Settings,
  "nodeName" | "bundlesDir" | "releaseAfter" | "ingressUrl" | "identityKeyPath" | "cells" | "ports"
>;

/** The node's workerd processes, one per cell, as the agent drives them. */
export interface CellProcesses {
  /** Lets a fresh workerd take over `cell`, to free the memory of builds no longer served there. */
  release(cell: number): Promise<void>;
  /** Whether `cell`'s workerd runs: the quarantine cell's starts only once a build is placed there. */
  runs(cell: number): boolean;
  /** Starts `cell`'s workerd unless it runs; resolves once it serves. */
  start(cell: number): Promise<void>;
}

/** How often files of builds neither routed nor stored are looked for, besides after each change. */
const CLEANUP_EVERY_SYNCS = 10;

/**
 * The node agent, one on every node: makes this node's workerd serve exactly the builds the
 * `routes` object records. It alone writes the routes file, tells the router to re-read it, and
 * lets a fresh workerd take over to free removed builds' memory. It is told to sync at once
 * (`sync`, which the deployer reaches over the agent socket) and, on a cluster node, also polls.
 * One pass runs at a time; a sync asked for during a pass runs after it.
 */
export class NodeAgent {
  private served: RoutedBuild[] | undefined;
  /** The revision of the `routes` object `served` is (route-changes.ts). */
  private revision = 0;
  /** Cell -> builds removed from it since a fresh workerd last took it over. */
  private readonly removedSinceRelease = new Map<number, number>();
  /** Cell -> the builds (keys) there whose calls its router holds while the cell's watchdog hunts (domain/culprit.ts). */
  private readonly held = new Map<number, Set<string>>();
  private syncs = 0;
  private lastError = "";
  private queue: Promise<unknown> = Promise.resolve();
  private readonly settings: AgentSettings;
  private readonly adminToken: string;
  private readonly cells: CellProcesses;
  private readonly log: (line: string) => void;
  private readonly files: BuildFiles | undefined;

  constructor(
    settings: AgentSettings,
    adminToken: string,
    cells: CellProcesses,
    log: (line: string) => void,
    files?: BuildFiles,
  ) {
    this.settings = settings;
    this.adminToken = adminToken;
    this.cells = cells;
    this.log = log;
    this.files = files;
  }

  report(): NodeReport {
    return {
      node: this.settings.nodeName,
      builds: (this.served ?? []).map(buildKey),
      caughtUp: this.served !== undefined,
    };
  }

  /**
   * Serves what `routes` records now, read through `ingressUrl` (this node's by default), or what
   * follows from `change`, the one the deployer just made, when the agent serves the revision
   * right before it. Unless `warm` is false, builds routed since the last pass are then compiled
   * ahead of their first call.
   */
  sync(ingressUrl = this.settings.ingressUrl, { warm: compile = true, change }: SyncOptions = {}): Promise<NodeReport> {
    const pass = this.queue.then(() => this.pass(ingressUrl, compile, change));
    // The answer does not wait for the new builds to compile, the next pass does (see warmNew).
    this.queue = pass.then(({ warming }) => warming).catch(() => {});
    return pass.then(() => this.report());
  }

  /** The bundles with a build serving in `cell`, none refused for good: what its watchdog suspects. */
  bundlesIn(cell: number): string[] {
    return (this.served ?? []).filter((build) => cellOf(build) === cell && !build.refused).map((build) => build.name);
  }

  /**
   * Makes cell `cell`'s router hold the calls of `bundles`' builds there now (none: hold none)
   * while its watchdog finds which bundle hangs it; their later builds are not held. The routes
   * file is written at once, for the workerd that replaces a killed one, without waiting for a
   * sync in progress (it may be waiting on this very cell); a live one (`refresh`) re-reads it too.
   */
  async hold(cell: number, bundles: string[], refresh: boolean): Promise<void> {
    const served = this.served ?? [];
    const inCell = served.filter((build) => cellOf(build) === cell);
    this.held.set(cell, new Set(inCell.filter((build) => bundles.includes(build.name)).map(buildKey)));
    await writeRoutes(this.settings.bundlesDir, this.marked(served));
    if (refresh) await refreshRoutes(this.settings, cellUrl(this.settings, cell), inCell.length);
  }

  /** The routes file's builds: the routed ones, those held marked. */
  private marked(routed: RoutedBuild[]): ServedBuild[] {
    return routed.map((build) => {
      const cell = cellOf(build);
      if (build.refused || !this.held.get(cell)?.has(buildKey(build))) return build;
      const held = `held: cell ${cell} keeps hanging, and its watchdog is finding which bundle's code does it; Restate retries this call`;
      return { ...build, held };
    });
  }

  /** Syncs every `everyMs` until `signal` aborts: a cluster node follows what other nodes' deployers route. */
  async poll(everyMs: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.sync();
        this.lastError = "";
      } catch (error) {
        const message = (error as Error).message;
        if (message !== this.lastError) this.log(`[gridiron] node agent: ${message}`);
        this.lastError = message;
      }
      await sleep(everyMs, undefined, { signal }).catch(() => {});
    }
  }

  /**
   * One pass: fetch what is routed and missing, serve exactly that, start compiling what is new,
   * and now and then clean up.
   */
  private async pass(ingressUrl: string, compile: boolean, change?: RouteChange): Promise<{ warming: Promise<void> }> {
    const following = this.served && { revision: this.revision, builds: this.served };
    const routes: Routes =
      (change && afterChange(following, change)) ?? (await routedBuilds(ingressUrl, this.adminToken));
    const routed = routes.builds;
    await this.files?.fetch(ingressUrl, routed);
    const keys = routed.map(buildKey);
    // The whole record, not just the keys: a build routed again with its proof's manifest changes too.
    const changed = this.served === undefined || JSON.stringify(routed) !== JSON.stringify(this.served);
    if (changed) {
      const cells = cellIds(this.settings);
      const stray = routed.find((build) => !cells.includes(cellOf(build)));
      if (stray) {
        throw new Error(
          `${buildKey(stray)} is placed in cell ${cellOf(stray)}, and this node runs ${cells.length} cell(s): set GRIDIRON_CELLS the same on every node`,
        );
      }
      await writeRoutes(this.settings.bundlesDir, this.marked(routed));
      for (const cell of cells) {
        const expected = routed.filter((build) => cellOf(build) === cell).length;
        // A cell that never served a build has no workerd yet (the quarantine cell): started once one is placed there.
        if (expected === 0 && !this.cells.runs(cell)) continue;
        await this.cells.start(cell);
        await refreshRoutes(this.settings, cellUrl(this.settings, cell), expected);
      }
    }
    const removed = changed ? (this.served ?? []).filter((build) => !keys.includes(buildKey(build))) : [];
    const warming = compile ? this.warmNew(routed) : Promise.resolve();
    this.served = routed;
    this.revision = routes.revision;
    // Counted even when nothing changed: a release that failed is tried again on the next pass.
    await this.countRemovals(removed);
    if (changed || ++this.syncs % CLEANUP_EVERY_SYNCS === 0) await this.files?.cleanUp(ingressUrl, new Set(keys));
    return { warming };
  }

  /**
   * Has each build routed since the last pass compiled in its cell now, rather than on its first
   * call: on a cluster node, what another node's deployer routed (that deployer compiles it on its
   * own node, deployer/serve.ts), so that its first call here finds it ready. Not on the first
   * pass, which finds every build of a workerd just started: those compile on first use. A build
   * that fails here was proved, and its first call would fail the same; so it is only logged.
   */
  private warmNew(routed: RoutedBuild[]): Promise<void> {
    if (this.served === undefined) return Promise.resolve();
    const before = new Set(this.served.map(buildKey));
    const added = routed.filter((build) => !before.has(buildKey(build)));
    const warming = added.map((build) =>
      warm(this.settings, cellUrl(this.settings, cellOf(build)), PROVED_WARM_TIMEOUT_MS, build).catch(
        (error: unknown) => {
          this.log(
            `[gridiron] node agent: compiling ${buildKey(build)} ahead of its first call: ${(error as Error).message}`,
          );
        },
      ),
    );
    return Promise.all(warming).then(() => {});
  }

  /**
   * A removed build stays compiled until its cell's workerd ends (the Worker Loader never unloads).
   * A fresh workerd frees it, but each live build of that cell compiles again on its next call,
   * and a call holding a stream is cut (Restate retries it), so it takes over once every few
   * removals, and only in the cell that held them.
   */
  private async countRemovals(removed: RoutedBuild[]): Promise<void> {
    for (const build of removed) {
      const cell = cellOf(build);
      this.removedSinceRelease.set(cell, (this.removedSinceRelease.get(cell) ?? 0) + 1);
    }
    for (const [cell, count] of this.removedSinceRelease) {
      if (count < this.settings.releaseAfter) continue;
      await this.cells.release(cell);
      this.removedSinceRelease.delete(cell);
    }
  }
}

interface SyncOptions {
  /** Whether builds routed since the last pass are compiled ahead of their first call (the default). */
  warm?: boolean;
  /** The change the deployer just made to `routes`, served without reading them when it follows on (route-changes.ts). */
  change?: RouteChange;
}

/** Covers a sync that hands a cell over (it waits for the old workerd to finish its requests and exit). */
const SYNC_TIMEOUT_MS = 120_000;
const SYNC_PATH = "/sync";

/**
 * Lets the deployer tell the agent at once: `POST /sync` on a unix socket in the data dir (only the
 * mesh's user reaches it), with the change to the routes it just made as its body, runs a sync and
 * answers with what the node then serves.
 */
export async function serveAgentSocket(agent: NodeAgent, socketPath: string): Promise<{ close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== "POST" || req.url !== SYNC_PATH) {
      res.writeHead(404).end();
      return;
    }
    // A deployer that dies mid-request (its thread ended) leaves nobody to answer: nothing may throw then.
    const failed = (error: unknown) => {
      if (!res.headersSent) res.writeHead(503).end(error instanceof Error ? error.message : String(error));
    };
    res.on("error", () => {});
    // The deployer compiles what it routed itself, once Restate registered it (deployer/serve.ts).
    bodyOf(req)
      .then((body) =>
        agent.sync(undefined, { warm: false, ...(body ? { change: RouteChange.parse(JSON.parse(body)) } : {}) }),
      )
      .then((report) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(report)))
      .catch(failed);
  });
  // A socket file left by a process that was killed would make listen fail.
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, resolve);
  });
  return {
    // Ends a waiting deployer's connection too: the deployer retries its step.
    close: () => closeServer(server),
  };
}

async function bodyOf(req: IncomingMessage): Promise<string> {
  let body = "";
  for await (const chunk of req) body += chunk;
  return body;
}

/** Tells this node's agent to sync now, handing it `change`; resolves with what the node serves once it did. */
export async function tellAgent(socketPath: string, change?: RouteChange): Promise<NodeReport> {
  const dispatcher = new Agent({ connect: { socketPath } });
  try {
    const { statusCode, body } = await request(`http://localhost${SYNC_PATH}`, {
      method: "POST",
      dispatcher,
      ...(change ? { body: JSON.stringify(change), headers: { "content-type": "application/json" } } : {}),
      headersTimeout: SYNC_TIMEOUT_MS,
      bodyTimeout: SYNC_TIMEOUT_MS,
    });
    const text = await body.text();
    if (statusCode !== 200) throw new Error(`the node agent could not serve the routes: ${text}`);
    return NodeReport.parse(JSON.parse(text));
  } finally {
    await dispatcher.close();
  }
}
