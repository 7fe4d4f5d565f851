import { availableParallelism, homedir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { type ClusterMembership, parseMembership } from "./cluster/peers.ts";
import { clusterTlsFiles } from "./cluster/tls.ts";
import { MB } from "./memory.ts";

const port = z.coerce.number().int().min(1).max(65535);

/**
 * An `https://` archive may unpack to this many times GRIDIRON_MAX_BUNDLE_MB: room for the source
 * maps and READMEs beside a bundle's modules, while a compressed bomb cannot fill the disk.
 */
const UNPACKED_FACTOR = 4;

/** Whether S3 buckets are addressed in the path: read by the mesh and the CLI alike (s3.ts). */
export const S3PathStyle = z.stringbool().optional();

/** Per user, as other local tools keep their state: $XDG_STATE_HOME, by default ~/.local/state. */
function defaultMeshFile(): string {
  return join(process.env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "gridiron", "mesh.json");
}

/** A setting users may set: what it does, as `help` and the README's Settings table show it. */
const documented = <T extends z.ZodType>(schema: T, description: string, shownDefault?: string) =>
  schema.meta({ description, ...(shownDefault ? { shownDefault } : {}) });

/**
 * Every knob of the mesh that Gridiron reads from the environment, with its default; the one
 * source of both. The CLI's GRIDIRON_INGRESS_URL and GRIDIRON_ADMIN_URL (cli/connection.ts) and the
 * local cluster tool's GRIDIRON_LOCAL_CLUSTER_* (tools/local-cluster/local.ts) are read where they are used:
 * they say where a mesh is, not how it runs.
 */
const EnvSchema = z.object({
  GRIDIRON_BIND: documented(
    z.string().default("127.0.0.1"),
    "address the ingress, the admin API front and the ops port bind to (workerd and the deployer stay on 127.0.0.1)",
  ),
  GRIDIRON_INGRESS_PORT: documented(port.default(8080), "Restate ingress: call services here"),
  GRIDIRON_ADMIN_PORT: documented(port.default(9070), "Restate's admin API and web UI, behind the admin token"),
  GRIDIRON_WORKERD_PORT: documented(port.default(9080), "workerd, serving `/{name}/{buildId}/...`"),
  GRIDIRON_DEPLOYER_PORT: documented(port.default(9081), "the deployer's Restate endpoint"),
  GRIDIRON_OPS_PORT: documented(
    port.default(9082),
    "operations: `/metrics` for Prometheus, `/livez`, `/readyz` (see Operations)",
  ),
  GRIDIRON_DATA_DIR: documented(z.string().default(".gridiron"), "everything Gridiron stores"),
  GRIDIRON_MESH_FILE: documented(
    z.string().default(defaultMeshFile()),
    "where `npm start` records the running mesh's ports and data dir, so the CLI and `just` recipes in other terminals find it without them",
    "`$XDG_STATE_HOME/gridiron/mesh.json` (`~/.local/state/…`)",
  ),
  GRIDIRON_DRAIN_POLL_SECONDS: documented(
    z.coerce.number().positive().default(30),
    "how often a replaced build is checked",
  ),
  GRIDIRON_DRAIN_GRACE_SECONDS: documented(
    z.coerce.number().nonnegative().default(60),
    "how long a build stays drained before it is pruned",
  ),
  GRIDIRON_KEEP_BUILDS: documented(
    z.coerce.number().int().min(1).default(5),
    "builds whose files are kept for rollback",
  ),
  GRIDIRON_MAX_BUNDLE_MB: documented(
    z.coerce.number().positive().default(50),
    `largest bundle (sum of its modules), and largest \`https://\` or \`s3://\` archive, \`activate\` accepts; an archive may unpack to ${UNPACKED_FACTOR} times that`,
  ),
  GRIDIRON_FETCH_TIMEOUT_SECONDS: documented(
    z.coerce.number().positive().default(60),
    "how long an `https://` or `s3://` source may take to download, all redirects included; unpacking it gets as long again",
  ),
  GRIDIRON_FETCH_PRIVATE_REDIRECTS: documented(
    z.stringbool().default(false),
    "let an `https://` source redirect to a loopback, link-local or private address (a source server on your own network); the URL given to `activate` may always be one",
  ),
  GRIDIRON_S3_PATH_STYLE: documented(
    S3PathStyle,
    "address S3 buckets in the path (`http://host/bucket/key`), not as host names; unset, path-style is used when `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` is set (Ceph's gateway, MinIO) and not for AWS (see Sources)",
    "unset",
  ),
  GRIDIRON_ADMIN_TOKEN: documented(
    z.string().min(16, "GRIDIRON_ADMIN_TOKEN must be at least 16 characters").optional(),
    "the Bearer token deploy calls and the admin API need (see Trust model)",
    "generated",
  ),
  GRIDIRON_SECRETS_KEY_FILE: documented(
    z.string().min(1).optional(),
    "the private key (PEM) bundles' secrets are sealed to and opened with; generated on first start if missing; on a cluster the same key on every node (see Vars and secrets)",
    "`secrets-key.pem` in the data dir",
  ),
  GRIDIRON_RELEASE_AFTER: documented(
    z.coerce.number().int().min(1).default(5),
    "removed builds held in workerd's memory before a fresh workerd takes over to free them",
  ),
  GRIDIRON_WORKERD_HANG_SECONDS: documented(
    z.coerce.number().positive().default(10),
    "workerd not answering this long is killed and restarted (see Resource limits)",
  ),
  GRIDIRON_WORKERD_MAX_MB: documented(
    z.coerce.number().positive().default(2048),
    "workerd using more memory than this is killed and restarted",
  ),
  GRIDIRON_WORKERD_SEMI_SPACE_MB: documented(
    z.coerce.number().int().min(0).max(64).default(1),
    "the young generation's semi-space of each isolate in workerd (V8's --max-semi-space-size), in MB; 0 leaves V8's own (up to 16): small keeps workerd's memory down after load (see Benchmarks)",
  ),
  GRIDIRON_WORKERD_FULL_GC: documented(
    z.stringbool().default(true),
    "every garbage collection in workerd's isolates is a full one (V8's --gc-global), so what finished requests held in workerd is freed within about a MB of allocation (10 small services under load: ~220 MB instead of 400-650); a build keeping tens of MB of live objects pays for it in calls per second, false leaves V8's own (see Benchmarks)",
  ),
  GRIDIRON_CELLS: documented(
    z.coerce.number().int().min(1).max(64).optional(),
    "workerd processes (cells) the bundles are spread over, each with its own watchdog and memory limit, plus one quarantine cell; on a cluster the same on every node (see Resource limits)",
    "the cores, at least 2",
  ),
  GRIDIRON_NODE_NAME: documented(
    z.string().optional(),
    "this node's name in a cluster, one of GRIDIRON_CLUSTER_PEERS; unset, Gridiron runs as one node (see Cluster)",
    "unset",
  ),
  GRIDIRON_CLUSTER_PEERS: documented(
    z.string().optional(),
    "every node of the cluster as name=address, comma-separated, in the same order on every node (e.g. `n1=10.0.0.1,n2=10.0.0.2,n3=10.0.0.3`); the first one provisions the cluster",
    "unset",
  ),
  GRIDIRON_CLUSTER_SNAPSHOTS: documented(
    z
      .string()
      // restate-server 1.7 refuses file:// here, and crash-loops on it: refused at start instead.
      .regex(/^s3:\/\/./, "GRIDIRON_CLUSTER_SNAPSHOTS must be an s3:// URL of a bucket every node reaches")
      .optional(),
    "where the cluster's nodes keep Restate's partition snapshots: an S3-compatible bucket every node reaches; without it Restate never trims its log, and a new node cannot join (see Cluster)",
    "unset",
  ),
  GRIDIRON_CLUSTER_BUILDS: documented(
    z
      .string()
      .regex(/^s3:\/\/[^/]+/, "GRIDIRON_CLUSTER_BUILDS must be an s3://bucket/prefix URL every node reaches")
      .optional(),
    "where a cluster keeps its builds' files: an `s3://bucket/prefix` every node reads (the deployer also writes, and deletes a pruned build's files no stored build shares), each file stored once by its SHA-256; unset, they are kept in Restate's own state in 1 MB chunks (see Cluster)",
    "unset",
  ),
  GRIDIRON_CLUSTER_PORT: documented(
    port.default(5122),
    "Restate's node-to-node port, on every node's cluster address: mutual TLS only, from the peers' certificates",
  ),
  GRIDIRON_CLUSTER_TOKEN_PORT: documented(
    port.default(5123),
    "where each cluster node's supervisor proves to its peers, before its restate-server starts, that it holds the cluster's admin token: on every node's cluster address, mutual TLS only, from the peers' certificates",
  ),
  GRIDIRON_CLUSTER_TLS_DIR: documented(
    z.string().optional(),
    "a cluster node's `ca.pem` (the cluster's CA), `node.pem` (this node's certificate, its CN the node's name, signed by that CA) and `node-key.pem`, for node-to-node mutual TLS (see Cluster)",
    "`<data dir>/cluster-tls`",
  ),
  GRIDIRON_LOGS: documented(
    z.stringbool().default(true),
    "record every build's lines and outcomes per bundle (`gridiron tail`, `gridiron logs`, per-build metrics), instead of workerd printing the lines; false turns it off: workerd prints them unprefixed (see Logs)",
  ),
  // Set by the crash tests only: the deployer's crash points are live (crash-switch.ts).
  GRIDIRON_CRASH_POINTS: z.stringbool().default(false),
});

export interface SettingDoc {
  name: string;
  /** The default as users read it: `8080`, or a word such as `generated`. */
  shownDefault: string;
  description: string;
}

/** The settings users may set, in order, for `help` and the README (checked by a test). */
export function settingDocs(): SettingDoc[] {
  const defaults: Record<string, unknown> = EnvSchema.parse({});
  return Object.entries(EnvSchema.shape).flatMap(([name, schema]) => {
    const meta = schema.meta();
    if (!meta?.description) return [];
    const shownDefault = typeof meta.shownDefault === "string" ? meta.shownDefault : `\`${defaults[name]}\``;
    return [{ name, shownDefault, description: meta.description }];
  });
}

export type Settings = ReturnType<typeof loadSettings>;

/** restate-server's node name on a single node; its data and unix sockets live in `{restateDir}/{name}/`. */
const SINGLE_NODE_NAME = "gridiron";
/** The longest path a unix socket can have on Linux (sun_path less its terminating zero). */
const MAX_SOCKET_PATH = 107;

export function loadSettings(env: NodeJS.ProcessEnv = process.env) {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`invalid environment: ${z.prettifyError(parsed.error)}`);
  }
  const e = parsed.data;
  const cluster = clusterOf(e);
  const nodeName = cluster?.self.name ?? SINGLE_NODE_NAME;
  const dataDir = resolve(e.GRIDIRON_DATA_DIR);
  const restateDir = resolve(dataDir, "restate");
  // Restate's admin API, its ingress (and on a single node its node port) listen only on unix
  // sockets, reachable by this user alone; Gridiron's fronts serve the first two on TCP.
  const socket = (name: string) => resolve(restateDir, nodeName, `${name}.sock`);
  // "ingress" is the longest name.
  if (socket("ingress").length > MAX_SOCKET_PATH) {
    throw new Error(
      `invalid environment: GRIDIRON_DATA_DIR ${dataDir} is too long: Restate's unix sockets under it would exceed ${MAX_SOCKET_PATH} characters`,
    );
  }
  // Restate and the deployer talk to workerd and to each other over loopback even when the
  // public ports (ingress, admin front) bind elsewhere, so internal ports listen on 127.0.0.1.
  const local = "127.0.0.1";
  // The public ports are reached at their own address, or at loopback when they bind to all.
  const reachable = ["0.0.0.0", "::"].includes(e.GRIDIRON_BIND) ? local : e.GRIDIRON_BIND;
  return {
    bind: e.GRIDIRON_BIND,
    nodeName,
    cluster,
    clusterPort: e.GRIDIRON_CLUSTER_PORT,
    /** Where the supervisor answers its peers' admin token checks (cluster/token-check.ts). */
    clusterTokenPort: e.GRIDIRON_CLUSTER_TOKEN_PORT,
    clusterTls: clusterTlsFiles(resolve(e.GRIDIRON_CLUSTER_TLS_DIR ?? resolve(dataDir, "cluster-tls"))),
    /** Restate's snapshot repository; the endpoint of a store other than AWS is the AWS SDK's own setting. */
    snapshots: e.GRIDIRON_CLUSTER_SNAPSHOTS
      ? { destination: e.GRIDIRON_CLUSTER_SNAPSHOTS, endpoint: env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL }
      : undefined,
    /** Where the deployer stores builds' files for the cluster's nodes, if not in Restate (cluster/store.ts). */
    clusterBuilds: e.GRIDIRON_CLUSTER_BUILDS,
    internalBind: local,
    ports: {
      ingress: e.GRIDIRON_INGRESS_PORT,
      admin: e.GRIDIRON_ADMIN_PORT,
      workerd: e.GRIDIRON_WORKERD_PORT,
      deployer: e.GRIDIRON_DEPLOYER_PORT,
      ops: e.GRIDIRON_OPS_PORT,
    },
    dataDir,
    meshFile: resolve(e.GRIDIRON_MESH_FILE),
    releaseAfter: e.GRIDIRON_RELEASE_AFTER,
    cells: e.GRIDIRON_CELLS ?? Math.max(2, availableParallelism()),
    watchdog: { hangMs: e.GRIDIRON_WORKERD_HANG_SECONDS * 1000, maxMb: e.GRIDIRON_WORKERD_MAX_MB },
    workerdSemiSpaceMb: e.GRIDIRON_WORKERD_SEMI_SPACE_MB,
    workerdFullGc: e.GRIDIRON_WORKERD_FULL_GC,
    crashPoints: e.GRIDIRON_CRASH_POINTS,
    adminToken: e.GRIDIRON_ADMIN_TOKEN,
    adminTokenPath: resolve(dataDir, "admin-token"),
    identityKeyPath: resolve(dataDir, "request-identity.pem"),
    secretsKeyPath: resolve(e.GRIDIRON_SECRETS_KEY_FILE ?? resolve(dataDir, "secrets-key.pem")),
    /** The key before the last rotation, while secrets sealed to it are put again (README: key rotation). */
    secretsPreviousKeyPath: `${resolve(e.GRIDIRON_SECRETS_KEY_FILE ?? resolve(dataDir, "secrets-key.pem"))}.previous`,
    drainPollMs: e.GRIDIRON_DRAIN_POLL_SECONDS * 1000,
    drainGraceMs: e.GRIDIRON_DRAIN_GRACE_SECONDS * 1000,
    keepBuilds: e.GRIDIRON_KEEP_BUILDS,
    maxBundleBytes: e.GRIDIRON_MAX_BUNDLE_MB * MB,
    // An https:// or s3:// source's archive: at most as big as a bundle may be, fetched within the timeout.
    fetchLimits: {
      maxBytes: e.GRIDIRON_MAX_BUNDLE_MB * MB,
      maxUnpackedBytes: e.GRIDIRON_MAX_BUNDLE_MB * MB * UNPACKED_FACTOR,
      timeoutMs: e.GRIDIRON_FETCH_TIMEOUT_SECONDS * 1000,
      privateRedirects: e.GRIDIRON_FETCH_PRIVATE_REDIRECTS,
    },
    restateDir,
    /** restate-server's config on a cluster node, written from the peers (cluster/restate-config.ts). */
    restateClusterConfigPath: resolve(dataDir, "restate-cluster.toml"),
    adminSocket: socket("admin"),
    ingressSocket: socket("ingress"),
    fabricSocket: socket("fabric"),
    bundlesDir: resolve(dataDir, "bundles"),
    downloadsDir: resolve(dataDir, "downloads"),
    /** Where the node agent listens for the deployer's "sync now" (node-agent.ts). */
    agentSocket: resolve(dataDir, "agent.sock"),
    /** Builds' lines and outcomes: where the live workerd's router posts them (logs/collector.ts). */
    logs: { attribution: e.GRIDIRON_LOGS, socket: resolve(dataDir, "logs.sock") },
    workerdConfigPath: resolve(dataDir, "workerd", "config.capnp"),
    /** Gridiron's authenticated front for Restate's admin API. */
    adminUrl: `http://${reachable}:${e.GRIDIRON_ADMIN_PORT}`,
    ingressUrl: `http://${reachable}:${e.GRIDIRON_INGRESS_PORT}`,
    /** Cell 0's workerd (workerd/cells.ts has every cell's). */
    workerdUrl: `http://${local}:${e.GRIDIRON_WORKERD_PORT}`,
    deployerUrl: `http://${local}:${e.GRIDIRON_DEPLOYER_PORT}`,
    opsUrl: `http://${reachable}:${e.GRIDIRON_OPS_PORT}`,
  };
}

