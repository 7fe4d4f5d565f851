import { setTimeout as sleep } from "node:timers/promises";
import getPort from "get-port";
import { AdminClient } from "./admin-client.ts";
import { readAdminToken } from "./admin-token.ts";
import { componentSpecs, prepareDataDir } from "./components.ts";
import { type Child, Supervised, waitFor, withTimeout } from "./processes.ts";
import { identityHeaders } from "./request-identity.ts";
import type { Settings } from "./settings.ts";
import { deployerReady, serveWorkerdReloads } from "./supervisor-ipc.ts";
import { answers, workerdReady } from "./workerd-reload.ts";
import { watchWorkerd } from "./workerd-watchdog.ts";

const STARTUP_TIMEOUT_MS = 60_000;
/** How long the old workerd holds new requests before it is asked to exit (see the handover). */
const DRAIN_LEAD_MS = 50;

const probeArgs = (port: number) => ["--socket-addr", `probe=127.0.0.1:${port}`];

export interface Mesh {
  stop(): Promise<void>;
}

/**
 * Starts restate-server, the admin API front, workerd and the deployer endpoint, waits until the
 * deployer has registered itself with Restate, and keeps all four running until `stop`.
 */
export async function startMesh(settings: Settings, log: (line: string) => void = console.log): Promise<Mesh> {
  await prepareDataDir(settings, log);
  const admin = new AdminClient({ socketPath: settings.adminSocket });
  const adminFront = new AdminClient({ url: settings.adminUrl, token: await readAdminToken(settings) });
  const specs = componentSpecs(settings);
  const restate = new Supervised(specs.restate, undefined, log);
  const front = new Supervised(specs.admin, undefined, log);
  const workerd = new Supervised(specs.workerd, undefined, log);
  /** Each workerd also serves its router on a port of its own, so the supervisor can tell two apart. */
  let probePort = await getPort({ host: "127.0.0.1" });
  const reloadWorkerd = async () => {
    if (!settings.workerdSocketInherited) {
      await workerd.restart();
      await workerdReady(settings);
      return;
    }
    // A fresh workerd on the shared socket, with every live build compiled, before the old one
    // is asked to finish its requests and exit.
    const oldProbe = probePort;
    const newProbe = await getPort({ host: "127.0.0.1" });
    await workerd.handover(
      probeArgs(newProbe),
      () =>
        waitFor(
          "the new workerd",
          async () =>
            answers(`http://127.0.0.1:${newProbe}/_gridiron/warm`, {
              method: "POST",
              timeoutMs: 30_000,
              headers: await identityHeaders(settings, "/_gridiron/warm"),
            }),
          STARTUP_TIMEOUT_MS,
        ),
      async () => {
        // workerd closes idle keep-alive connections when it drains, and Restate may be sending
        // on one at that moment. Held a little, Restate's busy connections stay busy through the
        // SIGTERM and are closed after their response instead.
        const holding = await answers(`http://127.0.0.1:${oldProbe}/_gridiron/drain`, {
          method: "POST",
          headers: await identityHeaders(settings, "/_gridiron/drain"),
        }).catch(() => false);
        if (!holding) log("[gridiron] the old workerd did not confirm /_gridiron/drain; stopping it anyway");
        await sleep(DRAIN_LEAD_MS);
      },
    );
    probePort = newProbe;
  };
  let registered: Promise<void> = Promise.resolve();
  const deployer = new Supervised(
    specs.deployer,
    (child: Child) => {
      registered = deployerReady(child);
      serveWorkerdReloads(child, reloadWorkerd);
    },
    log,
  );
  const all = [deployer, workerd, front, restate];
  const watching = new AbortController();
  // All at once: on Ctrl-C the terminal signals every child too, and each must be marked as
  // stopping before its exit is taken for a crash and restarted.
  const stop = async () => {
    watching.abort();
    await Promise.all(all.map((child) => child.stop()));
  };

  try {
    log("[gridiron] starting restate-server");
    restate.start();
    await waitFor("restate-server admin API", () => admin.healthy(), STARTUP_TIMEOUT_MS);
    await waitFor("restate-server ingress", () => answers(`${settings.ingressUrl}/restate/health`), STARTUP_TIMEOUT_MS);
    log("[gridiron] starting the admin API front");
    front.start();
    await waitFor("the admin API front", () => adminFront.healthy(), STARTUP_TIMEOUT_MS);
    log("[gridiron] starting workerd");
    workerd.start(settings.workerdSocketInherited ? probeArgs(probePort) : []);
    await workerdReady(settings);
    void watchWorkerd(
      {
        pid: () => workerd.pid(),
        probeUrl: () =>
          settings.workerdSocketInherited ? `http://127.0.0.1:${probePort}/` : `${settings.workerdUrl}/`,
        kill: () => workerd.kill(),
      },
      admin,
      settings.workerdUrl,
      settings.watchdog,
      log,
      watching.signal,
    );
    log("[gridiron] starting the deployer");
    deployer.start();
    // The deployer registers itself with Restate once it listens (see endpoint.ts).
    await withTimeout(registered, STARTUP_TIMEOUT_MS, "the deployer did not register with Restate");
  } catch (error) {
    await stop();
    throw error;
  }
  log(
    `[gridiron] ready: ingress ${settings.ingressUrl}, admin ${settings.adminUrl}, workerd ${settings.workerdUrl}, deployer ${settings.deployerUrl}`,
  );
  return { stop };
}
