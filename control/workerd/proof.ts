import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { binaries } from "../binaries.ts";
import type { Build } from "../bundle.ts";
import { BundleError } from "../errors.ts";
import type { ProvedManifest } from "../manifest.ts";
import { rssMb } from "../memory.ts";
import { waitForDiscovery } from "../registration.ts";
import { identityHeaders } from "../request-identity.ts";
import type { Settings } from "../settings.ts";
import { serviceName, writeRoutes, writeWorkerdConfig } from "./config.ts";
import { CONTROL_FD, listeningPort, workerdArgs, workerdFds } from "./process.ts";
import { warm } from "./router-client.ts";

/** How long a throwaway workerd may take to start; it runs only the router, no user code, yet. */
const START_TIMEOUT_MS = 20_000;
const POLL_MS = 100;

/**
 * The longest a build's top-level code may run while it loads. Under the watchdog's hang limit, so
 * a build that passes here cannot stall the live workerd long enough to be killed for it.
 */
export function loadTimeoutMs(settings: Settings): number {
  return Math.min(10_000, settings.watchdog.hangMs / 2);
}

/**
 * Proves a stored build loads before any live workerd serves it, and returns the manifest it
 * serves: a throwaway workerd with the live router and a routes file listing only this build
 * compiles it through the Worker Loader, exactly as the live workerd will. Anything the build's
 * content causes is a BundleError: a module that does not compile, top-level code that throws,
 * does not finish within loadTimeoutMs or grows workerd past GRIDIRON_WORKERD_MAX_MB, or a build
 * that is not a Restate endpoint. Nothing of it is left behind.
 */
export async function proveBuild(settings: Settings, build: Build): Promise<ProvedManifest> {
  const dir = await mkdtemp(join(settings.dataDir, "proof-"));
  try {
    await writeRoutes(dir, [build]);
    const config = join(dir, "config.bin");
    await writeWorkerdConfig(settings, config, { routesDir: dir, address: "127.0.0.1:0", discovery: "build" });
    return await proveWith(settings, config, build);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function proveWith(settings: Settings, config: string, build: Build): Promise<ProvedManifest> {
  const options = { sharedSocket: false, control: true };
  const workerd = execa(binaries.workerd(), workerdArgs(config, options), {
    stdio: ["ignore", "pipe", "pipe", ...workerdFds(options)],
    all: true,
    reject: false,
  });
  let exited = false;
  void workerd.then(() => {
    exited = true;
  });
  try {
    const port = await listeningPort(workerd.stdio[CONTROL_FD] as Readable, "probe", START_TIMEOUT_MS);
    const url = `http://127.0.0.1:${port}`;
    // bounded() ends a load that takes too long, well before the request itself times out.
    await bounded(settings, workerd.pid, () => exited, warm(settings, url, 2 * loadTimeoutMs(settings)));
    const headers = await identityHeaders(settings, "/discover");
    return await waitForDiscovery(`${url}/${serviceName(build)}`, headers, loadTimeoutMs(settings));
  } finally {
    workerd.kill("SIGKILL");
    await workerd;
  }
}

/**
 * Waits for `loading` while watching the workerd doing it: its memory, whether it still runs, and
 * the time top-level code has had.
 */
async function bounded(
  settings: Settings,
  pid: number | undefined,
  hasExited: () => boolean,
  loading: Promise<void>,
): Promise<void> {
  const timeoutMs = loadTimeoutMs(settings);
  const deadline = Date.now() + timeoutMs;
  let done = false;
  const finished = loading.finally(() => {
    done = true;
  });
  // Rejections are read below, once the loop sees `done`.
  finished.catch(() => {});
  while (!done) {
    if (hasExited()) throw new BundleError("workerd crashed while loading the build");
    const mb = pid === undefined ? 0 : await rssMb(pid);
    if (mb > settings.watchdog.maxMb) {
      throw new BundleError(
        `the build used ${Math.round(mb)} MB while loading, over GRIDIRON_WORKERD_MAX_MB=${settings.watchdog.maxMb}`,
      );
    }
    if (Date.now() > deadline) {
      throw new BundleError(`the build's top-level code did not finish within ${timeoutMs / 1000} s`);
    }
    await Promise.race([finished.catch(() => {}), sleep(POLL_MS)]);
  }
  await finished;
}
