import { access, mkdir } from "node:fs/promises";
import { request } from "undici";
import { AdminClient } from "./admin-client.ts";
import { binaries, type Child, Supervised, waitFor } from "./processes.ts";
import type { Settings } from "./settings.ts";
import { writeWorkerdConfig } from "./workerd-config.ts";
import { serveWorkerdReloads } from "./workerd-reload.ts";

const RESTATE_CONFIG = new URL("../config/restate.toml", import.meta.url).pathname;
const CLI_ENTRY = new URL("./main.ts", import.meta.url).pathname;
const STARTUP_TIMEOUT_MS = 60_000;

export interface Mesh {
  stop(): Promise<void>;
}

/**
 * Starts restate-server, workerd and the deployer endpoint, registers the deployer with Restate
 * (safe to repeat on every start) and keeps all three running until `stop`.
 */
export async function startMesh(settings: Settings, log: (line: string) => void = console.log): Promise<Mesh> {
  await mkdir(settings.bundlesDir, { recursive: true });
  // A first start has no routes yet: workerd starts with just the router.
  if (!(await exists(settings.workerdConfigPath))) {
    await writeWorkerdConfig(settings.workerdConfigPath, [], `${settings.bind}:${settings.ports.workerd}`);
  }
  const admin = new AdminClient(settings.adminUrl);

  const restate = new Supervised(
    {
      name: "restate",
      file: binaries.restateServer(),
      args: ["--config-file", RESTATE_CONFIG, "--base-dir", settings.restateDir, "--no-logo"],
      env: {
        RESTATE_LISTEN_MODE: "tcp",
        RESTATE_BIND_ADDRESS: `${settings.bind}:${settings.ports.node}`,
        RESTATE_ADVERTISED_ADDRESS: `http://127.0.0.1:${settings.ports.node}`,
        RESTATE_ADMIN__BIND_ADDRESS: `${settings.bind}:${settings.ports.admin}`,
        RESTATE_ADMIN__ADVERTISED_ADMIN_ENDPOINT: settings.adminUrl,
        RESTATE_INGRESS__BIND_ADDRESS: `${settings.bind}:${settings.ports.ingress}`,
        RESTATE_INGRESS__ADVERTISED_INGRESS_ENDPOINT: settings.ingressUrl,
      },
    },
    undefined,
    log,
  );
  const workerd = new Supervised(
    { name: "workerd", file: binaries.workerd(), args: ["serve", "--binary", settings.workerdConfigPath] },
    undefined,
    log,
  );
  const workerdReady = () => waitFor("workerd", () => answers(`${settings.workerdUrl}/`), STARTUP_TIMEOUT_MS);
  const reloadWorkerd = async () => {
    await workerd.restart();
    await workerdReady();
  };
  const deployer = new Supervised(
    { name: "deployer", file: process.execPath, args: [CLI_ENTRY, "deployer"], ipc: true },
    (child: Child) => serveWorkerdReloads(child, reloadWorkerd),
    log,
  );
  const all = [deployer, workerd, restate];
  const stop = async () => {
    // The deployer first, so it starts no reload while the others go down.
    for (const child of all) await child.stop();
  };

  try {
    log("[gridiron] starting restate-server");
    restate.start();
    await waitFor("restate-server admin API", () => admin.healthy(), STARTUP_TIMEOUT_MS);
    await waitFor("restate-server ingress", () => answers(`${settings.ingressUrl}/restate/health`), STARTUP_TIMEOUT_MS);
    log("[gridiron] starting workerd");
    workerd.start();
    await workerdReady();
    log("[gridiron] starting the deployer");
    deployer.start();
    await waitFor(
      "the deployer's registration with Restate",
      async () => {
        await admin.registerDeployment({ uri: settings.deployerUrl, http11: false, force: true });
        return true;
      },
      STARTUP_TIMEOUT_MS,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  log(
    `[gridiron] ready: ingress ${settings.ingressUrl}, admin ${settings.adminUrl}, workerd ${settings.workerdUrl}, deployer ${settings.deployerUrl}`,
  );
  return { stop };
}

async function answers(url: string): Promise<boolean> {
  const { statusCode, body } = await request(url, { headersTimeout: 2_000 });
  await body.dump();
  return statusCode === 200;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
