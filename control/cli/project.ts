import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { z } from "zod";
import type { BuildSettings } from "../domain/bundle.ts";
import type { BuildInto } from "./dev-bundler.ts";
import { toSourcePositions } from "./positions.ts";
import { buildOutput, type Wrangler, wranglerBuild, wranglerOf } from "./wrangler.ts";

/** What `gridiron deploy PATH` activates: a wrangler outdir, and what the project says of itself. */
export interface Source {
  outdir: string;
  /** The worker's name in the wrangler config; undefined for an already-built outdir. */
  name: string | undefined;
  /** The version in package.json beside the wrangler config, if there is one. */
  version: string | undefined;
  /** What the wrangler config says the build runs with; empty for an already-built outdir. */
  settings: BuildSettings;
  /** Where it was built from: the project dir, and its git commit when it has one. */
  project: string | undefined;
  /** The secrets the wrangler config's `secrets.required` names: activate refuses while one is not set. */
  requiredSecrets: string[];
  /** Positions in the built modules within `text` told in the project's sources, where a source map says. */
  positions(text: string): Promise<string>;
  /** Removes what the build wrote; the outdir is only needed until it is copied. */
  cleanup(): Promise<void>;
}

const WRANGLER_CONFIGS = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];
const PackageVersion = z.object({ version: z.string() });

/**
 * A wrangler project is built with `wrangler deploy --dry-run` into a temp dir (no account, nothing
 * sent anywhere), or by `builder` when given (a dev session's warm wrangler); an already-built
 * outdir (it holds a .js module) is used as it is.
 */
export async function prepareSource(
  path: string,
  env: string | undefined,
  log: (line: string) => void,
  signal?: AbortSignal,
  builder?: BuildInto,
): Promise<Source> {
  const dir = resolve(path);
  const entries = await readdir(dir).catch(() => {
    throw new Error(`${dir} is not a directory`);
  });
  const config = configAmong(entries, dir);
  if (config) return build(dir, config, env, log, { signal, builder });
  if (env) throw new Error(`${dir} is a built outdir, not a wrangler project: --env needs a wrangler config`);
  if (entries.some((name) => /\.m?js$/.test(name))) {
    return {
      outdir: dir,
      name: undefined,
      version: undefined,
      settings: {},
      project: undefined,
      requiredSecrets: [],
      positions: (text) => toSourcePositions(text, dir, dir),
      cleanup: async () => {},
    };
  }
  throw new Error(
    `${dir} is neither a wrangler project (no ${WRANGLER_CONFIGS.join(", ")}) nor a built outdir (no .js module)`,
  );
}

/** The wrangler config in a project dir, if it has one. */
export async function wranglerConfigIn(dir: string): Promise<string | undefined> {
  return configAmong(await readdir(dir).catch(() => [] as string[]), dir);
}

function configAmong(entries: string[], dir: string): string | undefined {
  const config = WRANGLER_CONFIGS.find((name) => entries.includes(name));
  return config ? join(dir, config) : undefined;
}

async function build(
  dir: string,
  config: string,
  env: string | undefined,
  log: (line: string) => void,
  how: { signal: AbortSignal | undefined; builder: BuildInto | undefined },
): Promise<Source> {
  const outdir = await mkdtemp(join(tmpdir(), "gridiron-build-"));
  const cleanup = () => rm(outdir, { recursive: true, force: true });
  const builder = how.builder ?? cliBuilder(await wranglerOf(dir), { dir, config, env, log, signal: how.signal });
  // What the project says of itself is read while wrangler builds: a dev loop waits for both.
  const described = Promise.all([readWranglerConfig(config, env), packageVersion(dir), provenance(dir)]);
  // Awaited once the build is done; until then a failure of it is not unhandled.
  described.catch(() => {});
  try {
    await builder(outdir);
  } catch (error) {
    await cleanup();
    throw new Error(`wrangler could not build ${dir}:\n${error instanceof Error ? error.message : String(error)}`);
  }
  const [{ name, settings, requiredSecrets }, version, project] = await described.catch(async (error: unknown) => {
    await cleanup();
    throw error;
  });
  const positions = (text: string) => toSourcePositions(text, outdir, dir);
  return { outdir, name, version, settings, requiredSecrets, project, positions, cleanup };
}

/** `wrangler deploy --dry-run` in a Node of its own, as `gridiron deploy` builds. */
function cliBuilder(
  wrangler: Wrangler,
  options: {
    dir: string;
    config: string;
    env: string | undefined;
    log: (line: string) => void;
    signal: AbortSignal | undefined;
  },
): BuildInto {
  const { dir, config, env, log, signal } = options;
  log(`building ${dir} with ${wrangler.own ? "the project's own wrangler" : "Gridiron's wrangler"}`);
  return async (outdir) => {
    const built = await wranglerBuild(wrangler, { dir, config, outdir, env, ...(signal ? { signal } : {}) });
    if (built.exitCode !== 0 || built.isCanceled) throw new Error(buildOutput(built.all));
  };
}

/** The project dir, with `@` and its git commit (`+dirty` with uncommitted changes) where it is in git. */
async function provenance(dir: string): Promise<string> {
  const git = (...args: string[]) => execa("git", args, { cwd: dir, reject: false });
  const commit = await git("rev-parse", "HEAD");
  if (commit.exitCode !== 0) return dir;
  const dirty = (await git("status", "--porcelain", "--", ".")).stdout.trim() !== "";
  return `${dir}@${commit.stdout.trim()}${dirty ? "+dirty" : ""}`;
}

/**
 * What the wrangler config says of the worker, read by wrangler's own reader (TOML, JSON and
 * JSONC) with wrangler's rules for `[env.NAME]`: its name, compatibility date and flags, vars, and
 * the secrets it requires.
 */
async function readWranglerConfig(config: string, env: string | undefined) {
  const { unstable_readConfig } = await import("wrangler");
  const read = unstable_readConfig({ config, ...(env ? { env } : {}) }, { hideWarnings: true });
  const settings: BuildSettings = {
    ...(read.compatibility_date ? { compatibilityDate: read.compatibility_date } : {}),
    ...(read.compatibility_flags.length ? { compatibilityFlags: read.compatibility_flags } : {}),
    ...(Object.keys(read.vars).length ? { vars: read.vars as BuildSettings["vars"] } : {}),
  };
  return { name: read.name, settings, requiredSecrets: read.secrets?.required ?? [] };
}

async function packageVersion(dir: string): Promise<string | undefined> {
  const file = join(dir, "package.json");
  if (!(await stat(file).catch(() => undefined))) return undefined;
  return PackageVersion.safeParse(JSON.parse(await readFile(file, "utf8"))).data?.version;
}
