import { resolve } from "node:path";
import { z } from "zod";

const port = z.coerce.number().int().min(1).max(65535);

/** Every knob Gridiron reads from the environment, with its default. The README lists them. */
const EnvSchema = z.object({
  GRIDIRON_BIND: z.string().default("127.0.0.1"),
  GRIDIRON_INGRESS_PORT: port.default(8080),
  GRIDIRON_ADMIN_PORT: port.default(9070),
  GRIDIRON_WORKERD_PORT: port.default(9080),
  GRIDIRON_DEPLOYER_PORT: port.default(9081),
  GRIDIRON_DATA_DIR: z.string().default(".gridiron"),
  GRIDIRON_DRAIN_POLL_SECONDS: z.coerce.number().positive().default(30),
  GRIDIRON_DRAIN_GRACE_SECONDS: z.coerce.number().nonnegative().default(60),
  GRIDIRON_KEEP_BUILDS: z.coerce.number().int().min(1).default(5),
  GRIDIRON_MAX_BUNDLE_MB: z.coerce.number().positive().default(50),
  GRIDIRON_FETCH_TIMEOUT_SECONDS: z.coerce.number().positive().default(60),
  // loader: builds are compiled at run time, a deploy restarts nothing. restart: the old design,
  // every build compiled at start and workerd restarted on each deploy (kept for comparison).
  GRIDIRON_WORKERD_RELOAD: z.enum(["loader", "restart"]).default("loader"),
  GRIDIRON_ADMIN_TOKEN: z.string().min(16, "GRIDIRON_ADMIN_TOKEN must be at least 16 characters").optional(),
  GRIDIRON_RELEASE_AFTER: z.coerce.number().int().min(1).default(5),
  GRIDIRON_WORKERD_HANG_SECONDS: z.coerce.number().positive().default(10),
  GRIDIRON_WORKERD_MAX_MB: z.coerce.number().positive().default(2048),
  // Set by the launcher (launcher.ts): workerd's listening socket is open as fd 3.
  GRIDIRON_WORKERD_SOCKET_FD: z.literal("3").optional(),
  // Set by the runit run scripts: workerd's service dir, so the deployer restarts it with `sv`.
  GRIDIRON_WORKERD_SV: z.string().optional(),
});

export type Settings = ReturnType<typeof loadSettings>;

/** restate-server's node name; its data and unix sockets live in `{restateDir}/{name}/`. */
export const RESTATE_NODE_NAME = "gridiron";
/** The longest path a unix socket can have on Linux (sun_path less its terminating zero). */
const MAX_SOCKET_PATH = 107;

export function loadSettings(env: NodeJS.ProcessEnv = process.env) {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`invalid environment: ${z.prettifyError(parsed.error)}`);
  }
  const e = parsed.data;
  const dataDir = resolve(e.GRIDIRON_DATA_DIR);
  const restateDir = resolve(dataDir, "restate");
  // Restate's admin API and node port listen only on unix sockets, reachable by this user alone.
  const socket = (name: string) => resolve(restateDir, RESTATE_NODE_NAME, `${name}.sock`);
  if (socket("fabric").length > MAX_SOCKET_PATH) {
    throw new Error(
      `invalid environment: GRIDIRON_DATA_DIR ${dataDir} is too long: Restate's unix sockets under it would exceed ${MAX_SOCKET_PATH} characters`,
    );
  }
  // Restate and the deployer talk to workerd and to each other over loopback even when the
  // public ports (ingress, admin front) bind elsewhere, so internal ports listen on 127.0.0.1.
  const local = "127.0.0.1";
  return {
    bind: e.GRIDIRON_BIND,
    internalBind: local,
    ports: {
      ingress: e.GRIDIRON_INGRESS_PORT,
      admin: e.GRIDIRON_ADMIN_PORT,
      workerd: e.GRIDIRON_WORKERD_PORT,
      deployer: e.GRIDIRON_DEPLOYER_PORT,
    },
    dataDir,
    workerdService: e.GRIDIRON_WORKERD_SV,
    workerdReload: e.GRIDIRON_WORKERD_RELOAD,
    releaseAfter: e.GRIDIRON_RELEASE_AFTER,
    watchdog: { hangMs: e.GRIDIRON_WORKERD_HANG_SECONDS * 1000, maxMb: e.GRIDIRON_WORKERD_MAX_MB },
    workerdSocketInherited: e.GRIDIRON_WORKERD_SOCKET_FD !== undefined,
    adminToken: e.GRIDIRON_ADMIN_TOKEN,
    adminTokenPath: resolve(dataDir, "admin-token"),
    identityKeyPath: resolve(dataDir, "request-identity.pem"),
    drainPollMs: e.GRIDIRON_DRAIN_POLL_SECONDS * 1000,
    drainGraceMs: e.GRIDIRON_DRAIN_GRACE_SECONDS * 1000,
    keepBuilds: e.GRIDIRON_KEEP_BUILDS,
    maxBundleBytes: e.GRIDIRON_MAX_BUNDLE_MB * 1024 * 1024,
    // An https:// source's archive: at most as big as a bundle may be, fetched within the timeout.
    fetchLimits: {
      maxBytes: e.GRIDIRON_MAX_BUNDLE_MB * 1024 * 1024,
      timeoutMs: e.GRIDIRON_FETCH_TIMEOUT_SECONDS * 1000,
    },
    restateDir,
    adminSocket: socket("admin"),
    fabricSocket: socket("fabric"),
    bundlesDir: resolve(dataDir, "bundles"),
    downloadsDir: resolve(dataDir, "downloads"),
    workerdConfigPath: resolve(dataDir, "workerd", "config.bin"),
    /** Gridiron's authenticated front for Restate's admin API. */
    adminUrl: `http://${local}:${e.GRIDIRON_ADMIN_PORT}`,
    ingressUrl: `http://${local}:${e.GRIDIRON_INGRESS_PORT}`,
    workerdUrl: `http://${local}:${e.GRIDIRON_WORKERD_PORT}`,
    deployerUrl: `http://${local}:${e.GRIDIRON_DEPLOYER_PORT}`,
  };
}
