import { access, realpath } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { execa } from "execa";
import { wranglerCli } from "../node/binaries.ts";

/** Which wrangler builds a project: its own when it has one installed, else Gridiron's. */
export interface Wrangler {
  /** The JavaScript file run with this Node. */
  cli: string;
  /** True for the project's own wrangler (node_modules/.bin/wrangler in the project). */
  own: boolean;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The project's own wrangler, the one its `npx wrangler` runs, is preferred: its version is the one
 * the project was written for. Its CLI's own file (wrangler-dist/cli.js beside bin/) is run when it
 * has one, skipping the launcher that only starts another Node for it: a second saved per build.
 */
export async function wranglerOf(projectDir: string): Promise<Wrangler> {
  const bin = join(projectDir, "node_modules", ".bin", "wrangler");
  if (!(await exists(bin))) return { cli: await direct(wranglerCli()), own: false };
  return { cli: await direct(await realpath(bin)), own: true };
}

async function direct(launcher: string): Promise<string> {
  const cli = join(dirname(launcher), "..", "wrangler-dist", "cli.js");
  return (await exists(cli)) ? cli : launcher;
}

/**
 * `wrangler deploy --dry-run` into `outdir`, with a source map beside the bundle (the deployer
 * ignores .map files; the CLI maps positions in errors back to the project's sources with it).
 * Nothing is sent anywhere. Node's compile cache keeps wrangler's own start short on later builds.
 */
export async function wranglerBuild(
  wrangler: Wrangler,
  options: { dir: string; config: string; outdir: string; env: string | undefined; signal?: AbortSignal },
) {
  const { dir, config, outdir, env, signal } = options;
  const args = ["deploy", "--dry-run", "--upload-source-maps", "--outdir", outdir, "--config", config];
  return execa(process.execPath, ["--no-warnings", wrangler.cli, ...args, ...(env ? ["--env", env] : [])], {
    cwd: dir,
    env: {
      WRANGLER_SEND_METRICS: "false",
      CI: "1",
      FORCE_COLOR: "0",
      NODE_COMPILE_CACHE: join(tmpdir(), "gridiron-node-compile-cache"),
    },
    all: true,
    reject: false,
    ...(signal ? { cancelSignal: signal } : {}),
  });
}

/**
 * What wrangler said of a failed build, its lines kept as wrangler wrote them but without colour
 * codes: they are noise in a log, in --json and on a terminal once made inert.
 */
export function buildOutput(all: string): string {
  return stripVTControlCharacters(all)
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n")
    .trim();
}
