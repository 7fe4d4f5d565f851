import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type * as WranglerApi from "wrangler";
import { buildOutput, type Wrangler } from "./wrangler.ts";

type DevEnv = InstanceType<typeof WranglerApi.unstable_DevEnv>;
type Factories = NonNullable<ConstructorParameters<typeof WranglerApi.unstable_DevEnv>[0]>;
type RuntimeController = ReturnType<NonNullable<Factories["runtimeFactories"]>[number]>;
type ProxyController = ReturnType<NonNullable<Factories["proxyFactory"]>>;
type BundleComplete = Parameters<RuntimeController["onBundleComplete"]>[0];
type Bundle = BundleComplete["bundle"];

/** Builds the project as it is on disk now into `outdir`; throws with wrangler's lines when it cannot. */
export type BuildInto = (outdir: string) => Promise<void>;

/**
 * A wrangler kept loaded for a dev session: `wrangler deploy --dry-run` in a new Node costs about
 * 2 s per save, nearly all of it Node loading wrangler's 15 MB CLI, against about 0.2 s for the
 * bundling itself. This uses wrangler's own dev bundler (`unstable_DevEnv`, what `wrangler dev`
 * builds with, its dev middleware included) with no runtime of its own: its config and bundler
 * controllers run, and Gridiron serves the bundle. Undefined when the project's wrangler has no
 * such API (an old or a stand-in wrangler): the caller builds with the CLI then.
 */
export function warmBuilder(wrangler: Wrangler, config: string, env: string | undefined): BuildInto | undefined {
  const api = loadApi(wrangler.cli);
  if (!api) return undefined;
  return (outdir) => bundleOnce(api, { config, env, outdir });
}

/**
 * Wrangler's module API from its CLI file (wrangler-dist/cli.js is also the package's main), when
 * its DevEnv takes the runtime and proxy controllers it is given: one that made its own would
 * start a runtime and never hand the bundle over.
 */
function loadApi(cli: string): typeof WranglerApi | undefined {
  if (!cli.endsWith(join("wrangler-dist", "cli.js"))) return undefined;
  try {
    const api = createRequire(import.meta.url)(cli) as Partial<typeof WranglerApi>;
    if (typeof api.unstable_DevEnv !== "function") return undefined;
    const sink = bundleSink(() => {});
    const proxy = noProxy();
    const probe = new api.unstable_DevEnv({ runtimeFactories: [() => sink], proxyFactory: () => proxy });
    const takesOurs = probe.runtimes.length === 1 && probe.runtimes[0] === sink && probe.proxy === proxy;
    void probe.teardown().catch(() => {});
    return takesOurs ? (api as typeof WranglerApi) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One bundle, written to `outdir`, from a DevEnv made for it and torn down after (that removes
 * wrangler's temp dir): a failed start tears wrangler's DevEnv down by itself, so one per build
 * keeps a failure from leaving a broken one for the next save. Its cost is small next to the build
 * once wrangler is loaded.
 */
async function bundleOnce(
  api: typeof WranglerApi,
  { config, env, outdir }: { config: string; env: string | undefined; outdir: string },
): Promise<void> {
  let done: (bundle: Bundle) => void = () => {};
  let failed: (event: { cause: unknown }) => void = () => {};
  const promise = new Promise<Bundle>((resolve, reject) => {
    done = resolve;
    failed = (event) => reject(wranglerError(event.cause));
  });
  // A failure event after startWorker already threw is not a second, unhandled one.
  promise.catch(() => {});
  const devEnv: DevEnv = new api.unstable_DevEnv({
    runtimeFactories: [() => bundleSink(done)],
    proxyFactory: () => noProxy(),
  });
  devEnv.on("buildFailed", failed);
  devEnv.on("error", failed);
  try {
    await devEnv.startWorker({
      config,
      ...(env ? { env } : {}),
      dev: { watch: false, remote: false, inspector: false, server: { port: 0 }, logLevel: "none" },
    });
    await writeOutdir(await promise, outdir);
  } catch (error) {
    throw error instanceof WranglerBuildError ? error : wranglerError(error);
  } finally {
    await devEnv.teardown();
  }
}

/**
 * Where the bundle goes instead of a runtime. Wrangler's classes for it are not exported; its
 * DevEnv only calls these methods on a runtime controller, hence the cast.
 */
function bundleSink(done: (bundle: Bundle) => void): RuntimeController {
  const sink = {
    onBundleStart: () => {},
    onBundleComplete: (event: BundleComplete) => done(event.bundle),
    onPreviewTokenExpired: () => {},
    teardown: async () => {},
  };
  return sink as unknown as RuntimeController;
}

/** No proxy worker (wrangler's would start a workerd of its own); startWorker only rejects its `ready` on failure. */
function noProxy(): ProxyController {
  let reject: (error: unknown) => void = () => {};
  const promise = new Promise<never>((_, rejected) => {
    reject = rejected;
  });
  promise.catch(() => {});
  const none = {
    ready: { promise, resolve: () => {}, reject },
    onConfigUpdate: () => {},
    onBundleStart: () => {},
    onReloadStart: () => {},
    onReloadComplete: () => {},
    teardown: async () => {},
  };
  return none as unknown as ProxyController;
}

class WranglerBuildError extends Error {}

/** What wrangler or esbuild said, innermost cause first (startWorker wraps it), without colour codes. */
function wranglerError(error: unknown): WranglerBuildError {
  let cause = error;
  while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause;
  const text = cause instanceof Error ? cause.message : String(cause);
  return new WranglerBuildError(buildOutput(text));
}

/**
 * The bundle as `wrangler deploy --outdir` lays it out: the main module, each other module by its
 * name, and the source map beside the main module with its sources made absolute (they are
 * relative to wrangler's temp dir, which is gone once the DevEnv is torn down).
 */
async function writeOutdir(bundle: Bundle, outdir: string): Promise<void> {
  const main = basename(bundle.path);
  await writeFile(join(outdir, main), bundle.entrypointSource);
  for (const module of bundle.modules) {
    const file = join(outdir, module.name.replace(/^\.\//, ""));
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, module.content);
  }
  const map = `${bundle.path}.map`;
  const payload = await readFile(map, "utf8").catch(() => undefined);
  if (payload === undefined) return;
  const parsed = JSON.parse(payload) as { sources?: string[] };
  const sources = (parsed.sources ?? []).map((source) => (isAbsolute(source) ? source : resolve(dirname(map), source)));
  await writeFile(join(outdir, `${main}.map`), JSON.stringify({ ...parsed, sources }));
}