type Env = z.infer<typeof EnvSchema>;

/** This node's membership when it runs in a cluster; a half-configured cluster is an error. */
function clusterOf(e: Env): ClusterMembership | undefined {
  const fail = (problem: string) => {
    throw new Error(`invalid environment: ${problem}`);
  };
  if (!e.GRIDIRON_NODE_NAME && !e.GRIDIRON_CLUSTER_PEERS) return undefined;
  if (!e.GRIDIRON_NODE_NAME || !e.GRIDIRON_CLUSTER_PEERS) {
    return fail("a cluster node needs both GRIDIRON_NODE_NAME and GRIDIRON_CLUSTER_PEERS");
  }
  // Every node's deployer checks the token on calls that another node's deployer may have sent.
  if (!e.GRIDIRON_ADMIN_TOKEN) {
    return fail("a cluster node needs GRIDIRON_ADMIN_TOKEN, the same on every node (e.g. `openssl rand -hex 32`)");
  }
  // Secrets are sealed to one key, and any node's router may have to open them.
  if (!e.GRIDIRON_SECRETS_KEY_FILE) {
    return fail(
      "a cluster node needs GRIDIRON_SECRETS_KEY_FILE, a copy of the same private key on every node (generated on the first node's first start if missing there)",
    );
  }
  const membership = parseMembership(e.GRIDIRON_CLUSTER_PEERS, e.GRIDIRON_NODE_NAME);
  return "error" in membership ? fail(membership.error) : membership;
}
