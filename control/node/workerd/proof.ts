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
import { type ConfigSettings, writeRoutes, writeWorkerdConfig } from "./config.ts";
import {
  CONFIG_EXTENSION,
  CONTROL_FD,
  configServed,
  hasEnded,
  killGroup,
  listeningPort,
  runningProcesses,
  workerdArgs,
  workerdEnv,
  workerdFds,
} from "./process.ts";
import { refreshRoutes, warm } from "./router-client.ts";

/** What a proof reads of the settings: its workerd's config, where it runs, and its time limits. */
type ProofSettings = ConfigSettings & Pick<Settings, "dataDir" | "watchdog" | "logs">;

/** How long a proof workerd may take to start listening; it runs only the router, no user code, yet. */
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

/** The longest a whole proof may take once its workerd listens, a backstop above the sum of its steps' own deadlines. */
function proofTimeoutMs(settings: Pick<Settings, "watchdog">): number {
  return 3 * loadTimeoutMs(settings);
}

/**
 * How long a spare proof workerd is kept without a proof: deploys come in bursts (a dev loop, a
 * rollout, a release of several bundles), and an idle mesh should not hold one for good.
 */
const SPARE_IDLE_MS = 10 * 60_000;

/**
 * Proves a stored build loads before any live workerd serves it, and returns the manifest it
 * serves: a proof workerd with the live router and a routes file listing only this build compiles
 * it through the Worker Loader, exactly as the live workerd will. Anything the build's content
 * causes is a BundleError: a module that does not compile, top-level code that throws, does not
 * finish within loadTimeoutMs or grows workerd past GRIDIRON_WORKERD_MAX_MB, a build that is not a
 * Restate endpoint or does not finish answering discovery within loadTimeoutMs, or a proof that
 * outlasts proofTimeoutMs. Whatever the outcome, workerd's whole process group is killed before
 * this returns (after a failure, it has also ended and the proof's dir is removed), and a spare
 * is started for the next proof: at once after a failure, after a proof that passed once its
 * activation asks (startSpare) or SPARE_AFTER_PROOF_MS have passed.
 */
export async function proveBuild(settings: ProofSettings, build: Build): Promise<ProvedManifest> {
  const proof = await takeProof(settings);
  const progress = { step: "loading the build" };
  let manifest: ProvedManifest;
  try {
    const proving = proveWith(settings, proof, build, progress);
    // After a timeout `proving` runs on until workerd is killed below; how it ends then is moot.
    proving.catch(() => {});
    const timeoutMs = proofTimeoutMs(settings);
    const overdue = () => new BundleError(`the proof did not finish within ${timeoutMs / 1000} s (${progress.step})`);
    manifest = await withTimeout(proving, timeoutMs, overdue);
  } catch (error) {
    // A failed activation leaves nothing behind: its proof's workerd has ended and its dir is gone.
    await proof.stop();
    startSpare(settings);
    throw error;
  }
  // stop() kills the process group before it first waits; the proved build's activation goes on
  // while workerd is reaped and the dir removed (stopProofs waits for that too).
  proof.stop().catch(() => {});
  spareLater(settings);
  return manifest;
}

/**
 * How long after a proof that passed the next spare starts at the latest. Starting workerd takes
 * about 0.1 s of CPU and some of the deployer's event loop, which the rest of the activation
 * (routing, registering, compiling on the live workerd) needs on a small machine; the deployer
 * asks for the spare once that is done (startSpare), this covers an activation that fails first.
 */
const SPARE_AFTER_PROOF_MS = 2_000;
let spareTimer: NodeJS.Timeout | undefined;

function spareLater(settings: ProofSettings): void {
  clearTimeout(spareTimer);
  spareTimer = setTimeout(() => startSpare(settings), SPARE_AFTER_PROOF_MS);
  // A pending spare does not keep the process alive.
  spareTimer.unref();
}

/** Starts the next proof's spare now, unless one is there or starting. */
export function startSpare(settings: ProofSettings): void {
  clearTimeout(spareTimer);
  spareTimer = undefined;
  keepSpare(settings);
}

export interface Proof {
  dir: string;
  workerd: ProofWorkerd;
  /** Its probe socket's URL, where the router takes the proof's requests. */
  url: string;
  hasExited(): boolean;
  /** Kills workerd's whole process group, waits for it to end, and removes the dir. */
  stop(): Promise<void>;
}

type ProofWorkerd = ReturnType<typeof spawnWorkerd>;

/**
 * A proof's dir (in the data dir, so sweepProofs finds it after a crash) and its workerd, which
 * serves a config inside that dir, once it listens. workerd is started `detached`, in a process
 * group of its own, so killing that group ends it and anything it started. It serves no build
 * until proveWith writes the routes file (ROUTES_FILE) into the dir: a proof dir without one is a
 * spare, waiting for its one proof.
 */
