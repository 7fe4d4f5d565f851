import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterTlsFiles, restatectlTlsArgs } from "../control/cluster/tls.ts";
import { binaries } from "../control/node/binaries.ts";
import { loadSettings } from "../control/settings.ts";
import { answers } from "../control/wait.ts";
import {
  create,
  down,
  killNode,
  LOCAL_NODES,
  type LocalCluster,
  logPath,
  nodeInfo,
  readToken,
  startNode,
  tlsDir,
  waitReady,
} from "../tools/local-cluster/local.ts";
import { namespaceExists, pidsIn } from "../tools/local-cluster/netns.ts";
import { eventually } from "./mesh.ts";

const ROOT = resolve(import.meta.dirname, "..");
const log = (line: string) => console.log(line);
/** Every node of the local cluster uses the default token port. */
const TOKEN_PORT = loadSettings({}).clusterTokenPort;

/**
 * A cluster of three that starts cold, every node at once, with one node's admin token wrong:
 * nobody runs yet to refuse it through an ingress, so only the nodes' token check (proofs over
 * mutual TLS between their supervisors) can stop it. Network names and a subnet of its own, so
 * it runs beside the other cluster tests and a user's local cluster.
 */
const canMakeHosts = process.getuid?.() === 0 && (await execa("ip", ["-V"], { reject: false })).exitCode === 0;

describe.skipIf(!canMakeHosts)("a cluster started cold with one node's admin token wrong", () => {
  let cluster: LocalCluster;
  let token: string;
  const info = (node: string) => nodeInfo(cluster, node, true);
  const said = async (node: string) => readFile(logPath(cluster, node), "utf8").catch(() => "");
  /** `gridiron nodes` through n1, as a user would ask. */
  const listed = async (): Promise<{ name: string; alive: boolean; partitionsLed: number }[]> => {
    const { stdout } = await execa(process.execPath, [join(ROOT, "control/cli/main.ts"), "nodes", "--json"], {
      env: {
        GRIDIRON_INGRESS_URL: info("n1").ingress,
        GRIDIRON_ADMIN_URL: info("n1").admin,
        GRIDIRON_ADMIN_TOKEN: token,
      },
      timeout: 60_000,
    });
    return JSON.parse(stdout);
  };

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), "gridiron-cluster-token-"));
    cluster = {
      dir: join(dir, "cluster"),
      net: {
        prefix: process.env.GRIDIRON_TEST_TOKEN_CLUSTER_PREFIX ?? "grk",
        subnet: process.env.GRIDIRON_TEST_TOKEN_CLUSTER_SUBNET ?? "10.80.0",
      },
    };
    await create(cluster);
    token = await readToken(cluster);
  }, 120_000);

  afterAll(async () => {
    if (!cluster) return;
    await down(cluster);
    for (const node of LOCAL_NODES) expect(await namespaceExists(cluster.net, node)).toBe(false);
    await rm(resolve(cluster.dir, ".."), { recursive: true, force: true });
  }, 60_000);

  it("that node waits while nobody answers, stops naming its peers once they run, and leads nothing; the others serve", async () => {
    // The wrong node first, alone: nobody can answer it yet, so it waits and says so.
    await startNode(cluster, "n3", log, { GRIDIRON_ADMIN_TOKEN: randomBytes(32).toString("hex") });
    await eventually(
      async () => expect(await said("n3")).toMatch(/waiting for 1 more peer\(s\) to confirm this node's admin token/),
      60_000,
    );
    expect(await said("n3")).not.toContain("[gridiron] starting restate-server");
    // An anonymous client, on the network but without a peer's certificate, gets no proof from it.
    await expect(
      request(`https://${info("n3").address}:${TOKEN_PORT}/token-proof`, {
        method: "POST",
        body: JSON.stringify({ nonce: "ab".repeat(32) }),
        headersTimeout: 2_000,
      }),
    ).rejects.toThrow();
    // Then the two right ones, together: they confirm each other and refuse it.
    await Promise.all(["n1", "n2"].map((node) => startNode(cluster, node, log)));
    await eventually(async () => {
      expect(await said("n3")).toMatch(
        /n1, n2 refused this node's admin token: each proved, over mutual TLS with its certificate, that it holds another one\. Every node of a cluster needs the same GRIDIRON_ADMIN_TOKEN/,
      );
      expect(await pidsIn(cluster.net, "n3")).toEqual([]);
    }, 120_000);
    // The supervisor's own line, not the error's "Not starting restate-server".
    expect((await said("n3")).split("\n")).not.toContain("[gridiron] starting restate-server");
    await Promise.all(["n1", "n2"].map((node) => waitReady(cluster, node, log)));
    expect(await said("n1")).toMatch(/admin token confirmed by n2/);

    // n3 leads no partition and is no member: the two others lead every one.
    const nodes = await listed();
    expect(nodes.find((n) => n.name === "n3")).toMatchObject({ alive: false, partitionsLed: 0 });
    expect(nodes.filter((n) => n.alive).map((n) => n.name)).toEqual(["n1", "n2"]);
    const members = await execa(
      binaries.restatectl(),
      [
        "-s",
        `https://${info("n1").address}:5122/`,
        ...restatectlTlsArgs(clusterTlsFiles(tlsDir(cluster, "n1"))),
        "sql",
        "--json",
        "SELECT name FROM nodes",
      ],
      { timeout: 30_000 },
    );
    expect(JSON.parse(members.stdout).map((r: { name: string }) => r.name)).not.toContain("n3");
    // The others serve: admin calls through each ingress pass with the cluster's token.
    for (let i = 0; i < 6; i++) {
      const answer = await fetch(`${info(i % 2 ? "n2" : "n1").ingress}/routes/local/served`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: "{}",
      });
      expect(answer.status).toBe(200);
    }
    expect(await answers(`${info("n3").ops}/livez`)).toBe(false);

    // With the right token it joins and serves.
    await startNode(cluster, "n3", log);
    await waitReady(cluster, "n3", log);
    await eventually(async () => expect((await listed()).find((n) => n.name === "n3")?.alive).toBe(true), 60_000);
  }, 420_000);

  it("a running node stops once the others were given another token: n1 and n2 restarted together with a new one", async () => {
    const before = (await said("n3")).length;
    const rotated = randomBytes(32).toString("hex");
    await Promise.all(["n1", "n2"].map((node) => killNode(cluster, node)));
    await Promise.all(["n1", "n2"].map((node) => startNode(cluster, node, log, { GRIDIRON_ADMIN_TOKEN: rotated })));
    // n3 asks again within its recheck interval (30 s), finds itself outvoted and stops everything.
    await eventually(async () => {
      expect((await said("n3")).slice(before)).toMatch(/stopped: n1, n2 refused this node's admin token/);
      expect(await pidsIn(cluster.net, "n3")).toEqual([]);
    }, 150_000);
    await Promise.all(["n1", "n2"].map((node) => waitReady(cluster, node, log)));
    token = rotated;
    await eventually(async () => {
      const nodes = await listed();
      expect(nodes.find((n) => n.name === "n3")).toMatchObject({ alive: false, partitionsLed: 0 });
    }, 60_000);
    for (const node of ["n1", "n2"]) {
      const answer = await fetch(`${info(node).ingress}/routes/local/served`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${rotated}` },
        body: "{}",
      });
      expect(answer.status).toBe(200);
    }
  }, 300_000);
});
