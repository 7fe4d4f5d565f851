import { rm } from "node:fs/promises";
import { execa } from "execa";
import getPort from "get-port";
import { type Build, buildDir } from "./bundle-store.ts";
import { binaries, waitFor } from "./processes.ts";
import type { Settings } from "./settings.ts";
import { loadBuild, readRouter, staticConfig, writeWorkerdConfig } from "./workerd-config.ts";
import { answers } from "./workerd-reload.ts";

/** workerd refused a config: a build in it does not load. Never worth retrying. */
export class ConfigRejected extends Error {}

const PROBE_TIMEOUT_MS = 20_000;

/**
 * Proves a stored build loads before any live workerd serves it: a throwaway workerd on a spare
 * port compiles it alone. workerd compiles every worker at start and exits with the error (syntax
 * error, throw at top level, missing module) when one fails, so a build that passes here loads
 * for real, whether compiled at start or through the Worker Loader.
 */
export async function proveBuild(settings: Settings, build: Build): Promise<void> {
  const configPath = `${settings.workerdConfigPath}.candidate`;
  const loaded = await loadBuild(buildDir(settings.bundlesDir, build), build);
  await writeWorkerdConfig(configPath, staticConfig([loaded], "127.0.0.1:0", await readRouter(settings, "restart")));
  try {
    await proveWorkerdConfig(configPath);
  } finally {
    await rm(configPath, { force: true });
  }
}

async function proveWorkerdConfig(configPath: string): Promise<void> {
  const port = await getPort({ host: "127.0.0.1" });
  const probe = execa(
    binaries.workerd(),
    ["serve", "--binary", configPath, "--socket-addr", `http=127.0.0.1:${port}`],
    {
      all: true,
      reject: false,
      timeout: PROBE_TIMEOUT_MS,
    },
  );
  try {
    const exited = probe.then((result) => {
      throw new ConfigRejected(`workerd cannot load the new build: ${String(result.all).trim()}`);
    });
    await Promise.race([
      exited,
      waitFor("the candidate workerd config", () => answers(`http://127.0.0.1:${port}/`), PROBE_TIMEOUT_MS),
    ]);
  } finally {
    probe.kill("SIGKILL");
    await probe;
  }
}
