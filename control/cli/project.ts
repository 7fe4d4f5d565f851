import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { z } from "zod";
import { wranglerCli } from "../binaries.ts";

/** What `gridiron deploy PATH` activates: a wrangler outdir, and what the project says of itself. */
export interface Source {
  outdir: string;
  /** The worker's name in the wrangler config; undefined for an already-built outdir. */
  name: string | undefined;
  /** The version in package.json beside the wrangler config, if there is one. */
  version: string | undefined;
  /** Removes what the build wrote; the outdir is only needed until it is copied. */
  cleanup(): Promise<void>;
}

const WRANGLER_CONFIGS = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];
const PackageVersion = z.object({ version: z.string() });

/**
 * A wrangler project is built with `wrangler deploy --dry-run` into a temp dir (no account, nothing
 * sent anywhere); an already-built outdir (it holds a .js module) is used as it is.
 */
export async function prepareSource(path: string, log: (line: string) => void): Promise<Source> {
  const dir = resolve(path);
  const entries = await readdir(dir).catch(() => {
    throw new Error(`${dir} is not a directory`);
  });
  const config = WRANGLER_CONFIGS.find((name) => entries.includes(name));
  if (config) return build(dir, join(dir, config), log);
  if (entries.some((name) => /\.m?js$/.test(name))) {
    return { outdir: dir, name: undefined, version: undefined, cleanup: async () => {} };
  }
  throw new Error(
    `${dir} is neither a wrangler project (no ${WRANGLER_CONFIGS.join(", ")}) nor a built outdir (no .js module)`,
  );
}

async function build(dir: string, config: string, log: (line: string) => void): Promise<Source> {
  const outdir = await mkdtemp(join(tmpdir(), "gridiron-build-"));
  const cleanup = () => rm(outdir, { recursive: true, force: true });
  log(`building ${dir} with wrangler`);
  const built = await execa(
    process.execPath,
    [wranglerCli(), "deploy", "--dry-run", "--outdir", outdir, "--config", config],
    { cwd: dir, env: { WRANGLER_SEND_METRICS: "false", CI: "1" }, all: true, reject: false },
  );
  if (built.exitCode !== 0) {
    await cleanup();
    throw new Error(`wrangler could not build ${dir}:\n${built.all.trim()}`);
  }
  return { outdir, name: await workerName(config), version: await packageVersion(dir), cleanup };
}

/** The `name` of the wrangler config, read by wrangler's own reader (TOML, JSON and JSONC). */
async function workerName(config: string): Promise<string | undefined> {
  const { unstable_readConfig } = await import("wrangler");
  return unstable_readConfig({ config }).name;
}

async function packageVersion(dir: string): Promise<string | undefined> {
  const file = join(dir, "package.json");
  if (!(await stat(file).catch(() => undefined))) return undefined;
  return PackageVersion.safeParse(JSON.parse(await readFile(file, "utf8"))).data?.version;
}
