import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { z } from "zod";
import type { BuildSettings } from "../domain/bundle.ts";
import { wranglerCli } from "../node/binaries.ts";

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
  /** Removes what the build wrote; the outdir is only needed until it is copied. */
  cleanup(): Promise<void>;
}

const WRANGLER_CONFIGS = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];
const PackageVersion = z.object({ version: z.string() });

/**
 * A wrangler project is built with `wrangler deploy --dry-run` into a temp dir (no account, nothing
 * sent anywhere); an already-built outdir (it holds a .js module) is used as it is.
 */
export async function prepareSource(
  path: string,
  env: string | undefined,
  log: (line: string) => void,
): Promise<Source> {
  const dir = resolve(path);
  const entries = await readdir(dir).catch(() => {
    throw new Error(`${dir} is not a directory`);
  });
  const config = WRANGLER_CONFIGS.find((name) => entries.includes(name));
  if (config) return build(dir, join(dir, config), env, log);
  if (env) throw new Error(`${dir} is a built outdir, not a wrangler project: --env needs a wrangler config`);
  if (entries.some((name) => /\.m?js$/.test(name))) {
    return {
      outdir: dir,
      name: undefined,
      version: undefined,
      settings: {},
      project: undefined,
      requiredSecrets: [],
      cleanup: async () => {},
    };
  }
  throw new Error(
    `${dir} is neither a wrangler project (no ${WRANGLER_CONFIGS.join(", ")}) nor a built outdir (no .js module)`,
  );
}

async function build(
  dir: string,
  config: string,
  env: string | undefined,
  log: (line: string) => void,
): Promise<Source> {
  const outdir = await mkdtemp(join(tmpdir(), "gridiron-build-"));
  const cleanup = () => rm(outdir, { recursive: true, force: true });
  log(`building ${dir} with wrangler`);
  const built = await execa(
    process.execPath,
    [wranglerCli(), "deploy", "--dry-run", "--outdir", outdir, "--config", config, ...(env ? ["--env", env] : [])],
    { cwd: dir, env: { WRANGLER_SEND_METRICS: "false", CI: "1" }, all: true, reject: false },
  );
  if (built.exitCode !== 0) {
    await cleanup();
    throw new Error(`wrangler could not build ${dir}:\n${built.all.trim()}`);
  }
  const { name, settings, requiredSecrets } = await readWranglerConfig(config, env);
  const version = await packageVersion(dir);
  return { outdir, name, version, settings, requiredSecrets, project: await provenance(dir), cleanup };
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
