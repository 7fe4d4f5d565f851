import type { IncomingMessage, Server } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { Registry } from "prom-client";
import { closeServer } from "../close-server.ts";
import { dashboardApp } from "../dashboard/app.ts";
import { serveCollector } from "../logs/collector.ts";
import { logRoutes } from "../logs/routes.ts";
import { LogStore } from "../logs/store.ts";
import type { NodeAgent } from "../node/node-agent.ts";
import type { Settings } from "../settings.ts";
import { cached } from "./cached.ts";
import { budgetConnections } from "./connection-budget.ts";
import { healthReport, livenessChecks, readinessChecks, runChecks } from "./health.ts";
import { type OpsProcess, opsRegistry } from "./metrics.ts";

/** One look at the mesh serves every /readyz for this long, so probing it cannot load Restate. */
const READY_CACHE_MS = 1_000;
/** Plenty for a scrape; a client slower than this is cut off. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A probe, a scraper or a browser sends its headers at once; a connection that trickles them is cut off. */
const HEADERS_TIMEOUT_MS = 3_000;
/** A kept-alive connection with no request for this long is closed. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How often Node looks for connections past those timeouts (its default, 30 s, would let them linger). */
const TIMEOUT_CHECK_MS = 500;
/**
 * Bounds the file descriptors a flood of connections can take from the process serving this;
 * when they are all taken, a slow or idle one gives way to a newcomer (connection-budget.ts).
 */
const MAX_CONNECTIONS = 64;
/** The dashboard's forms are a few fields; nothing posted here needs more. */
const MAX_BODY_BYTES = 16 * 1024;
const PROBES = ["/metrics", "/livez", "/readyz", "/node"];
/** By the request line alone (no URL parsing, which could throw on what a client sends). */
const isProbe = (request: IncomingMessage) =>
  (request.method === "GET" || request.method === "HEAD") && PROBES.includes(request.url?.split("?")[0] ?? "");

export interface OpsServer {
  close(): Promise<void>;
}

/**
 * The operations port: `/metrics` for Prometheus, `/livez` and `/readyz`, and the deployments
 * dashboard at `/`. The probes are read-only (GET and HEAD) and answer with bundle names, build
 * ids, counts and fixed sentences only. The dashboard reads what `status` shows to anyone; its
 * actions need a session signed in with the admin token (dashboard/app.ts). On a cluster node,
 * `/node` says which builds this node serves, for its peers' deployers. Binds like the ingress,
 * since whoever runs the mesh scrapes and opens it from elsewhere.
 */
export async function serveOps(
  settings: Settings,
  servedBy: OpsProcess,
  adminToken: string,
  agent?: NodeAgent,
): Promise<OpsServer> {
  // This node's builds' lines and call outcomes, from the live workerd's builds (logs/).
  const logs = new LogStore(settings.cluster?.self.name);
  const collector = settings.logs.attribution ? await serveCollector(settings.logs.socket, logs) : undefined;
  const registry = Registry.merge([opsRegistry(settings, servedBy), logs.registry]);
  const ready = cached(() => runChecks(readinessChecks(settings, agent)), READY_CACHE_MS);
  const text = (report: { status: number; body: string }) =>
    new Response(report.body, { status: report.status, headers: { "content-type": "text/plain; charset=utf-8" } });

  const app = new Hono();
  app.get(
    "/metrics",
    async () => new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } }),
  );
  app.get("/livez", async (c) =>
    text(healthReport("livez", await runChecks(livenessChecks), c.req.query("verbose") !== undefined)),
  );
  app.get("/readyz", async (c) => text(healthReport("readyz", await ready(), c.req.query("verbose") !== undefined)));
  app.get("/node", (c) => (agent ? c.json(agent.report()) : c.text("not a cluster node\n", 404)));
  app.all("/metrics", probeOnly);
  app.all("/livez", probeOnly);
  app.all("/readyz", probeOnly);
  app.all("/node", probeOnly);
  app.route("/", logRoutes(logs, adminToken));
  app.use(bodyLimit({ maxSize: MAX_BODY_BYTES }));
  app.route("/", dashboardApp(settings, adminToken, logs));
  app.notFound((c) => c.text(`not found: try /, ${PROBES.join(", ")}\n`, 404));
  // A refusal a middleware throws (a cross-site post: 403, a body over the limit: 413) keeps its status.
  app.onError((error, c) => (error instanceof HTTPException ? error.getResponse() : c.text("internal error\n", 500)));

  const server = createAdaptorServer({
    fetch: app.fetch,
    serverOptions: {
      requestTimeout: REQUEST_TIMEOUT_MS,
      headersTimeout: HEADERS_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: TIMEOUT_CHECK_MS,
    },
  }) as Server;
  budgetConnections(server, MAX_CONNECTIONS, isProbe);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(settings.ports.ops, settings.bind, resolve);
  });
  return { close: async () => void (await Promise.all([closeServer(server), collector?.close()])) };
}

function probeOnly(): Response {
  return new Response("GET or HEAD only\n", {
    status: 405,
    headers: { allow: "GET, HEAD", "content-type": "text/plain" },
  });
}
