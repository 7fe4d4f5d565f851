import { buildKey, parseBuildKey } from "../contracts.ts";
import type { Build } from "../domain/bundle.ts";
import { NodeReport } from "../node/node-agent.ts";
import type { Settings } from "../settings.ts";
import { answerOf, waitFor } from "../wait.ts";
import type { Peer } from "./peers.ts";

/** What asking the nodes needs of the settings: the peers, and the ops port each answers on. */
type PeerSettings = Pick<Settings, "cluster" | "ports">;

/** A node slower than this to say what it serves is taken for down. */
const ASK_TIMEOUT_MS = 1_000;
/** Long enough for a node to fetch a 50 MB build from the store on a busy machine. */
const SERVE_TIMEOUT_MS = 120_000;

export interface PeerState {
  peer: Peer;
  /** Undefined when the node did not answer: it is down, or cut off. */
  report: NodeReport | undefined;
}

/** What every node of the cluster serves right now, asked of each node's ops port (`/node`). */
export function askNodes(settings: PeerSettings): Promise<PeerState[]> {
  const peers = settings.cluster?.peers ?? [];
  return Promise.all(
    peers.map(async (peer) => ({
      peer,
      report: await answerOf(`http://${peer.address}:${settings.ports.ops}/node`, NodeReport, ASK_TIMEOUT_MS),
    })),
  );
}

/** Whether a node is to serve a build (it was routed) or no longer serve it (it was unrouted). */
export type Wanted = "served" | "gone";

/** Whether `report` shows the node serving `build` as `wanted`. */
export function follows(report: NodeReport, build: Pick<Build, "name" | "buildId">, wanted: Wanted): boolean {
  return report.builds.includes(buildKey(build)) === (wanted === "served");
}

/** The nodes that answer but do not serve `build` yet (or, `wanted` "gone", still serve it). */
export function lagging(
  states: PeerState[],
  build: Pick<Build, "name" | "buildId">,
  wanted: Wanted = "served",
): string[] {
  return states.filter((s) => s.report && !follows(s.report, build, wanted)).map((s) => s.peer.name);
}

/** For each build of bundle `name` some node serves: the nodes serving it. */
export function servingNodes(states: PeerState[], name: string): Record<string, string[]> {
  const serving: Record<string, string[]> = {};
  for (const { peer, report } of states) {
    for (const key of report?.builds ?? []) {
      const build = parseBuildKey(key);
      if (build?.name === name) serving[build.buildId] = [...(serving[build.buildId] ?? []), peer.name];
    }
  }
  return serving;
}

/**
 * Waits until every node that answers serves `build` as `wanted`: a node that is down catches up
 * before its restate-server starts, so it needs no waiting for.
 */
export async function waitForPeers(
  settings: PeerSettings,
  build: Pick<Build, "name" | "buildId">,
  wanted: Wanted,
): Promise<void> {
  let states: PeerState[] = [];
  try {
    await waitFor(
      `every live node following ${buildKey(build)}`,
      async () => {
        states = await askNodes(settings);
        return lagging(states, build, wanted).length === 0;
      },
      SERVE_TIMEOUT_MS,
      { pollMs: 250 },
    );
  } catch {
    const verb = wanted === "served" ? "serve" : "stop serving";
    throw new Error(
      `node(s) ${lagging(states, build, wanted).join(", ")} did not ${verb} ${buildKey(build)} within ${SERVE_TIMEOUT_MS / 1000} s`,
    );
  }
}
