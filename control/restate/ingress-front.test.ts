import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { closeServer } from "../close-server.ts";
import { serveIngressFront } from "./ingress-front.ts";

/**
 * The front against a stand-in for Restate's ingress on a unix socket, which records what reaches
 * it (the end-to-end tests run it before the real one: test/flood.e2e.test.ts).
 */
describe("the ingress front", () => {
  const token = "the-admin-token";
  const seen: { url: string; headers: IncomingMessage["headers"]; body: string }[] = [];
  let dir: string;
  let restate: Server;
  let front: Server;
  let url: string;
  /** Requests the stand-in holds unanswered, and whether each one's connection was closed. */
  const held: { closed: boolean }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ingress-front-"));
    const ingressSocket = join(dir, "ingress.sock");
    restate = createServer(async (req, res) => {
      let body = "";
      for await (const chunk of req) body += chunk;
      seen.push({ url: req.url ?? "", headers: req.headers, body });
      if (req.url === "/slow/forever") {
        const entry = { closed: false };
        held.push(entry);
        return void res.on("close", () => {
          entry.closed = true;
        });
      }
      res.writeHead(200, { "content-type": "application/json", "x-from": "restate" }).end(JSON.stringify(body.length));
    });
    restate.listen(ingressSocket);
    await once(restate, "listening");
    const settings = { adminToken: token, adminTokenPath: "", ingressSocket, ports: { ingress: 0 }, bind: "127.0.0.1" };
    front = await serveIngressFront(settings);
    url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await closeServer(front);
    restate.closeAllConnections();
    await closeServer(restate);
    await rm(dir, { recursive: true, force: true });
  });

  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });

  test("answers an anonymous call to the control plane itself, and Restate sees nothing of it", async () => {
    seen.length = 0;
    for (const path of ["/deployer/greeter/activate", "/deployer/greeter/activate/send", "/routes/local/add"]) {
      const response = await post(path, "{}", { authorization: "Bearer wrong" });
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({
        code: 401,
        message: expect.stringMatching(/Authorization: Bearer/),
      });
    }
    expect(seen).toEqual([]);
  });

  test("passes the admin's calls, public reads and every other call on as they were sent", async () => {
    seen.length = 0;
    const admin = await post("/deployer/greeter/activate", '{"a":1}', { authorization: `Bearer ${token}` });
    expect(admin.status).toBe(200);
    expect(admin.headers.get("x-from")).toBe("restate");
    expect((await post("/deployer/greeter/status", "")).status).toBe(200);
    const long = "x".repeat(100_000);
    expect(await (await post("/greeter/greet?q=1", long, { "idempotency-key": "k1" })).json()).toBe(long.length);
    expect(seen.map((s) => s.url)).toEqual([
      "/deployer/greeter/activate",
      "/deployer/greeter/status",
      "/greeter/greet?q=1",
    ]);
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${token}`);
    expect(seen[2]?.headers["idempotency-key"]).toBe("k1");
    expect(seen[2]?.body).toBe(long);
  });

  test("a client that goes away frees its connection to Restate", async () => {
    const call = fetch(`${url}/slow/forever`, { method: "POST", body: "{}", signal: AbortSignal.timeout(300) });
    await expect(call).rejects.toThrow();
    await expect.poll(() => held[0]?.closed, { timeout: 5_000 }).toBe(true);
  });
});
