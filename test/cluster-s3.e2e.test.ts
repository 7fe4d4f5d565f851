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
  down,
  killNode,
  LOCAL_NODES,
  type LocalCluster,
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
        // Restate's own setting: a snapshot every 50 records per partition, so the test sees some.
        RESTATE_WORKER__SNAPSHOTS__SNAPSHOT_INTERVAL_NUM_RECORDS: "50",
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
    expect(manifest.objects).toBe(`s3://${BUCKET}/builds`);
    expect(manifest.files.map((f: { chunks: number }) => f.chunks)).toEqual(manifest.files.map(() => 0));
    expect(await call("n1", `bundles/${key}/chunk`, { file: "blob.bin", index: 0 })).toBeNull();
    const objects = await stored();
    expect(objects).toEqual(manifest.files.map((f: { sha256: string }) => `builds/sha256/${f.sha256}`).sort());

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
  }, 300_000);
});
