import { execa } from "execa";
import { z } from "zod";
import { binaries } from "../node/binaries.ts";
import type { Settings } from "../settings.ts";
import { askNodes } from "./nodes.ts";
import { nodeAddress } from "./restate-config.ts";
import { restatectlTlsArgs } from "./tls.ts";

const RESTATECTL_TIMEOUT_MS = 5_000;

/** One node of the cluster as `status` and `gridiron nodes` show it. */
export interface ClusterNode {
  name: string;
  address: string;
  /** Restate's view: the node is a live member of the cluster. */
  alive: boolean;
  /** Partitions whose leader runs on this node. */
  partitionsLed: number;
  /** Whether the node's agent answered (on its ops port, `/node`). */
  answers: boolean;
  /** Builds (`{name}@{buildId}`) this node's workerd serves; empty when it does not answer. */
  builds: string[];
  /** Whether the node's agent has served what the cluster routes since it started. */
  caughtUp: boolean;
}

const MemberRow = z.object({ name: z.string(), state: z.string(), led: z.number() });

/**
 * Restate's membership and leadership, from restatectl's SQL over the node port (the admin API
 * has neither), joined with what each node's agent says it serves.
 */
export async function clusterNodes(
  settings: Pick<Settings, "cluster" | "clusterPort" | "clusterTls" | "ports">,
): Promise<ClusterNode[]> {
  const cluster = settings.cluster;
  if (!cluster) return [];
  const [members, served] = await Promise.all([restateMembers(settings), askNodes(settings)]);
  return cluster.peers.map((peer) => {
    const member = members.find((m) => m.name === peer.name);
    const report = served.find((s) => s.peer.name === peer.name)?.report;
    return {
      name: peer.name,
      address: peer.address,
      alive: member?.state === "alive",
      partitionsLed: member?.led ?? 0,
      answers: report !== undefined,
      builds: report?.builds ?? [],
      caughtUp: report?.caughtUp ?? false,
    };
  });
}

async function restateMembers(
  settings: Pick<Settings, "cluster" | "clusterPort" | "clusterTls">,
): Promise<z.infer<typeof MemberRow>[]> {
  const addresses = (settings.cluster?.peers ?? []).map((p) => nodeAddress(p.address, settings.clusterPort));
  const query = `SELECT n.name, n.state, (SELECT COUNT(*) FROM partition_state p WHERE p.plain_node_id = n.plain_node_id AND p.effective_mode = 'Leader') AS led FROM nodes n`;
  // As this node: the node port takes only mutual TLS.
  const args = ["-s", addresses.join(","), ...restatectlTlsArgs(settings.clusterTls), "sql", "--json", query];
  const { stdout } = await execa(binaries.restatectl(), args, { timeout: RESTATECTL_TIMEOUT_MS });
  return z.array(MemberRow).parse(JSON.parse(stdout));
}
