import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { z } from "zod";
import { hostPort, nodeAddress, restateClusterConfig } from "../cluster/restate-config.ts";
import { checkClusterTls } from "../cluster/tls.ts";
import { ensureAdminToken } from "../credentials/admin-token.ts";
import { ensureIdentityKey } from "../credentials/request-identity.ts";
import { ensureSecretsKey } from "../credentials/secrets-key.ts";
import type { Settings } from "../settings.ts";
import { binaries } from "./binaries.ts";
import { OWN_NODE_FLAGS } from "./node-flags.ts";
import type { ChildSpec } from "./supervised.ts";
import type { ThreadSpec } from "./supervised-thread.ts";
import { cellConfigPath, cellIds, cellProcessName } from "./workerd/cells.ts";
import { writeLiveConfig } from "./workerd/config.ts";
import { workerdArgs, workerdEnv, workerdFds } from "./workerd/process.ts";

const RESTATE_CONFIG = new URL("../../config/restate.toml", import.meta.url).pathname;
const CLI_ENTRY = new URL("../main.ts", import.meta.url).pathname;

export const Component = z.enum(["restate", "admin", "workerd", "deployer", "ops"]);
type Component = z.infer<typeof Component>;

/**
 * How each process is started. The Node supervisor (`npm start`) and the runit run scripts both
 * take their command lines from here, so the two modes cannot drift apart. The supervisor serves
 * the ops port itself (it counts what it sees happen); under runit `ops` is a process of its own.
 */
export function componentSpecs(
  settings: Settings,
  cellSockets: number[] = [],
): Record<Component, ChildSpec> & { cells: ChildSpec[] } {
  return {
    restate: {
      name: "restate",
      file: binaries.restateServer(),
      args: ["--config-file", restateConfigPath(settings), "--base-dir", settings.restateDir, "--no-logo"],
      env: {
        RESTATE_NODE_NAME: settings.nodeName,
        // Restate 1.7 has no authentication: its admin API listens only on a unix socket in the
        // data dir, and admins reach it through the front (admin-front.ts). Its ingress too, behind
        // a front that refuses anonymous calls to the control plane (ingress-front.ts). The node
        // port too, but in a cluster, where peers must reach it: then on the node's cluster address.
        ...nodePortEnv(settings),
        RESTATE_ADMIN__LISTEN_MODE: "unix",
        RESTATE_ADMIN__ADVERTISED_ADMIN_ENDPOINT: settings.adminUrl,
        RESTATE_INGRESS__LISTEN_MODE: "unix",
        RESTATE_INGRESS__ADVERTISED_INGRESS_ENDPOINT: settings.ingressUrl,
        RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE: settings.identityKeyPath,
      },
    },
    admin: { name: "admin", file: process.execPath, args: [...OWN_NODE_FLAGS, CLI_ENTRY, "fronts"] },
    workerd: cellSpec(settings, 0, cellSockets[0]),
    cells: cellIds(settings).map((cell) => cellSpec(settings, cell, cellSockets[cell])),
    // Under runit; the supervisor runs the deployer as a thread (deployerThread).
    deployer: { name: "deployer", file: process.execPath, args: [...OWN_NODE_FLAGS, CLI_ENTRY, "deployer"] },
    ops: { name: "ops", file: process.execPath, args: [...OWN_NODE_FLAGS, CLI_ENTRY, "ops"] },
  };
}

/**
 * The deployer's heap limit as a thread of the supervisor. An activation holds at most a few
 * copies of one bundle (GRIDIRON_MAX_BUNDLE_MB, 50 by default, the files of a cluster's store in
 * 1 MB chunks) besides the SDK's journal; a deployer that outgrows this leaks, and ends alone
 * (ERR_WORKER_OUT_OF_MEMORY) to be started again, rather than growing the supervisor's process
 * until the kernel kills it and every child with it. V8's default would be a quarter of the
 * machine's memory, shared with everything else here.
 */
const DEPLOYER_HEAP_MB = 512;

