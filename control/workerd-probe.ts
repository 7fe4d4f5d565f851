import { execa } from "execa";
import getPort from "get-port";
import { binaries, waitFor } from "./processes.ts";
import { answers } from "./workerd-reload.ts";

/** workerd refused a config: a build in it does not load. Never worth retrying. */
export class ConfigRejected extends Error {}

const PROBE_TIMEOUT_MS = 20_000;

/**
 * Starts a throwaway workerd on a spare port with the candidate config and waits until its router
 * answers. workerd compiles every worker at start and exits with the error (syntax error, throw at
 * top level, missing module) when one fails, so a config that passes here loads for real.
 */
export async function proveWorkerdConfig(configPath: string): Promise<void> {
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
