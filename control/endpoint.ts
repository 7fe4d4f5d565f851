import { createServer } from "node:http2";
import * as restate from "@restatedev/restate-sdk";
import { deployerObject } from "./deployer.ts";
import { routesObject } from "./routes.ts";
import type { Settings } from "./settings.ts";

/** Serves the control plane's Restate services (`deployer`, `routes`) over HTTP/2. */
export async function serveDeployer(settings: Settings): Promise<void> {
  const handler = restate.createEndpointHandler({ services: [deployerObject(settings), routesObject(settings)] });
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(settings.ports.deployer, settings.bind, resolve);
  });
  // Restate holds its HTTP/2 connections open, so a graceful close would wait forever; whatever
  // was running is retried by Restate from its journal.
  const stop = () => process.exit(0);
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
