import { mkdtemp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { buildPath } from "../../contracts.ts";
import { identityHeaders } from "../../credentials/request-identity.ts";
import type { Build } from "../../domain/bundle.ts";
import { BundleError } from "../../domain/errors.ts";
import type { ProvedManifest } from "../../domain/manifest.ts";
import { rssMb } from "../../memory.ts";
import { waitForDiscovery } from "../../objects/registration.ts";
import type { Settings } from "../../settings.ts";
import { waitFor, withTimeout } from "../../wait.ts";
import { binaries } from "../binaries.ts";
import { execaFds } from "../child-fds.ts";
import { writeRoutes, writeWorkerdConfig } from "./config.ts";
import {
  CONFIG_EXTENSION,
  CONTROL_FD,
  configServed,
  hasEnded,
  killGroup,
  listeningPort,
  runningProcesses,
  workerdArgs,
  workerdFds,
} from "./process.ts";
import { warm } from "./router-client.ts";

/** How long a throwaway workerd may take to start; it runs only the router, no user code, yet. */
const START_TIMEOUT_MS = 20_000;
const POLL_MS = 100;

/**
 * The longest a build's top-level code may run while it loads. Under the watchdog's hang limit, so
 * a build that passes here cannot stall the live workerd long enough to be killed for it.
 */
export function loadTimeoutMs(settings: Pick<Settings, "watchdog">): number {
  return Math.min(10_000, settings.watchdog.hangMs / 2);
}

/** Every proof's dir in the data dir starts so; its workerd serves a config inside it. */
const PROOF_PREFIX = "proof-";
/** How long killed leftover proofs may take to end: SIGKILL cannot be ignored, so moments. */
const SWEEP_TIMEOUT_MS = 5_000;

/** The longest a whole proof may take, a backstop above the sum of its steps' own deadlines. */
function proofTimeoutMs(settings: Pick<Settings, "watchdog">): number {
  return START_TIMEOUT_MS + 3 * loadTimeoutMs(settings);
}

/**
 * Proves a stored build loads before any live workerd serves it, and returns the manifest it
 * serves: a throwaway workerd with the live router and a routes file listing only this build
 * compiles it through the Worker Loader, exactly as the live workerd will. Anything the build's
 * content causes is a BundleError: a module that does not compile, top-level code that throws,
 * does not finish within loadTimeoutMs or grows workerd past GRIDIRON_WORKERD_MAX_MB, a build that
 * is not a Restate endpoint or does not finish answering discovery within loadTimeoutMs, or a
 * proof that outlasts proofTimeoutMs. Whatever the outcome, workerd's whole process group is
 * killed and the proof's dir removed before this returns.
 */
export async function proveBuild(settings: Settings, build: Build): Promise<ProvedManifest> {
  const proof = await startProof(settings, build);
  const progress = { step: "starting workerd" };
  try {
    const proving = proveWith(settings, proof, build, progress);
    // After a timeout `proving` runs on until workerd is killed below; how it ends then is moot.
    proving.catch(() => {});
    const timeoutMs = proofTimeoutMs(settings);
    const overdue = () => new BundleError(`the proof did not finish within ${timeoutMs / 1000} s (${progress.step})`);
    return await withTimeout(proving, timeoutMs, overdue);
  } finally {
    await proof.stop();
  }
}

export interface Proof {
  dir: string;
  workerd: ProofWorkerd;
  hasExited(): boolean;
  /** Kills workerd's whole process group, waits for it to end, and removes the dir. */
  stop(): Promise<void>;
}

type ProofWorkerd = ReturnType<typeof spawnWorkerd>;

/**
 * A proof's dir (in the data dir, so sweepProofs finds it after a crash) and its workerd, which
 * serves a config inside that dir. workerd is started `detached`, in a process group of its own,
 * so killing that group ends it and anything it started.
 */
export async function startProof(settings: Settings, build: Build): Promise<Proof> {
  const dir = await mkdtemp(join(settings.dataDir, PROOF_PREFIX));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await writeRoutes(dir, [build]);
    const config = join(dir, `config${CONFIG_EXTENSION}`);
    await writeWorkerdConfig(settings, config, { routesDir: dir, address: "127.0.0.1:0", discovery: "build" });
    const workerd = spawnWorkerd(config);
    let exited = false;
    void workerd.then(() => {
      exited = true;
    });
    const stop = async () => {
      // Not once it has exited: its PID, and so its group's, may be another's by now.
      if (workerd.pid !== undefined && !exited) killGroup({ pid: workerd.pid, pgid: workerd.pid });
      await workerd;
      await remove();
      running.delete(proof);
    };
    let stopping: Promise<void> | undefined;
    // Once: proveBuild and stopProofs may both ask.
    const proof: Proof = { dir, workerd, hasExited: () => exited, stop: () => (stopping ??= stop()) };
    running.add(proof);
    return proof;
  } catch (error) {
    await remove();
    throw error;
  }
}

