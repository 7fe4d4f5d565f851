import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterTlsFiles, restatectlTlsArgs } from "../control/cluster/tls.ts";
import { MB } from "../control/memory.ts";
import { binaries } from "../control/node/binaries.ts";
import { toCanary } from "../control/node/workerd/router/split.js";
import { AdminClient } from "../control/restate/admin-client.ts";
import { answers, withTimeout } from "../control/wait.ts";
import { makeNodeCertificate } from "../tools/local-cluster/certificates.ts";
import {
  caDir,
  down,
  killNode,
  LOCAL_NODES,
  type LocalCluster,
  logPath,
  nodeInfo,
  nodes,
  readToken,
  startNode,
  tlsDir,
  up,
  waitReady,
} from "../tools/local-cluster/local.ts";
import { namespaceExists, pidsIn } from "../tools/local-cluster/netns.ts";
import { incrementEverywhere } from "./cluster-load.ts";
import { buildWorker, eventually } from "./mesh.ts";
import { answersOf, bounds, pool } from "./sample.ts";

const ROOT = resolve(import.meta.dirname, "..");
const log = (line: string) => console.log(line);
/** One replaced build's files kept, so a prune deletes files (and every node follows). */
const NODE_ENV = { GRIDIRON_KEEP_BUILDS: "1" };
/**
 * What the rollout tests restart every node with: replaced builds and splits pruned in seconds
 * rather than minutes. Not from the start: (d) to (f) roll back to a build that must not be
 * pruned meanwhile.
 */
const QUICK_DRAIN = { GRIDIRON_DRAIN_POLL_SECONDS: "1", GRIDIRON_DRAIN_GRACE_SECONDS: "2" };
/** The automatic analysis's interval in (i): the canary's calls have all settled before it judges. */
const JUDGE_S = 20;

/**
 * Three real nodes (restate-server, workerd, the deployer, each node's agent) in network
 * namespaces this file creates and removes, on a subnet and names of its own so a user's local
 * cluster can run beside it.
 */
/** Network namespaces need root and iproute2 (`.ci/run` installs it where it is missing). */
const canMakeHosts = process.getuid?.() === 0 && (await execa("ip", ["-V"], { reject: false })).exitCode === 0;