export async function startProof(settings: ProofSettings): Promise<Proof> {
  const dir = await mkdtemp(join(settings.dataDir, PROOF_PREFIX));
  const remove = () => rm(dir, { recursive: true, force: true });
  let proof: Proof | undefined;
  try {
    const config = join(dir, `config${CONFIG_EXTENSION}`);
    await writeWorkerdConfig(settings, config, {
      routesDir: dir,
      address: "127.0.0.1:0",
      discovery: "build",
      // Loaded as the live workerd will load it, so a build that breaks only that way fails here.
      ...(settings.logs.attribution ? { attribution: "dropped" as const } : {}),
    });
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
      if (proof) running.delete(proof);
    };
    let stopping: Promise<void> | undefined;
    // Once: proveBuild, the spare's expiry and stopProofs may each ask.
    proof = { dir, workerd, url: "", hasExited: () => exited, stop: () => (stopping ??= stop()) };
    running.add(proof);
    const port = await listeningPort(workerd.stdio[CONTROL_FD] as Readable, "probe", START_TIMEOUT_MS);
    proof.url = `http://127.0.0.1:${port}`;
    // The router's first request is slow (its own code compiled, the identity key imported, the
    // routes disk read): made now, with no build listed yet, rather than in the proof.
    await refreshRoutes(settings, proof.url, 0);
    return proof;
  } catch (error) {
    await (proof ? proof.stop() : remove());
    throw error;
  }
}

/** The proofs this process runs, spares too, for stopProofs. */
const running = new Set<Proof>();
/** The spare: a proof workerd started ahead for the next proof, and when it goes unused. */
let spare: { proof: Promise<Proof>; expiry: NodeJS.Timeout } | undefined;
/** Set once the deployer is stopping its proofs: no spare is started after that. */
let closing = false;

/**
 * Starts the next proof's workerd now, unless one is waiting: an activation then does not wait
 * for workerd to start, most of a proof on an idle machine. A spare proves one build and is
 * killed like any proof, never reused: a build's code can leave work behind in its workerd
 * (a `waitUntil` timer that spins later), which must not land on the next build's proof.
 */
function keepSpare(settings: ProofSettings): void {
  if (spare || closing) return;
  const proof = startProof(settings);
  // A spare that fails to start is not used (takeProof); the next proof starts its own.
  proof.catch(() => {});
  const expiry = setTimeout(() => {
    if (spare?.proof !== proof) return;
    spare = undefined;
    void proof.then(
      (p) => p.stop(),
      () => {},
    );
  }, SPARE_IDLE_MS);
  // A waiting spare does not keep the process alive; stopProofs ends it.
  expiry.unref();
  spare = { proof, expiry };
}

/** The spare if it runs, else a proof workerd started now. */
async function takeProof(settings: ProofSettings): Promise<Proof> {
  const taken = spare;
  spare = undefined;
  if (taken) {
    clearTimeout(taken.expiry);
    const proof = await taken.proof.catch(() => undefined);
    if (proof && !proof.hasExited()) return proof;
    await proof?.stop();
  }
  return startProof(settings);
}

/**
 * Stops every proof this process runs, the spare too, for a deployer about to exit (an exit skips
 * their own cleanup, and their workerd, in a group of its own, would outlive it); how many there
 * were. No spare is started after this.
 */
export async function stopProofs(): Promise<number> {
  closing = true;
  clearTimeout(spareTimer);
  if (spare) clearTimeout(spare.expiry);
  // A spare still starting is not in `running` until it has spawned.
  await spare?.proof.catch(() => {});
  spare = undefined;
  let stopped = 0;
  // Until none is left: a proof may start while others stop.
  while (running.size > 0) {
    const proofs = [...running];
    await Promise.all(proofs.map((proof) => proof.stop()));
    stopped += proofs.length;
  }
  return stopped;
}

/**
 * Through util-linux's setpriv, which sets the parent-death signal and then becomes workerd (same
 * PID and process group): a deployer that dies, even by SIGKILL, takes its proofs' and its spare's
 * workerd with it at once, rather than leaving them to the next deployer's sweep, which may never
 * come. The signal fires when the thread that started workerd ends, so under the supervisor, where
 * the deployer is a thread (supervised-thread.ts), a deployer thread that ends takes them too (its
 * supervisor's process, which they then belong to, cannot reap them: they stay zombies until it
 * exits).
 */
function spawnWorkerd(config: string) {
  const options = { control: true };
  const workerd = [binaries.workerd(), ...workerdArgs(config, options)];
  return execa("setpriv", ["--pdeathsig", "KILL", "--", ...workerd], {
    env: workerdEnv(),
    extendEnv: false,
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
  settings: ProofSettings,
  { dir, workerd, url, hasExited }: Proof,
  build: Build,
  progress: { step: string },
): Promise<ProvedManifest> {
  await writeRoutes(dir, [build]);
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
  settings: ProofSettings,
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
