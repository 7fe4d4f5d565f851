import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { openSync } from "node:fs";
import { appendFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { generateSecretsKey } from "../../control/credentials/secrets-key.ts";
import { OWN_NODE_FLAGS } from "../../control/node/node-flags.ts";
import { loadSettings } from "../../control/settings.ts";
import { answers, waitFor } from "../../control/wait.ts";
import { makeCa, makeNodeCertificate } from "./certificates.ts";
import {
  createBridge,
  createHost,
  killAllIn,
  type Network,
  namespaceExists,
  namespaceOf,
  nodeAddressOf,
  pidsIn,
  removeNetwork,
  stopAllIn,
} from "./netns.ts";

/**
 * A cluster of Gridiron nodes on this machine, each in a network namespace of its own, for users
 * to try and for the tests: three at first, more added while it runs. Every node runs `npm start`
 * with cluster settings; the host reaches each at its address on a private bridge.
 */

/** The nodes `up` starts; `addNode` adds n4, n5, ... */
export const LOCAL_NODES = ["n1", "n2", "n3"] as const;
/** Node `nK` is at `.K` on the bridge; the host is .254. */
const NODE_NAME = /^n([1-9][0-9]?)$/;
const MAIN = new URL("../../control/main.ts", import.meta.url).pathname;
const READY_TIMEOUT_MS = 180_000;

export interface LocalCluster {
  /** Where the nodes' data dirs, logs and the admin token live. */
  dir: string;
  net: Network;
  /** More settings for every node (the tests' shorter retention, say). */
  nodeEnv?: Record<string, string>;
}

export interface NodeInfo {
  name: string;
  address: string;
  ingress: string;
  admin: string;
  ops: string;
  alive: boolean;
}

/** The local cluster these settings describe: `GRIDIRON_LOCAL_CLUSTER_*`, for a second one beside it. */
export function localCluster(env: NodeJS.ProcessEnv = process.env): LocalCluster {
  return {
    dir: resolve(env.GRIDIRON_LOCAL_CLUSTER_DIR ?? ".gridiron-cluster"),
    net: { prefix: env.GRIDIRON_LOCAL_CLUSTER_PREFIX ?? "grd", subnet: env.GRIDIRON_LOCAL_CLUSTER_SUBNET ?? "10.77.0" },
  };
}

function addressOf(cluster: LocalCluster, node: string): string {
  const index = NODE_NAME.exec(node)?.[1];
  if (!index) throw new Error(`"${node}" is not a local cluster node's name (n1, n2, ...)`);
  return nodeAddressOf(cluster.net, Number(index) - 1);
}

export function nodeInfo(cluster: LocalCluster, node: string, alive: boolean): NodeInfo {
  const address = addressOf(cluster, node);
  // Every node has the ports its settings give, from the environment it is started with.
  const { ports } = loadSettings({ ...portSettings(process.env), ...portSettings(cluster.nodeEnv ?? {}) });
  return {
    name: node,
    address,
    ingress: `http://${address}:${ports.ingress}`,
    admin: `http://${address}:${ports.admin}`,
    ops: `http://${address}:${ports.ops}`,
    alive,
  };
}

/** The port settings among `env`: the only ones the host needs to reach a node. */
function portSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => /^GRIDIRON_[A-Z]+_PORT$/.test(key)));
}

async function checkNodeName(cluster: LocalCluster, node: string): Promise<void> {
  const members = await memberNodes(cluster);
  if (!members.includes(node)) {
    throw new Error(`no node "${node}" in the local cluster: its nodes are ${members.join(", ")}`);
  }
}

/** Where the cluster's member nodes are listed, one a line, in the order of their peer list. */
const membersPath = (cluster: LocalCluster) => join(cluster.dir, "nodes");

/** The cluster's nodes: those `up` started and any added since (the first three if none is listed). */
export async function memberNodes(cluster: LocalCluster): Promise<string[]> {
  const listed = await readFile(membersPath(cluster), "utf8").catch(() => "");
  const names = listed.split("\n").filter(Boolean);
  return names.length > 0 ? names : [...LOCAL_NODES];
}

export const tokenPath = (cluster: LocalCluster) => join(cluster.dir, "admin-token");
/** One secrets key for every node, as the token: any node's router opens any bundle's secrets. */
const secretsKeyPath = (cluster: LocalCluster) => join(cluster.dir, "secrets-key.pem");
export const logPath = (cluster: LocalCluster, node: string) => join(cluster.dir, `${node}.log`);
/** The cluster's CA: its key never goes into a node's data dir. */
export const caDir = (cluster: LocalCluster) => join(cluster.dir, "ca");
/** A node's TLS files: GRIDIRON_CLUSTER_TLS_DIR's default under its data dir. */
export const tlsDir = (cluster: LocalCluster, node: string) => join(cluster.dir, node, "cluster-tls");

export async function readToken(cluster: LocalCluster): Promise<string> {
  return (await readFile(tokenPath(cluster), "utf8")).trim();
}

/**
 * Creates the cluster's dir, admin token, keys, certificates and network, starting no node: `up`
 * then starts them all, a test may start them one by one.
 */