describe.skipIf(!canMakeHosts)("a cluster of three nodes", () => {
  let cluster: LocalCluster;
  let token: string;
  let buildsDir: string;
  const sources: Record<string, string> = {};
  const info = (node: string) => nodeInfo(cluster, node, true);
  const ingresses = () => LOCAL_NODES.map((n) => info(n).ingress);

  /** The gridiron CLI against `node`, as a user with the node's URLs and the token would run it. */
  const cli = async (node: string, ...args: string[]) => {
    const { stdout } = await execa(process.execPath, [join(ROOT, "control/cli/main.ts"), ...args, "--json"], {
      env: {
        GRIDIRON_INGRESS_URL: info(node).ingress,
        GRIDIRON_ADMIN_URL: info(node).admin,
        GRIDIRON_ADMIN_TOKEN: token,
      },
      timeout: 180_000,
    });
    return JSON.parse(stdout);
  };
  const call = async (node: string, path: string, timeoutMs = 30_000) => {
    const response = await fetch(`${info(node).ingress}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${path} on ${node}: ${response.status} ${text}`);
    return JSON.parse(text);
  };
  const served = async (node: string): Promise<string[]> => {
    const response = await fetch(`${info(node).ops}/node`, { signal: AbortSignal.timeout(2_000) });
    return ((await response.json()) as { builds: string[] }).builds;
  };
  /** A Justfile recipe against this file's cluster, as a user runs it against theirs. */
  const just = (...args: string[]) =>
    execa(join(ROOT, "node_modules/.bin/just"), args, {
      cwd: ROOT,
      env: {
        GRIDIRON_LOCAL_CLUSTER_DIR: cluster.dir,
        GRIDIRON_LOCAL_CLUSTER_PREFIX: cluster.net.prefix,
        GRIDIRON_LOCAL_CLUSTER_SUBNET: cluster.net.subnet,
        ...NODE_ENV,
      },
      all: true,
      timeout: 240_000,
    });
  const localBuilds = async (node: string, bundle: string) =>
    (await readdir(join(cluster.dir, node, "bundles", bundle)).catch(() => [] as string[])).sort();
  const routedBuilds = async (node: string, bundle: string): Promise<string[]> =>
    JSON.parse(await readFile(join(cluster.dir, node, "bundles", "routes.json"), "utf8"))
      .builds.filter((b: { name: string }) => b.name === bundle)
      .map((b: { buildId: string }) => b.buildId)
      .sort();
  /**
   * Every node routes and serves the bundle's builds that status says are not pruned, and keeps
   * on disk the files of those it says are kept. Returns what status said.
   */
  const expectEveryNodeAsStatus = async (bundle: string) => {
    const builds: { buildId: string; state: string; filesKept: boolean }[] = (await cli("n1", "status", bundle)).builds;
    const routed = builds.filter((b) => b.state !== "pruned" && b.state !== "failed").map((b) => b.buildId);
    const kept = builds.filter((b) => b.filesKept).map((b) => b.buildId);
    for (const node of LOCAL_NODES) {
      expect((await served(node)).filter((k) => k.startsWith(`${bundle}@`)).sort()).toEqual(
        routed.map((id) => `${bundle}@${id}`).sort(),
      );
      expect(await routedBuilds(node, bundle)).toEqual([...routed].sort());
      expect(await localBuilds(node, bundle)).toEqual([...kept].sort());
    }
    return { builds, kept };
  };

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), "gridiron-cluster-"));
    buildsDir = join(dir, "builds");
    cluster = {
      dir: join(dir, "cluster"),
      // Another copy of this test (a second worktree) can run beside it on its own names.
      net: {
        prefix: process.env.GRIDIRON_TEST_CLUSTER_PREFIX ?? "grt",
        subnet: process.env.GRIDIRON_TEST_CLUSTER_SUBNET ?? "10.78.0",
      },
      nodeEnv: NODE_ENV,
    };
    const [, built] = await Promise.all([
      up(cluster, log),
      (async () => {
        sources.counter2 = await buildWorker("counter", join(buildsDir, "counter2"), { STEP: "10" });
        sources.flakyFixed = await buildWorker("test/fixtures/flaky", join(buildsDir, "flaky-fixed"), {
          BROKEN: "false",
        });
        sources.flakyBroken = await buildWorker("test/fixtures/flaky", join(buildsDir, "flaky-broken"));
        // A bundle at the size limit: a small service and 47 MB of data that does not compress.
        sources.big = await buildWorker("test/fixtures/shape", join(buildsDir, "big"), { OBJECT: "false" });
        await writeFile(join(buildsDir, "big", "blob.bin"), randomBytes(47 * MB));
      })(),
    ]);
    void built;
    token = await readToken(cluster);
  }, 300_000);

  afterAll(async () => {
    if (!cluster) return;
    await down(cluster);
    // Nothing left running or configured: no namespace, no link of this network.
    for (const node of LOCAL_NODES) expect(await namespaceExists(cluster.net, node)).toBe(false);
    expect((await execa("ip", ["-o", "link"])).stdout).not.toContain(`${cluster.net.prefix}-`);
    await rm(resolve(cluster.dir, ".."), { recursive: true, force: true });
  }, 60_000);

  it("(a) deploy-demo through n1; greeter and counter answer through every node's ingress", async () => {
    const deployed = await execa(join(ROOT, "node_modules/.bin/just"), ["deploy-demo"], {
      cwd: ROOT,
      env: {
        GRIDIRON_INGRESS_URL: info("n1").ingress,
        GRIDIRON_ADMIN_URL: info("n1").admin,
        GRIDIRON_ADMIN_TOKEN: token,
      },
      all: true,
      timeout: 240_000,
    });
    expect(deployed.all).toContain("✓ wait for every node");
    expect(deployed.all).toContain("greeter 1.0.0 is active");
    expect(deployed.all).toContain("counter 1.0.0 is active");
    for (const node of LOCAL_NODES) {
      expect(await call(node, "greeter/greet")).toContain("Hello");
      expect(await call(node, "counter/a/add")).toBe(LOCAL_NODES.indexOf(node) + 1);
      expect(await served(node)).toHaveLength(2);
    }
    const status = await cli("n2", "status", "counter");
    expect(status.builds[0].nodes).toEqual(["n1", "n2", "n3"]);
    const recipe = JSON.parse((await just("cluster-nodes")).stdout) as {
      name: string;
      ingress: string;
      alive: boolean;
    }[];
    expect(recipe).toEqual(
      LOCAL_NODES.map((name) => expect.objectContaining({ name, ingress: info(name).ingress, alive: true })),
    );
    const listed = await cli("n3", "nodes");
    expect(listed.map((n: { name: string; alive: boolean }) => [n.name, n.alive])).toEqual([
      ["n1", true],
      ["n2", true],
      ["n3", true],
    ]);
  }, 300_000);

  it("(a2) gridiron tail and logs through n1 show the lines of every node, each marked with its node", async () => {
    const env = {
      GRIDIRON_INGRESS_URL: info("n1").ingress,
      GRIDIRON_ADMIN_URL: info("n1").admin,
      GRIDIRON_OPS_URL: info("n1").ops,
      GRIDIRON_ADMIN_TOKEN: token,
    };
    const tail = execa(process.execPath, [join(ROOT, "control/cli/main.ts"), "tail", "counter", "--format", "json"], {
      env,
      reject: false,
    });
    let seen = "";
    tail.stdout?.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
    });
    const nodesSeen = () =>
      new Set(
        seen
          .split("\n")
          .filter(Boolean)
          .map((line) => JSON.parse(line).node as string),
      );
    // Each key's calls run on the leader of its partition, wherever they came in: keys enough
    // reach a node other than n1 (every node that leads a partition).
    let key = 0;
    await eventually(async () => {
      for (let i = 0; i < 6; i++) await call("n1", `counter/tail-${key++}/add`);
      expect([...nodesSeen()].filter((node) => node !== "n1").length).toBeGreaterThan(0);
    }, 90_000);
    tail.kill("SIGINT");
    expect((await tail).exitCode).toBe(0);
    for (const node of nodesSeen()) expect(LOCAL_NODES).toContain(node);
    const kept = await cli("n1", "logs", "counter", "--since", "10m");
    const keptNodes = new Set(kept.map((record: { node: string }) => record.node));
    expect([...nodesSeen()].every((node) => keptNodes.has(node))).toBe(true);
  }, 180_000);

  it("refuses the bundle store and the routes to anyone without the admin token, and nothing changes", async () => {
    const anonymous = (path: string, body: unknown = {}) =>
      fetch(`${info("n1").ingress}/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then((r) => r.status);
    const evilChunk = { file: "index.js", index: 0, data: Buffer.from("evil").toString("base64") };
    expect(await anonymous("bundles/greeter@9.9.9-evil/put", evilChunk)).toBe(401);
    const [greeterKey] = (await served("n1")).filter((k) => k.startsWith("greeter@"));
    expect(await anonymous(`bundles/${greeterKey}/remove`)).toBe(401);
    expect(await anonymous(`bundles/${greeterKey}/chunk`, { file: "index.js", index: 0 })).toBe(401);
    expect(await anonymous("routes/local/served")).toBe(401);
    // Every node's ingress front refuses them all before Restate makes an invocation.
    expect(await anonymous("routes/local/remove", { name: "greeter", buildId: greeterKey?.split("@")[1] })).toBe(401);
    // Still stored and served everywhere.
    for (const node of LOCAL_NODES) {
      expect(await served(node)).toContain(greeterKey);
      expect(await call(node, "greeter/greet")).toContain("Hello");
    }
    const admin = new AdminClient({ url: info("n2").admin, token });
    expect(
      await admin.query("SELECT key FROM state WHERE service_name = 'bundles' AND service_key LIKE '%evil%'"),
    ).toEqual([]);
  });

  /** An HTTP/2 GET of `/health` on `node`'s node port over TLS, with `identity` as client certificate if given. */
  const fabricHealth = async (node: string, identity?: { cert: string; key: string }): Promise<number> => {
    const ca = await readFile(join(caDir(cluster), "ca.pem"));
    const tls = identity ? { cert: await readFile(identity.cert), key: await readFile(identity.key) } : {};
    const session = http2.connect(`https://${info(node).address}:5122`, { ca, ...tls });
    try {
      const status = new Promise<number>((resolve, reject) => {
        session.once("error", reject);
        const request = session.request({ ":path": "/health" });
        request.once("response", (headers) => resolve(Number(headers[":status"])));
        request.once("error", reject);
        request.end();
      });
      return await withTimeout(status, 10_000, "no answer from the node port");
    } finally {
      session.destroy();
    }
  };
  const restatectl = (node: string, ...tlsArgs: string[]) =>
    execa(
      binaries.restatectl(),
      ["-s", `https://${info(node).address}:5122/`, ...tlsArgs, "sql", "--json", "SELECT name FROM nodes"],
      {
        reject: false,
        timeout: 30_000,
      },
    );

  it("takes only mutual TLS on the node port, from a peer's certificate: nothing else reaches restatectl's SQL", async () => {
    const n1 = clusterTlsFiles(tlsDir(cluster, "n1"));
    // The control: n1's own certificate reaches n2's node port, by HTTP/2 and by restatectl.
    expect(await fabricHealth("n2", n1)).toBe(200);
    const allowed = await restatectl("n2", ...restatectlTlsArgs(n1));
    expect(allowed.exitCode).toBe(0);
    expect(
      JSON.parse(allowed.stdout)
        .map((r: { name: string }) => r.name)
        .sort(),
    ).toEqual([...LOCAL_NODES]);
    // Plain HTTP/2, TLS without a certificate, and a certificate the cluster's CA signed for a
    // name that is not a peer's: each refused.
    expect(await answers(`http://${info("n2").address}:5122/health`)).toBe(false);
    await expect(fabricHealth("n2")).rejects.toThrow();
    const intruder = join(cluster.dir, "intruder");
    await makeNodeCertificate(caDir(cluster), "intruder", "10.99.0.1", intruder);
    await expect(fabricHealth("n2", clusterTlsFiles(intruder))).rejects.toThrow();
    for (const refused of [
      await execa(
        binaries.restatectl(),
        ["-s", `http://${info("n2").address}:5122/`, "sql", "SELECT name FROM nodes"],
        {
          reject: false,
          timeout: 30_000,
        },
      ),
      await restatectl("n2", "--tls-ca", n1.ca),
      await restatectl("n2", ...restatectlTlsArgs(clusterTlsFiles(intruder))),
    ]) {
      expect(refused.exitCode).not.toBe(0);
      expect(refused.stdout).not.toContain("n1");
    }
    // Nothing changed: every node is still a live member.
    const listed = await cli("n1", "nodes");
    expect(listed.map((n: { name: string; alive: boolean }) => [n.name, n.alive])).toEqual([
      ["n1", true],
      ["n2", true],
      ["n3", true],
    ]);
  }, 120_000);

  /** The node leading the most partitions: losing it moves the most leaderships. */
  const busiest = async (): Promise<string> => {
    const listed: { name: string; partitionsLed: number }[] = await cli("n1", "nodes");
    return listed.reduce((a, b) => (b.partitionsLed > a.partitionsLed ? b : a)).name;
  };
  const partitionsLed = async (node: string): Promise<number> =>
    ((await cli("n1", "nodes")) as { name: string; partitionsLed: number }[]).find((n) => n.name === node)
      ?.partitionsLed ?? 0;

  it("(b, c) 600 idempotent increments over every ingress with one node killed halfway: each counts once; the node comes back serving", async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `load-${i}`);
    const victim = await busiest();
    console.log(`[cluster] killing ${victim}, which leads ${await partitionsLed(victim)} partition(s)`);
    let killed: Promise<void> | undefined;
    const result = await incrementEverywhere({
      ingresses: ingresses(),
      keys,
      total: 600,
      concurrency: 12,
      run: "load",
      onProgress: (completed) => {
        if (completed === 300) killed = killNode(cluster, victim);
      },
    });
    await killed;
    console.log(
      `[cluster] 600 increments, ${victim} killed at 300: ${result.retried} retried on another ingress, longest gap ${result.longestGapMs} ms, slowest call ${result.slowestMs} ms`,
    );
    for (const key of keys) expect(await call("n1", `counter/${key}/get`)).toBe(result.sent.get(key));

    // (c) The node catches up from a peer before its restate-server starts, then leads again.
    await startNode(cluster, victim, log);
    await waitReady(cluster, victim, log);
    const lines = (await readFile(logPath(cluster, victim), "utf8")).split("\n");
    const restart = lines.findLastIndex((l) => l.includes("starting workerd"));
    const caughtUp = lines.findIndex((l, i) => i > restart && l.includes("caught up from"));
    const restateStarted = lines.findIndex((l, i) => i > restart && l.includes("starting restate-server"));
    expect(caughtUp).toBeGreaterThan(restart);
    expect(restateStarted).toBeGreaterThan(caughtUp);
    const other = LOCAL_NODES.find((n) => n !== victim) as string;
    expect((await served(victim)).sort()).toEqual((await served(other)).sort());
    // Restate gives it back partitions to lead; calls for them run on its workerd and never
    // wait on a missing build.
    await eventually(async () => expect(await partitionsLed(victim)).toBeGreaterThan(0), 60_000);
    const after = await incrementEverywhere({ ingresses: ingresses(), keys, total: 120, concurrency: 6, run: "after" });
    console.log(
      `[cluster] after ${victim} rejoined and leads ${await partitionsLed(victim)} partition(s): slowest of 120 calls ${after.slowestMs} ms`,
    );
    expect(after.retried).toBe(0);
    for (const key of keys)
      expect(await call(victim, `counter/${key}/get`)).toBe((result.sent.get(key) ?? 0) + (after.sent.get(key) ?? 0));
  }, 400_000);

  it("(d) an activation while n2 is down succeeds, and n2 returns serving the new build", async () => {
    await just("cluster-kill", "n2");
    expect(await pidsIn(cluster.net, "n2")).toEqual([]);
    const result = await cli(
      "n1",
      "deploy",
      fileURLToPath(sources.counter2 as string),
      "--name",
      "counter",
      "--version",
      "2.0.0",
    );
    expect(result.version).toBe("2.0.0");
    const before = (await call("n3", "counter/d/add")) as number;
    expect(before).toBe(10);
    await just("cluster-start", "n2");
    expect(await served("n2")).toContain(`counter@${result.buildId}`);
    expect(await call("n2", "counter/d/add")).toBe(20);
  }, 300_000);

  it("(e) a node's workerd alone killed: its partitions stall briefly, every call completes", async () => {
    const node = await busiest();
    const workerd = [];
    for (const pid of await pidsIn(cluster.net, node)) {
      const name = await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "");
      if (name.trim() === "workerd") workerd.push(pid);
    }
    expect(workerd.length).toBeGreaterThan(0);
    const led = await partitionsLed(node);
    for (const pid of workerd) process.kill(pid, "SIGKILL");
    const keys = Array.from({ length: 24 }, (_, i) => `stall-${i}`);
    const result = await incrementEverywhere({
      ingresses: ingresses(),
      keys,
      total: 48,
      concurrency: 24,
      run: "stall",
    });
    console.log(
      `[cluster] workerd of ${node} (leading ${led} partition(s)) killed: slowest call ${result.slowestMs} ms, the longest its partitions stalled`,
    );
    for (const key of keys) expect(await call("n2", `counter/${key}/get`)).toBe((result.sent.get(key) as number) * 10);
  }, 300_000);

  it("(f) rollback and prune leave every node's routes and files as status says", async () => {
    const rolledBack = await cli("n2", "rollback", "counter");
    expect(rolledBack.version).toBe("1.0.0");
    const replaced = (await cli("n1", "status", "counter")).builds.find(
      (b: { version: string }) => b.version === "2.0.0",
    );
    await cli("n3", "prune", "counter", replaced.buildId, "--force", "--yes");
    await eventually(async () => {
      const { kept } = await expectEveryNodeAsStatus("counter");
      expect(kept).not.toContain(replaced.buildId);
    }, 60_000);
    for (const node of LOCAL_NODES) expect(await call(node, "counter/f/add")).toBeGreaterThan(0);
    expect((await nodes(cluster)).every((n) => n.alive)).toBe(true);
  }, 300_000);

  it("(g) a 50 MB bundle reaches every node through the store, hash-checked", async () => {
    const started = Date.now();
    const result = await cli(
      "n2",
      "deploy",
      fileURLToPath(sources.big as string),
      "--name",
      "big",
      "--version",
      "1.0.0",
    );
    console.log(`[cluster] a 48.8 MB bundle activated on three nodes in ${Date.now() - started} ms`);
    for (const node of LOCAL_NODES) {
      expect(await call(node, "shape/kind")).toBe("service");
      const blob = await readFile(join(cluster.dir, node, "bundles", "big", result.buildId, "blob.bin"));
      expect(blob.equals(await readFile(join(buildsDir, "big", "blob.bin")))).toBe(true);
    }
  }, 300_000);

  it("a node started with a wrong admin token stops with a clear error before its restate-server starts, and leads nothing", async () => {
    await killNode(cluster, "n3");
    const n3 = async () => (await cli("n1", "nodes")).find((n: { name: string }) => n.name === "n3");
    await eventually(async () => expect((await n3()).partitionsLed).toBe(0), 60_000);
    const before = (await readFile(logPath(cluster, "n3"), "utf8")).length;
    await startNode(cluster, "n3", log, { GRIDIRON_ADMIN_TOKEN: randomBytes(32).toString("hex") });
    // Until it has said why and gone: right after the start, its processes may not show yet.
    const said = async () => (await readFile(logPath(cluster, "n3"), "utf8")).slice(before);
    await eventually(async () => {
      expect(await said()).toMatch(/n1, n2 refused this node's admin token: .*same GRIDIRON_ADMIN_TOKEN/);
      expect(await pidsIn(cluster.net, "n3")).toEqual([]);
    }, 120_000);
    const output = await said();
    expect(output).toContain("starting workerd");
    // The supervisor's own line, not the error's "Not starting restate-server".
    expect(output.split("\n")).not.toContain("[gridiron] starting restate-server");
    // Nothing changed: n3 leads nothing, admin calls through the others still pass.
    expect(await n3()).toMatchObject({ alive: false, partitionsLed: 0 });
    for (let i = 0; i < 8; i++) {
      const answer = await fetch(`${info(LOCAL_NODES[i % 2] as string).ingress}/routes/local/served`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: "{}",
      });
      expect(answer.status).toBe(200);
    }
    // With the right token it starts and serves.
    await startNode(cluster, "n3", log);
    await waitReady(cluster, "n3", log);
    expect(await call("n3", "counter/tok/add")).toBeGreaterThan(0);
  }, 300_000);

  /** Every node in turn, stopped and started again with `env` over its settings: two always run. */
  const restartEveryNode = async (env: Record<string, string>) => {
    for (const node of LOCAL_NODES) {
      await killNode(cluster, node);
      await startNode(cluster, node, log, env);
      await waitReady(cluster, node, log);
    }
  };
  /** Whether Restate still has deployment `id`, as `node`'s admin API sees it. */
  const hasDeployment = (node: string, id: string) =>
    new AdminClient({ url: info(node).admin, token }).hasDeployment(id);

  it("(h) a rollout over the cluster: 10% of 1,000 calls through every ingress, keys sticky through every node and a rolling restart; promote is followed and pruned everywhere", async () => {
    const stable: string = (await cli("n1", "status", "counter")).active;
    const deployed = await cli(
      "n1",
      "deploy",
      fileURLToPath(sources.counter2 as string),
      "--name",
      "counter",
      "--version",
      "3.0.0",
      "--percent",
      "10",
    );
    expect(deployed.rollout).toEqual({ stable, percent: 10 });
    const canary: string = deployed.buildId;
    await eventually(async () => {
      const { builds } = await expectEveryNodeAsStatus("counter");
      expect(builds.find((b) => b.buildId === canary)?.state).toBe("canary");
    }, 60_000);

    // Key i through node i mod 3: each answer is 1 (stable) or 10 (canary) for a new key.
    const keys = [...Array(1000).keys()].map((i) => `share-${i}`);
    const through = (i: number) => LOCAL_NODES[i % LOCAL_NODES.length] as string;
    const started = Date.now();
    const first = await pool(keys, 12, (key, i) => call(through(i), `counter/${key}/add`) as Promise<number>);
    const onCanary = first.filter((r) => r === 10).length;
    console.log(
      `[cluster] 1,000 calls at 10% over three ingresses: ${onCanary} on the canary, ${Date.now() - started} ms`,
    );
    expect(first.every((r) => r === 1 || r === 10)).toBe(true);
    const [low, high] = bounds(1000, 0.1);
    expect(onCanary).toBeGreaterThanOrEqual(low);
    expect(onCanary).toBeLessThanOrEqual(high);
    // Whichever node ran it, each key went where the split's hash sends it.
    const split = { stable, canary, percent: 10 };
    expect(keys.filter((key, i) => first[i] !== (toCanary(split, key) ? 10 : 1))).toEqual([]);

    // Every node restarted (quicker drains for what follows): each catches up and routes the split
    // as before. 100 keys called twice more, each call through another node, never change build.
    const restarting = Date.now();
    await restartEveryNode(QUICK_DRAIN);
    console.log(`[cluster] every node restarted in turn in ${Date.now() - restarting} ms`);
    const sticky = keys.slice(0, 100);
    for (const turn of [1, 2]) await pool(sticky, 12, (key, i) => call(through(i + turn), `counter/${key}/add`));
    const counts = await pool(sticky, 12, (key) => call("n2", `counter/${key}/get`) as Promise<number>);
    expect(sticky.filter((_, i) => counts[i] !== (first[i] as number) * 3)).toEqual([]);

    // A step through n2, promote through n3.
    const ramped = await cli("n2", "rollout", "counter", "--percent", "50");
    expect(ramped.rollout).toEqual({ stable, percent: 50 });
    const promoted = await cli("n3", "promote", "counter");
    expect(promoted.buildId).toBe(canary);
    for (const node of LOCAL_NODES) expect(await call(node, `counter/promoted-${node}/add`)).toBe(10);
    const promotedAt = Date.now();
    // Both splits drain and Restate forgets them; the old build drains after them and is pruned:
    // no node routes or serves it, and every node keeps the files status says are kept.
    await eventually(async () => {
      for (const node of LOCAL_NODES) {
        expect(await hasDeployment(node, deployed.deploymentId)).toBe(false);
        expect(await hasDeployment(node, ramped.deploymentId)).toBe(false);
      }
      const view = await cli("n1", "status", "counter");
      expect(view.active).toBe(canary);
      expect(view.rollout).toBeUndefined();
      const { builds } = await expectEveryNodeAsStatus("counter");
      expect(builds.find((b) => b.buildId === stable)?.state).toBe("pruned");
    }, 120_000);
    console.log(
      `[cluster] both splits and the old build pruned on every node ${Date.now() - promotedAt} ms after promote`,
    );
  }, 600_000);

  it("(i) --auto judges a canary by every node's outcomes: one whose calls fail is aborted, and no call is lost", async () => {
    // Calls run on the leaders of their partitions: after (h)'s rolling restart Restate may still
    // have every partition on one node, and gives leaderships back within a minute, as in (c),
    // though not always to every node (seen: 4 partitions on two nodes for minutes).
    await eventually(async () => {
      const leading = ((await cli("n1", "nodes")) as { partitionsLed: number }[]).filter((n) => n.partitionsLed > 0);
      expect(leading.length).toBeGreaterThan(1);
    }, 90_000);
    await cli("n1", "deploy", fileURLToPath(sources.flakyFixed as string), "--name", "flaky", "--version", "1.0.0");
    const broken = await cli(
      "n2",
      "deploy",
      fileURLToPath(sources.flakyBroken as string),
      "--name",
      "flaky",
      "--version",
      "2.0.0",
      "--percent",
      "50",
      "--auto",
      "50",
      "--auto-interval",
      String(JUDGE_S),
    );
    // Every call that lands on the broken canary fails twice and pauses (the fixture's retry
    // policy) until resumed; they run on the leaders of their partitions, spread over the nodes.
    // With two nodes leading 3 and 1 of the 4 partitions, the half of 30 calls the canary got all
    // landed on one node about once in 55 runs (CI saw it); of 90 calls, about once in 165,000.
    const CALLS = 90;
    const calls = answersOf(
      [...Array(CALLS).keys()].map(
        (i) => call(LOCAL_NODES[i % LOCAL_NODES.length] as string, "flaky/run", 180_000) as Promise<string>,
      ),
    );
    const admin = new AdminClient({ url: info("n1").admin, token });
    const unsettled = async () =>
      (
        await admin.query(
          "SELECT id FROM sys_invocation_status WHERE target_service_name = 'flaky' AND status NOT IN ('completed', 'paused')",
        )
      ).length;
    await eventually(async () => expect(await unsettled()).toBe(0), 60_000);
    // Settled before the judgement: what it reads is every attempt the canary will ever make.
    expect((await cli("n3", "status", "flaky")).rollout).toBeDefined();
    const canaryOn = async (node: string) => {
      const response = await fetch(`${info(node).ops}/outcomes`, { signal: AbortSignal.timeout(5_000) });
      const builds = (await response.json()) as { build: string; counts: Record<string, number> }[];
      const counts = builds.find((b) => b.build === broken.buildId)?.counts ?? {};
      const failed = (counts.error ?? 0) + (counts.exception ?? 0) + (counts.killed ?? 0);
      return { failed, all: failed + (counts.ok ?? 0) };
    };
    const perNode = await Promise.all(LOCAL_NODES.map(canaryOn));
    console.log(`[cluster] the canary's attempts per node: ${JSON.stringify(perNode)}`);
    // The attempts ran on more than one node: a judgement that read one node would see fewer.
    expect(perNode.filter((n) => n.all > 0).length).toBeGreaterThan(1);

    let canary: { error?: string; history: { event: string; at: string }[] } | undefined;
    await eventually(async () => {
      const view = await cli("n3", "status", "flaky");
      expect(view.rollout).toBeUndefined();
      canary = view.builds.find((b: { buildId: string }) => b.buildId === broken.buildId);
      expect(canary?.history.map((h) => h.event)).toContain("aborted");
    }, 90_000);
    // The judgement counted the attempts of every node, and came one interval after the rollout.
    const counted = canary?.error?.match(/\((\d+) of (\d+)\)/);
    expect(counted?.slice(1).map(Number)).toEqual([
      perNode.reduce((sum, n) => sum + n.failed, 0),
      perNode.reduce((sum, n) => sum + n.all, 0),
    ]);
    const at = (event: string) => Date.parse(canary?.history.find((h) => h.event === event)?.at ?? "");
    expect(at("aborted") - at("rolled out")).toBeLessThan((JUDGE_S + 20) * 1000);
    console.log(
      `[cluster] --auto aborted the canary ${at("aborted") - at("rolled out")} ms after its rollout, on ${counted?.[1]} failed of ${counted?.[2]} attempts`,
    );

    // The paused calls move to the stable build and finish there.
    await cli("n1", "resume", "flaky");
    expect(await calls).toEqual(Array(CALLS).fill("fixed"));
  }, 300_000);
});
