import { createServer } from "node:http2";
import * as restate from "@restatedev/restate-sdk";
import { clusterService } from "../cluster/service.ts";
import { bundlesObject } from "../cluster/store.ts";
import { readAdminToken } from "../credentials/admin-token.ts";
import { identityPublicKey } from "../credentials/request-identity.ts";
import { secretsPublicKey } from "../credentials/secrets-key.ts";
import { rolloutOutcomes } from "../logs/outcomes.ts";
import { trackSessions } from "../node/thread-sessions.ts";
import { quarantineCell } from "../node/workerd/cells.ts";
import { stopProofs, sweepProofs } from "../node/workerd/proof.ts";
import { AdminClient } from "../restate/admin-client.ts";
import type { Settings } from "../settings.ts";
import { waitFor } from "../wait.ts";
import { deployerObject } from "./deployer.ts";
import { routesObject } from "./routes.ts";

const REGISTER_TIMEOUT_MS = 60_000;

export interface DeployerEndpoint {
  /**
   * Stops the proofs it runs, the spare too (their workerd would outlive it), before its caller
   * ends it. Not the server: Restate holds its HTTP/2 connections open, so a graceful close would
   * wait forever; whatever was running is retried by Restate from its journal.
   */
  stop(): Promise<void>;
}

/**
 * Serves the control plane's Restate services (`deployer`, `routes`) over HTTP/2 and registers
 * them with Restate. Re-registering on every start is safe: `force` replaces the previous
 * registration of this uri with whatever this code now declares. Runs as a thread of the
 * supervisor (deployer-thread.ts) or, under runit, as a process of its own (main.ts).
 */
export async function serveDeployer(settings: Settings): Promise<DeployerEndpoint> {
  await sweep(settings);
  const token = await readAdminToken(settings);
  const handler = restate.createEndpointHandler({
    // In a cluster, builds are also stored in Restate for every node to fetch (cluster/store.ts),
    // and `cluster` tells what each node serves.
    services: [
      deployerObject(
        settings,
        token,
        await secretsPublicKey(settings),
        // What an automatic rollout judges a canary by: the builds' outcomes the logs count.
        settings.logs.attribution ? rolloutOutcomes(settings) : undefined,
      ),
      routesObject(token, { cells: settings.cells, quarantineCell: quarantineCell(settings) }),
      ...(settings.cluster ? [bundlesObject(token), clusterService(settings)] : []),
    ],
    // Only restate-server, which signs with the mesh's key, may call the deployer.
    identityKeys: [await identityPublicKey(settings)],
  });
  const server = createServer(handler);
  // Cut before a deployer thread ends (deployer-thread.ts).
  trackSessions(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(settings.ports.deployer, settings.internalBind, resolve);
  });
  // One client for all attempts: a client holds a connection pool (an undici Agent) of its own.
  const admin = new AdminClient({ socketPath: settings.adminSocket });
  await waitFor(
    "registering the deployer with Restate",
    async () => {
      await admin.registerDeployment({
        uri: settings.deployerUrl,
        http11: false,
        force: true,
      });
      return true;
    },
    REGISTER_TIMEOUT_MS,
  );
  console.log(`registered ${settings.deployerUrl} with Restate`);
  return {
    async stop() {
      const stopped = await stopProofs();
      if (stopped) console.log(`stopped ${stopped} running proof(s)`);
    },
  };
}

/**
 * Ends the proofs an earlier deployer left running (each proof's workerd runs in a process group
 * of its own, which outlives a deployer that crashes mid-proof) and removes their dirs.
 */
async function sweep(settings: Pick<Settings, "dataDir">): Promise<void> {
  const { killed, removed } = await sweepProofs(settings.dataDir);
  if (killed || removed) console.log(`killed ${killed} leftover proof workerd(s), removed ${removed} proof dir(s)`);
}
