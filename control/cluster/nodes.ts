import { request } from "undici";
import { z } from "zod";
import type { Build } from "../bundle.ts";
import type { Settings } from "../settings.ts";
import { waitFor } from "../wait.ts";
import type { NodeReport } from "./agent.ts";
import type { Peer } from "./peers.ts";
import { storeKey } from "./store.ts";

/** A node slower than this to say what it serves is taken for down. */
const ASK_TIMEOUT_MS = 1_000;
/** Long enough for a node to fetch a 50 MB build from the store on a busy machine. */
const SERVE_TIMEOUT_MS = 120_000;

const Report = z.object({ node: z.string(), builds: z.array(z.string()), caughtUp: z.boolean() });

export interface PeerState {
  peer: Peer;
  /** Undefined when the node did not answer: it is down, or cut off. */
  report: NodeReport | undefined;
}

/** What every node of the cluster serves right now, asked of each node's ops port (`/node`). */
export function askNodes(settings: Settings): Promise<PeerState[]> {
  const peers = settings.cluster?.peers ?? [];
  return Promise.all(peers.map(async (peer) => ({ peer, report: await ask(settings, peer) })));
}

async function ask(settings: Settings, peer: Peer): Promise<NodeReport | undefined> {
  try {
    const { statusCode, body } = await request(`http://${peer.address}:${settings.ports.ops}/node`, {
      headersTimeout: ASK_TIMEOUT_MS,
      bodyTimeout: ASK_TIMEOUT_MS,
    });
    if (statusCode !== 200) {
      await body.dump();
      return undefined;
    }
    const report = Report.safeParse(await body.json());
    return report.success ? report.data : undefined;
  } catch {
    return undefined;
  }
}

/** The nodes that answer but do not serve `build` yet. */
export function lagging(states: PeerState[], build: Pick<Build, "name" | "buildId">): string[] {
  return states.filter((s) => s.report && !s.report.builds.includes(storeKey(build))).map((s) => s.peer.name);
}

/** For each build of bundle `name` some node serves: the nodes serving it. */
export function servingNodes(states: PeerState[], name: string): Record<string, string[]> {
  const serving: Record<string, string[]> = {};
  for (const { peer, report } of states) {
    for (const key of report?.builds ?? []) {
      const [bundle, buildId] = key.split("@");
      if (bundle === name && buildId) serving[buildId] = [...(serving[buildId] ?? []), peer.name];
    }
  }
  return serving;
}

/**
 * Waits until every node that answers serves `build`: a node that is down catches up before its
 * restate-server starts, so it needs no waiting for. Returns the nodes that serve it.
 */
export async function waitUntilServed(settings: Settings, build: Pick<Build, "name" | "buildId">): Promise<string[]> {
  let states: PeerState[] = [];
  try {
    await waitFor(
      `every live node serving ${storeKey(build)}`,
      async () => {
        states = await askNodes(settings);
        return lagging(states, build).length === 0;
      },
      SERVE_TIMEOUT_MS,
      { pollMs: 250 },
    );
  } catch {
    throw new Error(
      `node(s) ${lagging(states, build).join(", ")} did not serve ${storeKey(build)} within ${SERVE_TIMEOUT_MS / 1000} s`,
    );
  }
  return states.filter((s) => s.report).map((s) => s.peer.name);
}
