import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { ensureIdentityKey } from "../credentials/request-identity.ts";
import { testBuild } from "../domain/build.fixture.ts";
import type { RoutedBuild } from "../domain/ownership.ts";
import type { Settings } from "../settings.ts";
import { type AgentSettings, type BuildFiles, NodeAgent, serveAgentSocket, tellAgent } from "./node-agent.ts";
import { ROUTES_FILE, ROUTES_PATH, WARM_PATH } from "./workerd/router/protocol.js";

/**
 * The node agent against real stand-ins of what it talks to: an HTTP server answering as Restate's
 * ingress does for `routes/local/served`, and one answering as workerd's router does, counting
 * the builds of the routes file the agent wrote. Nothing is mocked inside the agent.
 */

const TOKEN = "admin-token";
const routed = (name: string): RoutedBuild => ({ ...testBuild(name, "1.0.0-a"), services: [name] });

/** An HTTP server on a free port of 127.0.0.1, its URL, and how to close it. */
async function listen(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<[Server, string]> {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return [server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`];
}

interface Mesh {
  settings: AgentSettings;
  /** What `routes` records; the fake ingress answers with it. */
  routes: RoutedBuild[];
  /** The revision the fake `routes/served` answers with. */
  revision: number;
  /** Ingress answers held back this long, to overlap syncs. */
  delayMs: number;
  /** The next ingress answers fail with 500 while this is above 0. */
  failures: number;
  ingressCalls: number;
  /** The most ingress calls seen at once. */
  mostAtOnce: number;
  routerRefreshes: number;
  /** The builds the router was asked to compile one by one, `name/buildId`, once each answered. */
  warmed: string[];
  /** Those answers held back this long. */
  warmDelayMs: number;
  releases: number;
  logged: string[];
  dir: string;
}

describe("NodeAgent", () => {
  let mesh: Mesh;
  let servers: Server[];

  beforeEach(async () => {
    const dir = await mkdtemp(join(tmpdir(), "gridiron-agent-"));
    let atOnce = 0;
    const [ingress, ingressUrl] = await listen(async (req, res) => {
      mesh.ingressCalls++;
      mesh.mostAtOnce = Math.max(mesh.mostAtOnce, ++atOnce);
      await new Promise((resolve) => setTimeout(resolve, mesh.delayMs));
      atOnce--;
      const allowed = req.method === "POST" && req.url === "/routes/local/served";
      if (!allowed || req.headers.authorization !== `Bearer ${TOKEN}`) return res.writeHead(403).end();
      if (mesh.failures > 0 && mesh.failures--) return res.writeHead(500).end('{"message":"down"}');
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ revision: mesh.revision, builds: mesh.routes }));
    });
    const [router, workerdUrl] = await listen(async (req, res) => {
      // As workerd's router: only signed calls, and it answers with the builds the file lists.
      if (!req.headers["x-restate-jwt-v1"]) return res.writeHead(401).end();
      if (req.url?.startsWith(`${WARM_PATH}/`)) {
        await new Promise((resolve) => setTimeout(resolve, mesh.warmDelayMs));
        mesh.warmed.push(req.url.slice(WARM_PATH.length + 1));
        return res.writeHead(200, { "content-type": "application/json" }).end("{}");
      }
      if (req.url !== ROUTES_PATH) return res.writeHead(404).end();
      mesh.routerRefreshes++;
      const { builds } = JSON.parse(await readFile(join(dir, ROUTES_FILE), "utf8"));
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ builds: builds.length }));
    });
    servers = [ingress, router];
    const settings = {
      nodeName: "n1",
      bundlesDir: dir,
      releaseAfter: 2,
      ingressUrl,
      identityKeyPath: join(dir, "identity.pem"),
      // One cell, so the agent finds its router where the fake one listens (127.0.0.1, cell 0's address).
      cells: 1,
      ports: { workerd: Number(new URL(workerdUrl).port) } as Settings["ports"],
    };
    await ensureIdentityKey(settings, () => {});
    mesh = {
      settings,
      routes: [],
      revision: 0,
      delayMs: 0,
      failures: 0,
      ingressCalls: 0,
      mostAtOnce: 0,
      routerRefreshes: 0,
      warmed: [],
      warmDelayMs: 0,
      releases: 0,
      logged: [],
      dir,
    };
  });

  afterEach(async () => {
    for (const server of servers) server.close();
    await rm(mesh.dir, { recursive: true, force: true });
  });

  const agentOf = (files?: BuildFiles) =>
    new NodeAgent(
      mesh.settings,
      TOKEN,
      {
        release: async () => {
          mesh.releases++;
        },
        runs: () => true,
        start: async () => {},
      },
      (line) => mesh.logged.push(line),
      files,
    );
  const routesFile = async () => JSON.parse(await readFile(join(mesh.dir, ROUTES_FILE), "utf8")).builds;

  test("a sync serves what routes records: the routes file, the router's refresh, the report", async () => {
    const agent = agentOf();
    expect(agent.report()).toEqual({ node: "n1", builds: [], caughtUp: false });
    mesh.routes = [routed("greeter"), routed("counter")];
    expect(await agent.sync()).toEqual({ node: "n1", builds: ["greeter@1.0.0-a", "counter@1.0.0-a"], caughtUp: true });
    expect(await routesFile()).toEqual(mesh.routes);
    expect(mesh.routerRefreshes).toBe(1);
  });

  test("a build routed since the last pass is compiled after the sync answers, before the next pass; none on the first", async () => {
    const agent = agentOf();
    mesh.routes = [routed("greeter")];
    await agent.sync();
    // Each compile takes 300 ms: one the sync waited for would be done when it answered.
    mesh.warmDelayMs = 300;
    mesh.routes = [routed("greeter"), routed("counter"), { ...routed("greeter"), buildId: "2.0.0-b" }];
    await agent.sync();
    expect(mesh.warmed).toEqual([]);
    mesh.warmDelayMs = 0;
    await agent.sync();
    expect(mesh.warmed.sort()).toEqual(["counter/1.0.0-a", "greeter/2.0.0-b"]);
    expect(mesh.logged).toEqual([]);
  });

  test("a sync that finds nothing changed leaves the routes file and the router alone", async () => {
    const agent = agentOf();
    mesh.routes = [routed("greeter")];
    await agent.sync();
    await agent.sync();
    expect(mesh.routerRefreshes).toBe(1);
    // A build routed again with another manifest is a change, though its key is the same.
    mesh.routes = [{ ...routed("greeter"), manifest: { contentType: "application/json", body: "{}" } }];
    await agent.sync();
    expect(mesh.routerRefreshes).toBe(2);
    expect(await routesFile()).toEqual(mesh.routes);
  });

  test("a hold marks the builds its bundles serve in the cell now, not later ones, nor refused ones; it lasts across syncs", async () => {
    const agent = agentOf();
    const refused = { ...routed("brute"), buildId: "0.9.0-z", refused: "bundle brute hung this cell" };
    mesh.routes = [routed("greeter"), routed("brute"), refused];
    await agent.sync();
    expect(agent.bundlesIn(0)).toEqual(["greeter", "brute"]);
    await agent.hold(0, ["brute"], true);
    const held = (await routesFile()).filter((b: { held?: string }) => b.held).map((b: RoutedBuild) => b.buildId);
    expect(held).toEqual(["1.0.0-a"]);
    expect(mesh.routerRefreshes).toBe(2);
    // A new build of a held bundle runs; the held one stays held through the sync that routes it.
    mesh.routes = [...mesh.routes, { ...routed("brute"), buildId: "2.0.0-b" }];
    await agent.sync();
    const names = (await routesFile()).map(
      (b: RoutedBuild & { held?: string }) => `${b.buildId}:${b.held ? "held" : ""}`,
    );
    expect(names).toEqual(["1.0.0-a:", "1.0.0-a:held", "0.9.0-z:", "2.0.0-b:"]);
    await agent.hold(0, [], false);
    expect((await routesFile()).some((b: { held?: string }) => b.held)).toBe(false);
  });

  test("workerd is handed over once every releaseAfter removed builds", async () => {
    const agent = agentOf();
    mesh.routes = [routed("a"), routed("b"), routed("c")];
    await agent.sync();
    mesh.routes = [routed("b"), routed("c")];
    await agent.sync();
    expect(mesh.releases).toBe(0);
    mesh.routes = [routed("c")];
    await agent.sync();
    expect(mesh.releases).toBe(1);
    mesh.routes = [];
    await agent.sync();
    expect(mesh.releases).toBe(1);
  });

  test("syncs asked for during a pass run after it, one at a time, each answering with what is served", async () => {
    const agent = agentOf();
    mesh.delayMs = 30;
    mesh.routes = [routed("greeter")];
    const first = agent.sync();
    mesh.routes = [routed("greeter"), routed("counter")];
    const reports = await Promise.all([first, agent.sync(), agent.sync()]);
    expect(mesh.mostAtOnce).toBe(1);
    expect(mesh.ingressCalls).toBe(3);
    expect(reports.at(-1)?.builds).toEqual(["greeter@1.0.0-a", "counter@1.0.0-a"]);
  });

  test("a pass that fails fails its sync and leaves the next one to work", async () => {
    const agent = agentOf();
    mesh.routes = [routed("greeter")];
    mesh.failures = 1;
    await expect(agent.sync()).rejects.toThrow();
    expect(agent.report().caughtUp).toBe(false);
    expect((await agent.sync()).builds).toEqual(["greeter@1.0.0-a"]);
  });

  test("build files are fetched before serving, cleaned up after a change and every tenth quiet sync", async () => {
    const calls: string[] = [];
    const agent = agentOf({
      fetch: async (_url, builds) => {
        calls.push(`fetch ${builds.length}`);
      },
      cleanUp: async (_url, keys) => {
        calls.push(`clean ${[...keys].join(",")}`);
      },
    });
    mesh.routes = [routed("greeter")];
    await agent.sync();
    expect(calls).toEqual(["fetch 1", "clean greeter@1.0.0-a"]);
    for (let i = 0; i < 10; i++) await agent.sync();
    expect(calls.filter((c) => c.startsWith("clean"))).toHaveLength(2);
    expect(calls.filter((c) => c.startsWith("fetch"))).toHaveLength(11);
  });

  test("polling logs a failure once while it lasts, and serves once it is over", async () => {
    const agent = agentOf();
    mesh.routes = [routed("greeter")];
    mesh.failures = 3;
    const stop = new AbortController();
    const polling = agent.poll(5, stop.signal);
    await expect.poll(() => agent.report().caughtUp, { timeout: 5_000 }).toBe(true);
    stop.abort();
    await polling;
    expect(mesh.logged).toHaveLength(1);
    expect(mesh.logged[0]).toMatch(/^\[gridiron\] node agent: /);
  });

  test("a change handed on top of the revision served is served without reading the routes, and not compiled", async () => {
    const agent = agentOf();
    mesh.routes = [routed("greeter"), routed("counter")];
    mesh.revision = 7;
    await agent.sync();
    const added = { ...routed("greeter"), buildId: "2.0.0-b" };
    const report = await agent.sync(undefined, { warm: false, change: { revision: 8, routed: added } });
    expect(report.builds).toEqual(["greeter@1.0.0-a", "counter@1.0.0-a", "greeter@2.0.0-b"]);
    expect(await routesFile()).toEqual([...mesh.routes, added]);
    await agent.sync(undefined, { change: { revision: 9, removed: { name: "counter", buildId: "1.0.0-a" } } });
    expect(await routesFile()).toEqual([routed("greeter"), added]);
    expect(mesh.ingressCalls).toBe(1);
    expect(mesh.routerRefreshes).toBe(3);
    // A sync after the passes above waits for what they compiled: nothing, the deployer compiles its own.
    await agent.sync(undefined, { change: { revision: 9 } });
    expect(mesh.warmed).toEqual([]);
    expect(mesh.ingressCalls).toBe(1);
  });

  test("a stale change is ignored, and one after a missed change makes the agent read the routes", async () => {
    const agent = agentOf();
    mesh.routes = [routed("greeter")];
    mesh.revision = 3;
    await agent.sync();
    // Another activation's change, older than what the agent serves: it holds it already.
    const stale = await agent.sync(undefined, { change: { revision: 2, routed: routed("old") } });
    expect(stale.builds).toEqual(["greeter@1.0.0-a"]);
    expect(mesh.ingressCalls).toBe(1);
    // Revision 4 was another bundle's, never handed here: the agent reads, and gets both.
    mesh.routes = [routed("greeter"), routed("other"), routed("counter")];
    mesh.revision = 5;
    const caughtUp = await agent.sync(undefined, { change: { revision: 5, routed: routed("counter") } });
    expect(caughtUp.builds).toEqual(["greeter@1.0.0-a", "other@1.0.0-a", "counter@1.0.0-a"]);
    expect(mesh.ingressCalls).toBe(2);
  });

  test("the agent socket: the deployer's tellAgent gets the report, or why the sync failed", async () => {
    const agent = agentOf();
    const socket = await serveAgentSocket(agent, join(mesh.dir, "agent.sock"));
    try {
      mesh.routes = [routed("greeter")];
      expect(await tellAgent(join(mesh.dir, "agent.sock"))).toEqual({
        node: "n1",
        builds: ["greeter@1.0.0-a"],
        caughtUp: true,
      });
      // The change it hands is served as it is, without a read.
      const calls = mesh.ingressCalls;
      const change = { revision: 1, routed: routed("counter") };
      expect((await tellAgent(join(mesh.dir, "agent.sock"), change)).builds).toEqual([
        "greeter@1.0.0-a",
        "counter@1.0.0-a",
      ]);
      expect(mesh.ingressCalls).toBe(calls);
      mesh.failures = 1;
      await expect(tellAgent(join(mesh.dir, "agent.sock"))).rejects.toThrow(
        /the node agent could not serve the routes/,
      );
    } finally {
      await socket.close();
    }
  });
});
