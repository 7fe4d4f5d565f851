import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { execa } from "execa";
import getPort from "get-port";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterTlsFiles, restatectlTlsArgs } from "../control/cluster/tls.ts";
import { MB } from "../control/memory.ts";
import { binaries } from "../control/node/binaries.ts";
import {
  addNode,
  down,
  killNode,
  LOCAL_NODES,
  type LocalCluster,
  logPath,
  nodeInfo,
  readToken,
  startNode,
  tlsDir,
  up,
  waitReady,
} from "../tools/local-cluster/local.ts";
import { buildWorker, eventually } from "./mesh.ts";
import { hasCeph, startTestS3, type TestS3, testS3Env } from "./s3.ts";

const ROOT = resolve(import.meta.dirname, "..");
const log = (line: string) => console.log(line);
const canMakeHosts = process.getuid?.() === 0 && (await execa("ip", ["-V"], { reject: false })).exitCode === 0;
const BUCKET = "gridiron-builds";

/**
 * A cluster whose builds go through S3 (GRIDIRON_CLUSTER_BUILDS): three nodes in network
 * namespaces, as in cluster.e2e.test.ts, and Ceph's S3 on the host's end of their bridge.
 */
describe.skipIf(!canMakeHosts || !hasCeph)("a cluster sharing its builds through S3", () => {
  let cluster: LocalCluster;
  let s3: TestS3;
  let token: string;
  let buildsDir: string;
  const sources: Record<string, string> = {};
  /** The counter build the second test activates, pruned by the last. */
  let counter2 = "";
  const info = (node: string) => nodeInfo(cluster, node, true);

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
  const call = async (node: string, path: string, body: unknown = {}) => {
    const response = await fetch(`${info(node).ingress}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${path} on ${node}: ${response.status} ${text}`);
    return JSON.parse(text);
  };
  const stored = async (prefix = "builds/") =>
    ((await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }))).Contents ?? [])
      .map((o) => o.Key)
      .sort();
  const restatectl = (...args: string[]) =>
    execa(
      binaries.restatectl(),
      [
        "-s",
        `https://${info("n1").address}:5122/`,
        ...restatectlTlsArgs(clusterTlsFiles(tlsDir(cluster, "n1"))),
        ...args,
      ],
      { timeout: 30_000 },
    );

  /** Each log's trim point (a partition's log has the partition's id): where its log now starts. */
  const trimPoints = async () => {
    const { stdout } = await restatectl("logs", "describe", "--extra");
    const points = [...stdout.matchAll(/Log Id: (\d+)[^\n]*\n\s*Trim Point LSN: (\d+)/g)];
    return new Map(points.map((m) => [Number(m[1]), Number(m[2])]));
  };
  /** Restate's plain id of a node (N4 in restatectl's lists is 4). */
  const restateNodeId = async (node: string) => {
    const { stdout } = await restatectl("sql", "--json", `SELECT plain_node_id FROM nodes WHERE name = '${node}'`);
    const [row] = JSON.parse(stdout) as { plain_node_id: number | string }[];
    return Number(String(row?.plain_node_id).replace(/^N/, ""));
  };
  /** The partition processors `partitions list` shows: partition, node id, mode (Leader, Follower), status. */
  const processors = async () => {
    const { stdout } = await restatectl("partitions", "list");
    return [...stdout.matchAll(/^\s*(\d+)\s+N(\d+):\d+\s+(\w+)\s+(\w+)/gm)].map((m) => ({
      partition: Number(m[1]),
      node: Number(m[2]),
      mode: m[3] as string,
      status: m[4] as string,
    }));
  };

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), "gridiron-cluster-s3-"));
    buildsDir = join(dir, "builds");
    const net = {
      prefix: process.env.GRIDIRON_TEST_S3_CLUSTER_PREFIX ?? "grs",
      subnet: process.env.GRIDIRON_TEST_S3_CLUSTER_SUBNET ?? "10.79.0",
    };
    // The nodes reach the host at .254 on their bridge, which `up` makes; Restate needs its
    // snapshot repository before that (its partitions do not open without it), so S3 listens on
    // every address of the host, on a free port.
    const host = `${net.subnet}.254`;
    const port = await getPort();
    s3 = await startTestS3({ bind: "0.0.0.0", port });
    await s3.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    cluster = {
      dir: join(dir, "cluster"),
      net,
      nodeEnv: {
        ...testS3Env(`http://${host}:${port}`),
        GRIDIRON_CLUSTER_BUILDS: `s3://${BUCKET}/builds`,
        GRIDIRON_CLUSTER_SNAPSHOTS: `s3://${BUCKET}/snapshots`,
        // Restate's own settings: a snapshot every 50 records per partition, so the test sees
        // some; the log trimmed behind them at once, not 10 minutes later; and the lines that say
        // a partition was restored from a snapshot.
        RESTATE_WORKER__SNAPSHOTS__SNAPSHOT_INTERVAL_NUM_RECORDS: "50",
        RESTATE_WORKER__TRIM_DELAY_INTERVAL: "1s",
        RESTATE_LOG_FILTER: "warn,octocrab=off,restate_partition_store=info",
        // A pruned build's files are deleted at once (and its objects from the bucket).
        GRIDIRON_KEEP_BUILDS: "1",
      },
    };
    await Promise.all([
      up(cluster, log),
      (async () => {
        sources.counter2 = await buildWorker("counter", join(buildsDir, "counter2"), { STEP: "10" });
        // A bundle at the size limit, as in cluster.e2e.test.ts: 47 MB that does not compress.
        sources.big = await buildWorker("test/fixtures/shape", join(buildsDir, "big"), { OBJECT: "false" });
        await writeFile(join(buildsDir, "big", "blob.bin"), randomBytes(47 * MB));
      })(),
    ]);
    token = await readToken(cluster);
  }, 300_000);

  afterAll(async () => {
    if (cluster) await down(cluster);
    await s3?.stop();
    if (cluster) await rm(resolve(cluster.dir, ".."), { recursive: true, force: true });
  }, 60_000);

  it("a 50 MB bundle reaches every node through S3, stored once by hash; Restate keeps only the manifest", async () => {
    const deploy = (version: string) =>
      cli("n2", "deploy", fileURLToPath(sources.big as string), "--name", "big", "--version", version);
    // Without --json, to show each step's time beside cluster.e2e.test.ts's, through Restate's state.
    const started = Date.now();
    const shown = await execa(
      process.execPath,
      [join(ROOT, "control/cli/main.ts"), "deploy", fileURLToPath(sources.big as string), "--name", "big"],
      {
        env: {
          GRIDIRON_INGRESS_URL: info("n2").ingress,
          GRIDIRON_ADMIN_URL: info("n2").admin,
          GRIDIRON_ADMIN_TOKEN: token,
        },
        timeout: 180_000,
        all: true,
      },
    );
    console.log(`[cluster-s3] a 48.8 MB bundle activated on three nodes through S3 in ${Date.now() - started} ms`);
    console.log(shown.all);
    const result = { buildId: (shown.stdout.match(/build\s+(\S+)/) as RegExpMatchArray)[1] as string };
    const blob = await readFile(join(buildsDir, "big", "blob.bin"));
    for (const node of LOCAL_NODES) {
      expect(await call(node, "shape/kind")).toBe("service");
      const copy = await readFile(join(cluster.dir, node, "bundles", "big", result.buildId, "blob.bin"));
      expect(copy.equals(blob)).toBe(true);
    }
    const key = `big@${result.buildId}`;
    const manifest = await call("n1", `bundles/${key}/manifest`);
    // Under a prefix of the bundle's own: a prune of another bundle never deletes its files.
    expect(manifest.objects).toBe(`s3://${BUCKET}/builds/big`);
    expect(manifest.files.map((f: { chunks: number }) => f.chunks)).toEqual(manifest.files.map(() => 0));
    expect(await call("n1", `bundles/${key}/chunk`, { file: "blob.bin", index: 0 })).toBeNull();
    const objects = await stored();
    expect(objects).toEqual(manifest.files.map((f: { sha256: string }) => `builds/big/sha256/${f.sha256}`).sort());

    // The same files again under another version: nothing new is stored.
    await deploy("1.0.1");
    expect(await stored()).toEqual(objects);
  }, 300_000);

  it("a node that was down catches up from S3 and serves the build activated meanwhile", async () => {
    await killNode(cluster, "n3");
    const before = await stored();
    const result = await cli(
      "n1",
      "deploy",
      fileURLToPath(sources.counter2 as string),
      "--name",
      "counter",
      "--version",
      "2.0.0",
    );
    expect((await stored()).length).toBeGreaterThan(before.length);
    counter2 = result.buildId;
    await startNode(cluster, "n3", log);
    await waitReady(cluster, "n3", log);
    await eventually(async () => expect(await call("n3", "counter/s3/add")).toBe(10), 60_000);
    const local = join(cluster.dir, "n3", "bundles", "counter", result.buildId);
    expect((await readFile(join(local, "index.js"))).length).toBeGreaterThan(0);
  }, 300_000);

  it("Restate's partition snapshots go to S3, and its partitions count them as archived", async () => {
    for (let i = 0; i < 300; i++) await call(LOCAL_NODES[i % 3] as string, `counter/snap${i % 8}/add`);
    // Restate's layout: {prefix}/{partition}/latest.json points at the newest snapshot.
    await eventually(
      async () => expect(await stored("snapshots/")).toEqual(expect.arrayContaining(["snapshots/0/latest.json"])),
      120_000,
    );
    console.log(`[cluster-s3] snapshot objects: ${(await stored("snapshots/")).length}`);
    // The partitions report a snapshot as archived a little after it is in the bucket.
    await eventually(async () => {
      const { stdout } = await restatectl("partitions", "list");
      // ID NODE MODE STATUS EPOCH APPLIED DURABLE ARCHIVED: the leaders' archived LSNs.
      const archived = [...stdout.matchAll(/^\s*\d+\s+N\d+:\d+\s+Leader\s+\S+\s+e\d+\s+\d+\s+\d+\s+(\d+)/gm)].map((m) =>
        Number(m[1]),
      );
      expect(Math.max(0, ...archived), stdout).toBeGreaterThan(0);
    }, 60_000);
    // Restate trims each partition's log up to its archived snapshot: the log no longer starts at 0.
    await eventually(async () => {
      const points = await trimPoints();
      expect(points.size).toBeGreaterThan(0);
      expect(Math.max(0, ...points.values()), JSON.stringify([...points])).toBeGreaterThan(0);
    }, 60_000);
    console.log(`[cluster-s3] trim points by log: ${JSON.stringify(Object.fromEntries(await trimPoints()))}`);
  }, 300_000);

  it("a fourth node joins the running cluster, serves, and restores a partition from its snapshot past the trimmed log", async () => {
    const trimmed = [...(await trimPoints())].find(([, point]) => point > 0);
    expect(trimmed, "a partition whose log was trimmed").toBeDefined();
    const [partition, trimPoint] = trimmed as [number, number];
    const started = Date.now();
    let n4Started = 0;
    const n4 = await addNode(cluster, (line) => {
      if (line.startsWith("[cluster] starting n4")) n4Started = Date.now();
      log(line);
    });
    const ready = Date.now();
    expect(n4.name).toBe("n4");
    // Builds first: n4's agent fetched them from a peer before its restate-server started.
    expect(await call("n4", "counter/n4/add")).toBe(10);
    expect(await call("n4", "shape/kind")).toBe("service");
    const served = Date.now();
    console.log(
      `[cluster-s3] n4 added in ${served - started} ms: n1-n3 restarted in turn with it among their peers in ${n4Started - started} ms, then n4 ready ${ready - n4Started} ms after its start and serving ${served - n4Started} ms after it`,
    );

    const id = await restateNodeId("n4");
    const { stdout: metadataServers } = await restatectl("metadata-server", "list-servers");
    console.log(
      `[cluster-s3] n4 is N${id}; its partitions before any placement: ${JSON.stringify((await processors()).filter((p) => p.node === id))}\n${metadataServers}`,
    );
    // Place partition `partition` on n4 too. Its log starts past 0, so n4 cannot replay it from
    // the start; it restores the partition from the snapshot in the bucket.
    const replicas = [
      ...new Set([...(await processors()).filter((p) => p.partition === partition).map((p) => p.node), id]),
    ];
    const placed = Date.now();
    await restatectl(
      "partitions",
      "placement",
      "set",
      String(partition),
      "--replicas",
      replicas.map((n) => `N${n}`).join(","),
      "--freeze",
      "test: a replica on the added node",
      "--yes",
    );
    await eventually(async () => {
      const mine = (await processors()).find((p) => p.partition === partition && p.node === id);
      expect(mine?.status, JSON.stringify(await processors())).toBe("Active");
    }, 120_000);
    const restored = (await readFile(logPath(cluster, "n4"), "utf8"))
      .split("\n")
      .filter((line) => /restoring it|Importing partition store snapshot/.test(line));
    // Restate's line: "Importing partition store snapshot snapshot_applied_lsn=N ... partition_id=P".
    const imported = restored
      .map((line) => /snapshot_applied_lsn=(\d+).*?partition_id=(\d+)/.exec(line))
      .filter((m) => m !== null && Number(m[2]) === partition)
      .map((m) => Number((m as RegExpExecArray)[1]));
    expect(
      imported.length,
      `n4 restored partition ${partition} from a snapshot:\n${restored.join("\n")}`,
    ).toBeGreaterThan(0);
    expect(Math.min(...imported)).toBeGreaterThanOrEqual(trimPoint);
    console.log(
      `[cluster-s3] partition ${partition} (log trimmed to ${trimPoint}) active on n4 ${Date.now() - placed} ms after its placement, from its snapshot at LSN ${imported[0]}:\n${restored.join("\n")}`,
    );
  }, 600_000);

  it("a pruned build's objects leave the bucket, but for those another build still has", async () => {
    const manifestOf = (key: string) => call("n1", `bundles/${key}/manifest`);
    const before = await manifestOf(`counter@${counter2}`);
    // A new counter: another index.js, the same SDK wasm.
    const source = await buildWorker("counter", join(buildsDir, "counter3"), { STEP: "100" });
    const next = await cli("n1", "deploy", fileURLToPath(source), "--name", "counter", "--version", "3.0.0");
    const after = await manifestOf(`counter@${next.buildId}`);
    const hashes = (m: { files: { sha256: string }[] }) => new Set(m.files.map((f) => f.sha256));
    const shared = [...hashes(before)].filter((h) => hashes(after).has(h));
    const own = [...hashes(before)].filter((h) => !hashes(after).has(h));
    expect(shared.length).toBeGreaterThan(0);
    expect(own.length).toBeGreaterThan(0);

    await cli("n1", "prune", "counter", counter2, "--force", "--yes");
    expect(await manifestOf(`counter@${counter2}`)).toBeNull();
    const objects = await stored();
    for (const hex of own) expect(objects).not.toContain(`builds/counter/sha256/${hex}`);
    for (const hex of shared) expect(objects).toContain(`builds/counter/sha256/${hex}`);
    expect(await call("n2", "counter/pruned/add")).toBe(100);
  }, 300_000);
});
