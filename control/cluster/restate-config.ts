import type { ClusterMembership } from "./peers.ts";
import type { ClusterTlsFiles } from "./tls.ts";

/** Copies of each log record and of each partition's state: one node may be lost. */
const REPLICATION = 2;

/** `address:port`, with an IPv6 address in brackets. */
export function hostPort(address: string, port: number): string {
  return `${address.includes(":") ? `[${address}]` : address}:${port}`;
}

/**
 * Where a peer's restate-server takes node-to-node traffic (Restate's "advertised address"):
 * `https://`, which tells its peers to dial it with TLS.
 */
export function nodeAddress(address: string, port: number): string {
  return `https://${hostPort(address, port)}/`;
}

/**
 * Restate's `[tls]` for the node port: TLS only (`require`: plaintext is refused), and a client
 * must present a certificate the cluster's CA signed whose name is one of the peers'. The same
 * certificate is this node's server and client identity; a node dialing a peer checks that
 * peer's name the same way.
 */
function tlsSection(cluster: ClusterMembership, tls: ClusterTlsFiles): string[] {
  return [
    "[tls]",
    'mode = "require"',
    `cert-file = ${JSON.stringify(tls.cert)}`,
    `key-file = ${JSON.stringify(tls.key)}`,
    `ca-files = [${JSON.stringify(tls.ca)}]`,
    "require-client-auth = true",
    `allowed-subject-names = [${cluster.peers.map((p) => JSON.stringify(p.name)).join(", ")}]`,
  ];
}

/** Where Restate keeps partition snapshots: an s3:// URL, and the endpoint of a store other than AWS. */
export interface SnapshotRepository {
  destination: string;
  endpoint: string | undefined;
}

/**
 * Restate's `[worker.snapshots]`. Credentials and region come from restate-server's environment
 * (the AWS SDK's chain, as for Gridiron's own S3 calls); a store other than AWS needs its endpoint
 * in the file, and `aws-allow-http` when that is plain http. Restate addresses it path-style.
 */
function snapshotsSection(snapshots: SnapshotRepository): string[] {
  const { destination, endpoint } = snapshots;
  return [
    "",
    "[worker.snapshots]",
    `destination = ${JSON.stringify(destination)}`,
    ...(endpoint ? [`aws-endpoint-url = ${JSON.stringify(endpoint)}`] : []),
    ...(endpoint?.startsWith("http://") ? ["aws-allow-http = true"] : []),
  ];
}

/**
 * restate-server's config for one node of a cluster: Gridiron's own settings (`base`, the text of
 * config/restate.toml) with replicated metadata and log, the first peer provisioning, mutual TLS
 * between the nodes, and the snapshot repository if there is one. TOML keys before the first table are top-level, hence the
 * order.
 */
export function restateClusterConfig(
  base: string,
  cluster: ClusterMembership,
  port: number,
  tls: ClusterTlsFiles,
  snapshots: SnapshotRepository | undefined,
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
    "",
    ...tlsSection(cluster, tls),
    ...(snapshots ? snapshotsSection(snapshots) : []),
    "",
  ].join("\n");
}
