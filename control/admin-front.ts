import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createProxyServer } from "http-proxy-3";
import { authorized, readAdminToken } from "./admin-token.ts";
import type { Settings } from "./settings.ts";

/**
 * Gridiron's front for Restate's admin API. Restate 1.7 has no authentication of its own, so
 * restate-server serves its admin API only on a unix socket in the data dir, and this front, on
 * GRIDIRON_ADMIN_PORT, forwards the requests that carry the admin token to it (http-proxy-3 does
 * the forwarding). The token comes as a Bearer token or as the password of basic auth, so a
 * browser can open Restate's web UI at /ui/ after a login prompt.
 */
export async function serveAdminFront(settings: Settings): Promise<void> {
  const token = await readAdminToken(settings);
  // The socket is what is dialled; host and port only fill the Host header.
  const target = { socketPath: settings.adminSocket, host: "localhost", port: settings.ports.admin };
  const proxy = createProxyServer({ target, xfwd: true });
  // Restate needs no credential, and should not log one.
  proxy.on("proxyReq", (proxyReq) => proxyReq.removeHeader("authorization"));
  proxy.on("error", (error, _req, res) => {
    if (!("writeHead" in res) || res.headersSent) return void res.end();
    res
      .writeHead(502, { "content-type": "text/plain" })
      .end(`Restate's admin API is not reachable: ${error.message}\n`);
  });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (authorized(req.headers.authorization, token)) return void proxy.web(req, res);
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
  const stop = () => process.exit(0);
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
