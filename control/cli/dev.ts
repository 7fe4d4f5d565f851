import { relative, resolve } from "node:path";
import * as clients from "@restatedev/restate-sdk-clients";
import { type FSWatcher, watch as watchFiles } from "chokidar";
import type { Command } from "commander";
import type { ActivateResult } from "../objects/deployer/api.ts";
import { activateRequest, type DeployOptions, inSourceTerms } from "./activate-request.ts";
import { type StopTail, tailBundleLogs } from "./bundle-logs.ts";
import { type Connection, deployer, requireToken } from "./connection.ts";
import { type BuildInto, warmBuilder } from "./dev-bundler.ts";
import { describe } from "./failure.ts";
import { inertLines } from "./inert.ts";
import { prepareSource, wranglerConfigIn } from "./project.ts";
import type { Helpers } from "./secret.ts";
import { wranglerOf } from "./wrangler.ts";

/** Saves this close together are one change: an editor's save is often several writes. */
const SETTLE_MS = 40;
/** How often a replaced dev build is offered to prune until it is drained. */
const PRUNE_RETRY_MS = 1_000;
const DEV_MESSAGE = "gridiron dev";

/**
 * `gridiron dev [PATH]`: builds and activates the project, then again on every save, saying how
 * long from the save to serving. Each dev build replaces the last, and the replaced one is pruned
 * as soon as nothing runs on it, so a session leaves one build, not one per save. Ctrl-C stops
 * watching and leaves the last build serving.
 */
export function devCommand(program: Command, { connect, json }: Helpers): void {
  program
    .command("dev")
    .description("watch a wrangler project: rebuild and activate on every save; Ctrl-C leaves the last build serving")
    .argument("[path]", "a wrangler project dir", ".")
    .option("--name <name>", "bundle name (default: the wrangler config's name)")
    .option("--version <version>", "version (default: package.json's version, else 0.0.0)")
    .option("--env <name>", "use the wrangler config's [env.NAME], as wrangler does")
    .action(async (path: string, options: DeployOptions) => {
      const connection = await connect();
      requireToken(connection);
      // One JSON object a line with --json: a stream of events, read as they come.
      const print: Print = (event, human) =>
        process.stdout.write(json() ? `${JSON.stringify(event)}\n` : inertLines(human()));
      const session = new DevSession(connection, resolve(path), { ...options, message: DEV_MESSAGE }, print);
      await session.run();
    });
}

type Print = (event: Record<string, unknown>, human: () => string) => void;

class DevSession {
  private readonly abort = new AbortController();
  private watcher: FSWatcher | undefined;
  private stopTail: StopTail | undefined;
  /** The build being made and activated now, if any. */
  private cycle: Promise<void> | undefined;
  /** When the first save not yet built was seen; a save during a cycle waits for the next. */
  private savedAt: number | undefined;
  private settle: NodeJS.Timeout | undefined;
  /** The last dev build activated, and earlier ones still to prune. */
  private current: ActivateResult | undefined;
  private readonly replaced = new Set<string>();
  private pruneTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** The session's wrangler, loaded once; undefined: each save runs `wrangler deploy --dry-run`. */
  private builder: BuildInto | undefined;

  private readonly connection: Connection;
  private readonly dir: string;
  private readonly options: DeployOptions;
  private readonly print: Print;

  constructor(connection: Connection, dir: string, options: DeployOptions, print: Print) {
    this.connection = connection;
    this.dir = dir;
    this.options = options;
    this.print = print;
  }

  async run(): Promise<void> {
    // `on`, not `once`: wrangler, loaded in this process, re-raises a signal when no other
    // listener is left for it (signal-exit), which would end the process before stop() is done.
    const stop = () => void this.stop();
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    const ignored = (path: string) => ignoredPath(relative(this.dir, path));
    this.watcher = watchFiles(this.dir, { ignored, ignoreInitial: true });
    this.watcher.on("all", () => this.saved(Date.now()));
    await new Promise<void>((ready) => this.watcher?.once("ready", ready));
    this.note(`watching ${this.dir}; Ctrl-C stops watching and leaves the last build serving`);
    await this.loadWrangler();
    this.start(Date.now());
  }

  /** Loads the project's wrangler once for the session, when it can build warm; says which builds. */
  private async loadWrangler(): Promise<void> {
    const config = await wranglerConfigIn(this.dir);
    if (!config) return;
    const wrangler = await wranglerOf(this.dir);
    this.builder = warmBuilder(wrangler, config, this.options.env);
    const which = wrangler.own ? "the project's own wrangler" : "Gridiron's wrangler";
    this.note(
      this.builder
        ? `building with ${which}, kept loaded for the session`
        : `building with ${which} in a new Node per save: it has no dev bundler API (unstable_DevEnv)`,
    );
  }