/**
 * The deployer under the supervisor: a thread of the supervisor's process, not a process of its
 * own (supervised-thread.ts says what that keeps; docs/benchmarks.md what it saves).
 */
export const deployerThread: ThreadSpec = {
  name: "deployer",
  module: new URL("../objects/deployer-thread.ts", import.meta.url),
  resourceLimits: { maxOldGenerationSizeMb: DEPLOYER_HEAP_MB },
};

/**
 * Cell `cell`'s workerd (workerd/cells.ts); runit runs cell 0 alone, as `workerd`. Under the
 * supervisor, every workerd serves the socket the supervisor holds for its cell and reports its
 * probe port on a control pipe; under runit (no `socket`), workerd binds its own address.
 */
function cellSpec(settings: Pick<Settings, "workerdConfigPath">, cell: number, socket: number | undefined): ChildSpec {
  const supervised = { sharedSocket: socket, control: socket !== undefined };
  return {
    name: cellProcessName(cell),
    file: binaries.workerd(),
    args: workerdArgs(cellConfigPath(settings, cell), supervised),
    extraFds: workerdFds(supervised),
    env: workerdEnv(),
    envOnly: true,
    // The SDK logs a line per invocation: relayed through the supervisor, that cost 0.1-0.15 ms
    // of its CPU per call (docs/benchmarks.md). Nothing reads workerd's output; it goes to the
    // terminal (or whatever the supervisor's stdout is) unprefixed.
    output: "direct",
  };
}

function restateConfigPath(settings: Pick<Settings, "cluster" | "restateClusterConfigPath">): string {
  return settings.cluster ? settings.restateClusterConfigPath : RESTATE_CONFIG;
}

function nodePortEnv(settings: Pick<Settings, "cluster" | "clusterPort" | "fabricSocket">): Record<string, string> {
  if (!settings.cluster) {
    return { RESTATE_LISTEN_MODE: "unix", RESTATE_ADVERTISED_ADDRESS: `unix:${settings.fabricSocket}` };
  }
  const { address } = settings.cluster.self;
  return {
    RESTATE_LISTEN_MODE: "tcp",
    RESTATE_BIND_ADDRESS: hostPort(address, settings.clusterPort),
    RESTATE_ADVERTISED_ADDRESS: nodeAddress(address, settings.clusterPort),
  };
}

/**
 * Creates the data dirs, on a first start the admin token, the identity key and the secrets key,
 * and the live workerd's config (so a changed port or key takes effect on start); on a cluster
 * node, checks its TLS files and writes restate-server's config.
 */
export async function prepareDataDir(settings: Settings, log?: (line: string) => void): Promise<void> {
  // Owner only: the data dir holds the admin token, the identity key and Restate's sockets.
  await mkdir(settings.dataDir, { recursive: true, mode: 0o700 });
  await chmod(settings.dataDir, 0o700);
  await mkdir(settings.bundlesDir, { recursive: true });
  await ensureAdminToken(settings, log);
  await ensureIdentityKey(settings, log);
  await ensureSecretsKey(settings, log);
  await writeLiveConfig(settings);
  if (settings.cluster) {
    await checkClusterTls(settings.clusterTls, settings.cluster);
    const base = await readFile(RESTATE_CONFIG, "utf8");
    await writeFile(
      settings.restateClusterConfigPath,
      restateClusterConfig(base, settings.cluster, settings.clusterPort, settings.clusterTls, settings.snapshots),
    );
  }
}

/** A shell command line (`env K=V ... file args`) for a runit run script to `exec`. */
export function shellCommand(spec: ChildSpec): string {
  // POSIX single quoting: the only character to escape inside '...' is ' itself.
  const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;
  const env = Object.entries(spec.env ?? {}).map(([key, value]) => quote(`${key}=${value}`));
  return ["env", ...(spec.envOnly ? ["-i"] : []), ...env, quote(spec.file), ...spec.args.map(quote)].join(" ");
}