/** The proofs this process runs, for stopProofs. */
const running = new Set<Proof>();

/**
 * Stops every proof this process runs, for a deployer about to exit (an exit skips their own
 * cleanup, and their workerd, in a group of its own, would outlive it); how many there were.
 */
export async function stopProofs(): Promise<number> {
  let stopped = 0;
  // Until none is left: a proof may start while others stop.
  while (running.size > 0) {
    const proofs = [...running];
    await Promise.all(proofs.map((proof) => proof.stop()));
    stopped += proofs.length;
  }
  return stopped;
}

function spawnWorkerd(config: string) {
  const options = { control: true };
  return execa(binaries.workerd(), workerdArgs(config, options), {
    stdio: ["ignore", "pipe", "pipe", ...execaFds(workerdFds(options))],
    all: true,
    reject: false,
    detached: true,
  });
}

/**
 * Ends what proofs left behind when their deployer died mid-proof: kills every workerd serving a
 * config inside a proof dir of `dataDir` (with its process group), waits until they have ended,
 * then removes those dirs. Run
 * before the deployer serves, so no proof of its own is running yet. Found by command line rather
 * than by a PID written down: a PID outlives its process and may name another one later, while a
 * command line naming this data dir's proof dir can only be a proof's, and it is there from the
 * moment workerd starts.
 */
export async function sweepProofs(dataDir: string): Promise<{ killed: number; removed: number }> {
  const prefix = join(dataDir, PROOF_PREFIX);
  const orphans = (await runningProcesses()).filter(({ argv }) => configServed(argv)?.startsWith(prefix));
  for (const orphan of orphans) killGroup(orphan);
  const ended = async () => (await Promise.all(orphans.map(({ pid }) => hasEnded(pid)))).every(Boolean);
  await waitFor("the leftover proofs' end", ended, SWEEP_TIMEOUT_MS);
  const dirs = (await readdir(dataDir)).filter((name) => name.startsWith(PROOF_PREFIX));
  await Promise.all(dirs.map((name) => rm(join(dataDir, name), { recursive: true, force: true })));
  return { killed: orphans.length, removed: dirs.length };
}

async function proveWith(
  settings: Settings,
  { workerd, hasExited }: Proof,
  build: Build,
  progress: { step: string },
): Promise<ProvedManifest> {
  const port = await listeningPort(workerd.stdio[CONTROL_FD] as Readable, "probe", START_TIMEOUT_MS);
  const url = `http://127.0.0.1:${port}`;
  progress.step = "loading the build";
  // bounded() ends a load that takes too long, well before the request itself times out.
  await bounded(settings, workerd.pid, hasExited, warm(settings, url, 2 * loadTimeoutMs(settings)));
  progress.step = "waiting for the build's discovery answer";
  const headers = await identityHeaders(settings, "/discover");
  // On this workerd the build is alone and already loaded: an answer that does not come in time is its own.
  return waitForDiscovery(`${url}/${buildPath(build)}`, headers, { timeoutMs: loadTimeoutMs(settings), status: 400 });
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