  private saved(at: number): void {
    this.savedAt ??= at;
    clearTimeout(this.settle);
    this.settle = setTimeout(() => {
      if (!this.cycle && this.savedAt !== undefined) this.start(this.savedAt);
    }, SETTLE_MS);
  }

  private start(savedAt: number): void {
    this.savedAt = undefined;
    this.cycle = this.buildAndActivate(savedAt).finally(() => {
      this.cycle = undefined;
      // Saves made while this build ran are built now.
      if (this.savedAt !== undefined && !this.stopping) this.start(this.savedAt);
    });
  }

  /** One build of the project, activated; a failure is shown and the next save tries again. */
  private async buildAndActivate(savedAt: number): Promise<void> {
    let source: Awaited<ReturnType<typeof prepareSource>>;
    try {
      source = await prepareSource(this.dir, this.options.env, () => {}, this.abort.signal, this.builder);
    } catch (error) {
      if (!this.stopping) this.failed(error);
      return;
    }
    const builtAt = Date.now();
    try {
      const name = this.options.name ?? source.name;
      if (!name) throw new Error(`${this.dir} has no wrangler config naming the worker: pass --name`);
      const request = activateRequest(source, this.options);
      const result = await Promise.resolve(deployer(this.connection, name).activate(request)).catch(
        async (error: unknown) => {
          throw await inSourceTerms(error, source);
        },
      );
      const now = Date.now();
      this.serving(result, { total: now - savedAt, build: builtAt - savedAt, activate: now - builtAt });
    } catch (error) {
      this.failed(error);
    } finally {
      await source.cleanup();
    }
  }

  /** Shows the new build serving and how long it took, then prunes what it replaced. */
  private serving(result: ActivateResult, ms: { total: number; build: number; activate: number }): void {
    const previous = this.current;
    this.current = result;
    this.replaced.delete(result.buildId);
    if (previous && previous.buildId !== result.buildId) this.replaced.add(previous.buildId);
    const s = (ms: number) => Number((ms / 1000).toFixed(2));
    const [seconds, build, activate] = [s(ms.total), s(ms.build), s(ms.activate)];
    this.print(
      { event: "serving", name: result.name, buildId: result.buildId, seconds, build, activate },
      () =>
        `${result.name} ${result.buildId} serving ${seconds.toFixed(2)} s after the save (build ${build.toFixed(2)} s, activation ${activate.toFixed(2)} s)\n`,
    );
    if (!previous) void this.tail(result.name);
    void this.prune();
  }

  private failed(error: unknown): void {
    this.print({ event: "failed", error: describe(error) }, () => `${describe(error)}\nwaiting for the next save\n`);
  }

  private async tail(name: string): Promise<void> {
    this.stopTail = await tailBundleLogs(this.connection, name, (line) => this.note(line));
  }

  /** Prunes each replaced dev build once nothing runs on it; one still busy is offered again later. */
  private async prune(): Promise<void> {
    const name = this.current?.name;
    if (!name) return;
    clearTimeout(this.pruneTimer);
    for (const buildId of [...this.replaced]) {
      try {
        await deployer(this.connection, name).prune({ buildId });
        this.replaced.delete(buildId);
      } catch (error) {
        // Gone already (pruned by its drain checks, or by hand): nothing left to do.
        if (error instanceof clients.HttpCallError && error.status === 404) this.replaced.delete(buildId);
      }
    }
    if (this.replaced.size && !this.stopping) this.pruneTimer = setTimeout(() => void this.prune(), PRUNE_RETRY_MS);
  }

  /** Ctrl-C: no new builds, a running wrangler ended, an activation under way let finish. */
  private async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.settle);
    clearTimeout(this.pruneTimer);
    this.abort.abort();
    await this.watcher?.close();
    await this.cycle;
    this.stopTail?.();
    const last = this.current;
    this.note(
      last ? `stopped watching; ${last.name} ${last.buildId} keeps serving` : "stopped watching; nothing was activated",
    );
    process.exit(0);
  }

  private note(line: string): void {
    this.print({ event: "note", line }, () => `${line}\n`);
  }
}

/** Not a save, by its path in the project: dependencies, dot dirs (.git, .wrangler's own temp files), build output. */
function ignoredPath(path: string): boolean {
  return /(^|\/)(node_modules|\.[^/]+|dist)(\/|$)/.test(path);
}
