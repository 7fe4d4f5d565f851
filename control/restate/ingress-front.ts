import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createProxyServer } from "http-proxy-3";
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
 * request to Restate as it is (http-proxy-3 does the forwarding; no header is added).
 */
export async function serveIngressFront(
  settings: Pick<Settings, "adminToken" | "adminTokenPath" | "ingressSocket" | "ports" | "bind">,
): Promise<Server> {
  const token = await readAdminToken(settings);
  // The socket is what is dialled; host and port only fill the Host header the client did not send.
  const target = { socketPath: settings.ingressSocket, host: "localhost", port: settings.ports.ingress };
  const proxy = createProxyServer({ target, agent: new Agent({ keepAlive: true }) });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const refusal = refused(req, token);
    if (refusal) {
      req.resume();
      return void answer(res, refusal.status, refusal.message);
    }
    proxy.web(req, res, {}, (error: Error) => answer(res, 502, `Restate's ingress is not reachable: ${error.message}`));
  });
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

/** An answer shaped as Restate's ingress shapes its errors, so clients read both alike. */
function answer(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ code: status, message }));
}
