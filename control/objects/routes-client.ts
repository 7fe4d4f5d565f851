import * as clients from "@restatedev/restate-sdk-clients";
import { routesClient } from "../contracts.ts";
import { adminHeaders } from "../credentials/admin-token.ts";
import type { Routes } from "../domain/route-changes.ts";
import type { Quarantine } from "./routes.ts";

/* The `routes` object (routes.ts) as the node reaches it, apart so that the supervisor does not load the SDK. */

/** A node asking what to serve gives up after this long, and asks again (or another peer). */
const ROUTES_CALL_TIMEOUT_MS = 10_000;

/** The builds the `routes` object routes, and their revision, asked through an ingress (any node's) with the admin token. */
export async function routedBuilds(ingressUrl: string, adminToken: string): Promise<Routes> {
  return await routesClient(clients.connect({ url: ingressUrl, headers: adminHeaders(adminToken) })).served(
    clients.rpc.opts({ timeout: ROUTES_CALL_TIMEOUT_MS }),
  );
}

/** Quarantines a bundle that hung its cell (placement.ts), asked through an ingress with the admin token. */
export async function quarantineBundle(ingressUrl: string, adminToken: string, quarantined: Quarantine): Promise<void> {
  await routesClient(clients.connect({ url: ingressUrl, headers: adminHeaders(adminToken) })).quarantine(
    quarantined,
    clients.rpc.opts({ timeout: ROUTES_CALL_TIMEOUT_MS }),
  );
}
