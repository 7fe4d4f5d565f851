import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Settings } from "../settings.ts";
import { cached } from "./cached.ts";
import { healthReport, livenessChecks, readinessChecks, runChecks } from "./health.ts";
import { type OpsProcess, opsRegistry } from "./metrics.ts";

/** One look at the mesh serves every /readyz for this long, so probing it cannot load Restate. */
const READY_CACHE_MS = 1_000;
/** Plenty for a scrape; a client slower than this, or holding a connection idle, is cut off. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Bounds the file descriptors a flood of connections can take from the process serving this. */
const MAX_CONNECTIONS = 64;

export interface OpsServer {
  close(): Promise<void>;
}

/**
 * The operations port: `/metrics` for Prometheus, `/livez` and `/readyz`. Read-only by design:
 * GET and HEAD only, no request body read, no action, and nothing in an answer but bundle names,
 * build ids, counts and fixed sentences (no token, path or error text). Binds like the ingress,
 * since whoever runs the mesh scrapes it from elsewhere.
 */
export async function serveOps(settings: Settings, servedBy: OpsProcess): Promise<OpsServer> {
  const registry = opsRegistry(settings, servedBy);
  const readiness = readinessChecks(settings);
  const ready = cached(() => runChecks(readiness), READY_CACHE_MS);
  const routes: Record<string, (verbose: boolean) => Promise<{ status: number; type: string; body: string }>> = {
    "/metrics": async () => ({ status: 200, type: registry.contentType, body: await registry.metrics() }),
    "/livez": async (verbose) => plain(healthReport("livez", await runChecks(livenessChecks), verbose)),
    "/readyz": async (verbose) => plain(healthReport("readyz", await ready(), verbose)),
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const url = new URL(req.url ?? "/", "http://ops");
    const route = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return void res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("GET or HEAD only\n");
    }
    if (!route) {
      return void res
        .writeHead(404, { "content-type": "text/plain" })
        .end("not found: try /metrics, /livez or /readyz\n");
    }
    route(url.searchParams.has("verbose")).then(
      ({ status, type, body }) =>
        res.writeHead(status, { "content-type": type }).end(req.method === "HEAD" ? "" : body),
      () => res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n"),
    );
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(settings.ports.ops, settings.bind, resolve);
  });
  return { close: () => close(server) };
}

function plain({ status, body }: { status: number; body: string }) {
  return { status, type: "text/plain; charset=utf-8", body };
}

/** Stops listening and ends open connections too: a scraper's keep-alive must not hold up a stop. */
function close(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}
