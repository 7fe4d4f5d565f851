import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { type Dispatcher, Pool } from "undici";
import { authorized, readAdminToken, tokenNeeded } from "../credentials/admin-token.ts";
import type { Settings } from "../settings.ts";
import { controlPlaneTarget, isPublic } from "./ingress-target.ts";

/**
 * Gridiron's front for Restate's ingress: refuse before queueing. Every call Restate's ingress
 * takes becomes an invocation Restate runs, even one the control plane's handler then refuses for
 * want of the admin token, so 3,000 anonymous calls to `deployer/<bundle>/activate` held an admin's
 * deploy up for seconds. So restate-server serves its ingress only on a unix socket in the data
 * dir, and this front, on GRIDIRON_INGRESS_PORT, answers a call to the control plane that needs
 * the token (contracts.ts CONTROL_PLANE) and lacks it with 401 itself, and streams every other
 * request to Restate as it is (no header added).
 */
export async function serveIngressFront(
  settings: Pick<Settings, "adminToken" | "adminTokenPath" | "ingressSocket" | "bind"> & {
    ports: Pick<Settings["ports"], "ingress">;
  },
): Promise<Server> {
  const token = await readAdminToken(settings);
  // The socket is what is dialled; the origin only fills the Host header a client did not send.
  // No timeouts of its own: a call is answered when its handler ends, which may take hours.
  const pool = new Pool("http://localhost", {
    socketPath: settings.ingressSocket,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const refusal = refused(req, token);
    if (refusal) {
      req.resume();
      return void answer(res, refusal.status, refusal.message);
    }
    forward(pool, req, res).catch((error: Error) =>
      answer(res, 400, `the request could not be read: ${error.message}`),
    );
  });
  server.on("close", () => void pool.close());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(settings.ports.ingress, settings.bind, resolve);
  });
  console.log(`Restate's ingress at http://${settings.bind}:${settings.ports.ingress}`);
  return server;
}

/** Why the front answers `req` itself, if it does. */
function refused(req: IncomingMessage, token: string): { status: number; message: string } | undefined {
  const url = req.url ?? "";
  // Restate's clients send a path; a proxy's absolute form (`http://host/...`) would be read
  // differently here and by Restate.
  if (!url.startsWith("/")) return { status: 400, message: "the request target must be a path" };
  const target = controlPlaneTarget(url);
  if (!target || isPublic(target) || authorized(req.headers.authorization, token)) return undefined;
  return { status: 401, message: tokenNeeded(`this call to ${target.service}/${target.handler}`) };
}

/**
 * Headers of one connection, not of the request or the answer (RFC 9110 7.6.1): each side of the
 * front has its own. undici refuses some of them in a request.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "expect",
]);

function endToEnd(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>) {
  const kept: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers))
    if (value !== undefined && !HOP_BY_HOP.has(name)) kept[name] = value;
  return kept;
}

/**
 * Streams `req` to Restate's ingress and its answer back. By hand over undici's pool rather than
 * with http-proxy-3 (as the admin front does): that cost the supervisor 1.03 ms of CPU per call
 * against 0.73-0.80 (bench:front, docs/benchmarks.md).
 */
async function forward(pool: Pool, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // A client that goes away frees its connection to Restate (the invocation itself runs on).
  const gone = new AbortController();
  res.on("close", () => gone.abort());
  const request: Dispatcher.RequestOptions = {
    path: req.url ?? "/",
    method: (req.method ?? "GET") as Dispatcher.HttpMethod,
    headers: endToEnd(req.headers),
    body: await bodyOf(req),
    signal: gone.signal,
  };
  pool.stream(
    request,
    ({ statusCode, headers }) => res.writeHead(statusCode, endToEnd(headers)),
    (error) => {
      if (!error || gone.signal.aborted) return;
      if (res.headersSent) return void res.destroy(error);
      answer(res, 502, `Restate's ingress is not reachable: ${error.message}`);
    },
  );
}

/** Bodies up to this size are read whole and sent in one write (about 0.07 ms of CPU less a call). */
const WHOLE_BODY_BYTES = 64 * 1024;

/** `req`'s body: whole when it is small, else as a stream; none when it has none. */
async function bodyOf(req: IncomingMessage): Promise<Buffer | IncomingMessage | null> {
  const length = req.headers["content-length"];
  if (length === undefined) return req.headers["transfer-encoding"] === undefined ? null : req;
  if (Number(length) > WHOLE_BODY_BYTES) return req;
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** An answer shaped as Restate's ingress shapes its errors, so clients read both alike. */
function answer(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ code: status, message }));
}
