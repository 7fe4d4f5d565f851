import { isIP } from "node:net";

/** A node of the cluster: its name and the address its peers reach it at. */
export interface Peer {
  name: string;
  address: string;
}

/** This node's place in a cluster: who it is, every member, and whether it provisions. */
export interface ClusterMembership {
  self: Peer;
  peers: Peer[];
  /** The first peer listed provisions the cluster; every node must list the peers in one order. */
  provisions: boolean;
}

const NODE_NAME = /^[a-z][a-z0-9-]{0,31}$/;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/**
 * Reads GRIDIRON_CLUSTER_PEERS (`n1=10.0.0.1,n2=10.0.0.2,...`) for the node named `self`, or says
 * what is wrong with it, in words a user can act on.
 */
export function parseMembership(peerList: string, self: string): ClusterMembership | { error: string } {
  const peers: Peer[] = [];
  for (const entry of peerList.split(",").map((e) => e.trim())) {
    const [name, address, ...rest] = entry.split("=");
    if (!name || !address || rest.length) {
      return { error: `GRIDIRON_CLUSTER_PEERS: "${entry}" is not name=address (e.g. n1=10.0.0.1)` };
    }
    if (!NODE_NAME.test(name)) {
      return { error: `GRIDIRON_CLUSTER_PEERS: node name "${name}" must be lowercase letters, digits and -` };
    }
    if (!isIP(address) && !HOST_NAME.test(address)) {
      return { error: `GRIDIRON_CLUSTER_PEERS: "${address}" is not an IP address or host name` };
    }
    if (peers.some((p) => p.name === name)) return { error: `GRIDIRON_CLUSTER_PEERS names node "${name}" twice` };
    if (peers.some((p) => p.address === address)) {
      return { error: `GRIDIRON_CLUSTER_PEERS gives address ${address} to two nodes` };
    }
    peers.push({ name, address });
  }
  const me = peers.find((p) => p.name === self);
  if (!me) {
    return {
      error: `GRIDIRON_NODE_NAME "${self}" is not in GRIDIRON_CLUSTER_PEERS (${peers.map((p) => p.name).join(", ")})`,
    };
  }
  return { self: me, peers, provisions: peers[0] === me };
}
