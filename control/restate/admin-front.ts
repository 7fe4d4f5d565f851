import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { createProxyServer } from "http-proxy-3";
import { authorized, readAdminToken } from "../credentials/admin-token.ts";
import type { Settings } from "../settings.ts";

/** Restate's admin API takes small JSON bodies; the largest is a registration or a SQL query. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Failures where nothing reached Restate's handler: the connection was gone before the request. */
const RESENT = new Set(["EPIPE", "ECONNRESET"]);
const MAX_ATTEMPTS = 3;

/** The whole body, so a request can be sent again; undefined past MAX_BODY_BYTES. */
async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Gridiron's front for Restate's admin API. Restate 1.7 has no authentication of its own, so
 * restate-server serves its admin API only on a unix socket in the data dir, and this front, on
 * GRIDIRON_ADMIN_PORT, forwards the requests that carry the admin token to it (http-proxy-3 does
 * the forwarding). The token comes as a Bearer token or as the password of basic auth, so a
 * browser can open Restate's web UI at /ui/ after a login prompt.
 */
export async function serveAdminFront(
  settings: Pick<Settings, "adminToken" | "adminTokenPath" | "adminSocket" | "ports" | "bind">,
): Promise<Server> {
  const token = await readAdminToken(settings);
  // The socket is what is dialled; host and port only fill the Host header.
  const target = { socketPath: settings.adminSocket, host: "localhost", port: settings.ports.admin };
  const proxy = createProxyServer({ target, xfwd: true });
  // Restate needs no credential, and should not log one.
  proxy.on("proxyReq", (proxyReq) => proxyReq.removeHeader("authorization"));
  const fail = (res: ServerResponse, status: number, message: string) => {
    if (res.headersSent) return void res.end();
    res.writeHead(status, { "content-type": "text/plain" }).end(`${message}\n`);
  };
  /**
   * Forwards a request whose body is read already. Restate now and then closes a fresh
   * connection before the request is written (seen: `write EPIPE` on a few of 900 reads); no
   * answer has started then, so the request is sent again on a new connection, a few times.
   */
  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer, attempt = 1): void => {
    proxy.web(req, res, { buffer: Readable.from([body]) }, (error: NodeJS.ErrnoException) => {
      if (!res.headersSent && attempt < MAX_ATTEMPTS && RESENT.has(error.code ?? "")) {
        return forward(req, res, body, attempt + 1);
      }
      fail(res, 502, `Restate's admin API is not reachable: ${error.message}`);
    });
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (authorized(req.headers.authorization, token)) {
      return void readBody(req).then(
        (body) =>
          body ? forward(req, res, body) : fail(res, 413, `a request body is at most ${MAX_BODY_BYTES} bytes`),
        (error: Error) => fail(res, 400, `the request body could not be read: ${error.message}`),
      );
    }
    req.resume();
    res
      .writeHead(401, {
        "www-authenticate": 'Basic realm="Gridiron admin", charset="UTF-8"',
        "content-type": "text/plain",
      })
      .end(
        "Restate's admin API needs the admin token: 'Authorization: Bearer <token>' (for the restate CLI, RESTATE_AUTH_TOKEN), or any user name with the token as password; the token is GRIDIRON_ADMIN_TOKEN or the admin-token file in the data dir\n",
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(settings.ports.admin, settings.bind, resolve);
  });
  console.log(`Restate's admin API at http://${settings.bind}:${settings.ports.admin}, admin token required`);
  return server;
}