export async function create(cluster: LocalCluster): Promise<void> {
  if (await namespaceExists(cluster.net, LOCAL_NODES[0])) {
    throw new Error(
      "the local cluster is already up: `npx just cluster-nodes` lists it, `npx just cluster-down` removes it",
    );
  }
  await mkdir(cluster.dir, { recursive: true, mode: 0o700 });
  await writeFile(membersPath(cluster), `${LOCAL_NODES.join("\n")}\n`);
  await writeFile(tokenPath(cluster), `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });
  await makeCertificates(cluster);
  await rm(secretsKeyPath(cluster), { force: true });
  await generateSecretsKey(secretsKeyPath(cluster));
  try {
    await createBridge(cluster.net);
    for (const node of LOCAL_NODES) await createHost(cluster.net, node, addressOf(cluster, node));
  } catch (error) {
    await removeNetwork(cluster.net, [...LOCAL_NODES]);
    throw error;
  }
}

/** Creates the network and starts every node; resolves when each is ready (see /readyz). */
export async function up(cluster: LocalCluster, log: (line: string) => void): Promise<NodeInfo[]> {
  await create(cluster);
  try {
    for (const node of LOCAL_NODES) await startNode(cluster, node, log);
    await Promise.all(LOCAL_NODES.map((node) => waitReady(cluster, node, log)));
  } catch (error) {
    // Stop everything, but keep the logs to read: `down` removes them.
    log(`[cluster] ${error instanceof Error ? error.message : String(error)}; stopping every node`);
    await removeNetwork(cluster.net, [...LOCAL_NODES]);
    throw error;
  }
  return nodes(cluster);
}

/**
 * Adds the next node (n4, then n5, ...) to the running cluster, as an operator would: the new
 * node goes last in every node's peer list, so it never provisions; each running node is
 * restarted in turn with that list (its TLS then takes the new node's certificate, and its
 * deployer waits for the new node too), and the new node starts last. It fetches the builds from
 * a peer before its restate-server starts, which joins Restate's metadata cluster on its own.
 */
export async function addNode(cluster: LocalCluster, log: (line: string) => void): Promise<NodeInfo> {
  const members = await memberNodes(cluster);
  const node = `n${members.length + 1}`;
  await makeNodeCertificate(caDir(cluster), node, addressOf(cluster, node), tlsDir(cluster, node));
  await createHost(cluster.net, node, addressOf(cluster, node));
  await appendFile(membersPath(cluster), `${node}\n`);
  for (const member of members) {
    if ((await pidsIn(cluster.net, member)).length === 0) continue;
    log(`[cluster] restarting ${member} with ${node} among its peers`);
    await stopAllIn(cluster.net, member);
    await startNode(cluster, member, log);
    await waitReady(cluster, member, log);
  }
  await startNode(cluster, node, log);
  await waitReady(cluster, node, log);
  return nodeInfo(cluster, node, true);
}

/** The cluster's CA, and each node's certificate in its data dir, where the node looks by default. */
async function makeCertificates(cluster: LocalCluster): Promise<void> {
  await makeCa(caDir(cluster), "gridiron-local-cluster-ca");
  for (const node of LOCAL_NODES) {
    await makeNodeCertificate(caDir(cluster), node, addressOf(cluster, node), tlsDir(cluster, node));
  }
}

/**
 * Starts `node`'s Gridiron in its namespace, detached, its output in `<dir>/<node>.log`. `env`
 * overrides its settings (the tests' wrong token, say).
 */
export async function startNode(
  cluster: LocalCluster,
  node: string,
  log: (line: string) => void,
  env: Record<string, string> = {},
): Promise<void> {
  await checkNodeName(cluster, node);
  if ((await pidsIn(cluster.net, node)).length > 0) throw new Error(`node ${node} is already running`);
  const peers = (await memberNodes(cluster)).map((n) => `${n}=${addressOf(cluster, n)}`).join(",");
  const output = openSync(logPath(cluster, node), "a");
  log(`[cluster] starting ${node} at ${addressOf(cluster, node)} (log: ${logPath(cluster, node)})`);
  // A detached child (node's own spawn: execa cannot leave one running past its parent).
  const child = spawn(
    "ip",
    ["netns", "exec", namespaceOf(cluster.net, node), process.execPath, ...OWN_NODE_FLAGS, MAIN, "start"],
    {
      env: {
        ...process.env,
        ...cluster.nodeEnv,
        GRIDIRON_DATA_DIR: join(cluster.dir, node),
        GRIDIRON_BIND: "0.0.0.0",
        GRIDIRON_NODE_NAME: node,
        GRIDIRON_CLUSTER_PEERS: peers,
        GRIDIRON_ADMIN_TOKEN: await readToken(cluster),
        ...env,
        GRIDIRON_SECRETS_KEY_FILE: secretsKeyPath(cluster),
      },
      stdio: ["ignore", output, output],
      detached: true,
    },
  );
  child.unref();
}

export async function waitReady(cluster: LocalCluster, node: string, log: (line: string) => void): Promise<void> {
  const { ops } = nodeInfo(cluster, node, false);
  await waitFor(`node ${node} (see ${logPath(cluster, node)})`, () => answers(`${ops}/readyz`), READY_TIMEOUT_MS, {
    pollMs: 500,
  });
  log(`[cluster] ${node} is ready`);
}

/** Every node, and whether it is ready right now. */
export async function nodes(cluster: LocalCluster): Promise<NodeInfo[]> {
  return Promise.all(
    (await memberNodes(cluster)).map(async (node) => {
      const running = (await pidsIn(cluster.net, node)).length > 0;
      const ready = running && (await answers(`${nodeInfo(cluster, node, false).ops}/readyz`, { timeoutMs: 1_000 }));
      return nodeInfo(cluster, node, ready);
    }),
  );
}

/** SIGKILLs every process of `node`, as a machine lost would. */
export async function killNode(cluster: LocalCluster, node: string): Promise<void> {
  await checkNodeName(cluster, node);
  await killAllIn(cluster.net, node);
}

/** Stops every node and removes the network and the cluster's dir: nothing is left behind. */
export async function down(cluster: LocalCluster): Promise<void> {
  await removeNetwork(cluster.net, await memberNodes(cluster));
  await rm(cluster.dir, { recursive: true, force: true });
}
