import type { ClusterMembership } from "./peers.ts";

/** Copies of each log record and of each partition's state: one node may be lost. */
const REPLICATION = 2;

/** `address:port`, with an IPv6 address in brackets. */
export function hostPort(address: string, port: number): string {
  return `${address.includes(":") ? `[${address}]` : address}:${port}`;
}

/** Where a peer's restate-server takes node-to-node traffic (Restate's "advertised address"). */
export function nodeAddress(address: string, port: number): string {
  return `http://${hostPort(address, port)}/`;
}

/**
 * restate-server's config for one node of a cluster: Gridiron's own settings (`base`, the text of
 * config/restate.toml) with replicated metadata and log, the first peer provisioning, and the
 * snapshot repository if there is one. TOML keys before the first table are top-level, hence the
 * order.
 */
export function restateClusterConfig(
  base: string,
  cluster: ClusterMembership,
  port: number,
  snapshots: string | undefined,
): string {
  const replication = Math.min(REPLICATION, cluster.peers.length);
  const addresses = cluster.peers.map((p) => JSON.stringify(nodeAddress(p.address, port)));
  return [
    "# Written by Gridiron from GRIDIRON_NODE_NAME and GRIDIRON_CLUSTER_PEERS on every start.",
    `auto-provision = ${cluster.provisions}`,
    `default-replication = ${replication}`,
    base.trimEnd(),
    "",
    "[bifrost]",
    'default-provider = "replicated"',
    "",
    "[metadata-client]",
    'type = "replicated"',
    `addresses = [${addresses.join(", ")}]`,
    ...(snapshots ? ["", "[worker.snapshots]", `destination = ${JSON.stringify(snapshots)}`] : []),
    "",
  ].join("\n");
}
