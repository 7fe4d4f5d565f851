import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";

/**
 * A private network of hosts on one machine, for the local cluster: one network namespace per
 * node, each with its own loopback and a veth into a bridge in the host's namespace, so the host
 * reaches every node at its address and a node's 127.0.0.1 is its own. Needs root (iproute2).
 */
export interface Network {
  /** Prefix of every namespace, link and bridge name, so two networks never collide. */
  prefix: string;
  /** The first three octets of the /24 the nodes live on; the host is .254. */
  subnet: string;
}

export const namespaceOf = (net: Network, node: string) => `${net.prefix}-${node}`;
const bridgeOf = (net: Network) => `${net.prefix}-br`;
/** The host's end of a node's veth. */
const vethOf = (net: Network, node: string) => `${namespaceOf(net, node)}-h`;
const hostAddress = (net: Network) => `${net.subnet}.254`;
export const nodeAddressOf = (net: Network, index: number) => `${net.subnet}.${index + 1}`;

const ip = (...args: string[]) => execa("ip", args);

async function namespaces(): Promise<string[]> {
  const { stdout } = await ip("-j", "netns", "list");
  return stdout.trim() ? (JSON.parse(stdout) as { name: string }[]).map((n) => n.name) : [];
}

export async function namespaceExists(net: Network, node: string): Promise<boolean> {
  return (await namespaces()).includes(namespaceOf(net, node));
}

/** The bridge, up, with the host's address on it. */
export async function createBridge(net: Network): Promise<void> {
  await ip("link", "add", bridgeOf(net), "type", "bridge");
  await ip("addr", "add", `${hostAddress(net)}/24`, "dev", bridgeOf(net));
  await ip("link", "set", bridgeOf(net), "up");
}

/** A namespace for `node` at `address`, its loopback up and a veth into the bridge. */
export async function createHost(net: Network, node: string, address: string): Promise<void> {
  const ns = namespaceOf(net, node);
  const outside = vethOf(net, node);
  await ip("netns", "add", ns);
  await ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns);
  await ip("link", "set", outside, "master", bridgeOf(net), "up");
  await ip("-n", ns, "addr", "add", `${address}/24`, "dev", "eth0");
  await ip("-n", ns, "link", "set", "eth0", "up");
  await ip("-n", ns, "link", "set", "lo", "up");
}

/** Every process running in `node`'s namespace. */
export async function pidsIn(net: Network, node: string): Promise<number[]> {
  if (!(await namespaceExists(net, node))) return [];
  const { stdout } = await ip("netns", "pids", namespaceOf(net, node));
  return stdout.split("\n").filter(Boolean).map(Number);
}

/** SIGKILLs every process in `node`'s namespace, until none is left. */
export async function killAllIn(net: Network, node: string): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = await pidsIn(net, node);
    if (pids.length === 0) return;
    signalAll(pids, "SIGKILL");
    await sleep(100);
  }
  throw new Error(`processes in ${namespaceOf(net, node)} survived SIGKILL`);
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/**
 * Stops every process in `node`'s namespace as a service manager would: SIGTERM, time to shut down
 * cleanly, then SIGKILL for whatever is left.
 */
export async function stopAllIn(net: Network, node: string, graceMs = 30_000): Promise<void> {
  signalAll(await pidsIn(net, node), "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && (await pidsIn(net, node)).length > 0) await sleep(200);
  await killAllIn(net, node);
}

/**
 * Kills everything in the network and removes it: veths, namespaces, then the bridge. The veths go
 * first and by name: a deleted namespace lingers in the kernel while its sockets wind down, and
 * its veth with it, which would block the next network of the same names.
 */
export async function removeNetwork(net: Network, nodes: string[]): Promise<void> {
  for (const node of nodes) {
    if (await namespaceExists(net, node)) {
      await killAllIn(net, node);
      await ip("netns", "delete", namespaceOf(net, node));
    }
    await ip("link", "delete", vethOf(net, node)).catch(() => {});
  }
  await ip("link", "delete", bridgeOf(net)).catch(() => {});
}
