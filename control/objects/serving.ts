import { follows, type Wanted, waitForPeers } from "../cluster/nodes.ts";
import { buildKey } from "../contracts.ts";
import type { Build } from "../domain/bundle.ts";
import type { RouteChange } from "../domain/route-changes.ts";
import { tellAgent } from "../node/node-agent.ts";
import type { Settings } from "../settings.ts";

/**
 * The deployer's one way to wait for the nodes after it changed the routes, on one node as on a
 * cluster: this node's agent is told at once, handed `change` (the deployer's change to the routes
 * that `build` is), and answers once it serves the new routes; on a cluster, every other node that
 * answers is then asked until it follows too (their agents poll).
 */
export async function waitForNodes(
  settings: Pick<Settings, "agentSocket" | "cluster" | "ports">,
  build: Pick<Build, "name" | "buildId">,
  wanted: Wanted,
  /** Absent from a call to `routes` journaled before changes were handed: the agent then reads the routes. */
  change?: RouteChange,
): Promise<void> {
  const here = await tellAgent(settings.agentSocket, change);
  if (!follows(here, build, wanted)) {
    // The agent served what `routes` records, and that is not what the deployer just recorded.
    throw new Error(
      `this node's agent serves ${here.builds.length} build(s), not as routed: ${buildKey(build)} ${wanted === "served" ? "missing" : "still served"}`,
    );
  }
  if (settings.cluster) await waitForPeers(settings, build, wanted);
}
