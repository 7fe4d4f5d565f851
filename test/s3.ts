import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { execa } from "execa";
import getPort from "get-port";
import { afterAll, beforeAll } from "vitest";
import { waitFor } from "../control/wait.ts";
import { isAlive } from "./mesh.ts";

/**
 * A real S3 for tests: Debian's Ceph (one monitor, one OSD holding its data in memory, the RADOS
 * Gateway answering S3) started in a temp dir on free ports, and killed by PID after. No cephx,
 * no manager, no systemd. `.ci/run` installs the packages; where they are missing the tests that
 * need S3 are skipped.
 */

const CEPH_BINARIES = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool"];
export const hasCeph =
  (await execa("sh", ["-c", CEPH_BINARIES.map((b) => `command -v ${b}`).join(" && ")], { reject: false })).exitCode ===
  0;
export const NO_CEPH = `Ceph is not installed (${CEPH_BINARIES.join(", ")}): the S3 tests are skipped; .ci/run installs ceph-mon ceph-osd radosgw ceph-common`;
if (!hasCeph) console.warn(NO_CEPH);

const START_STEP_MS = 40_000;
const STOP_MS = 10_000;
const ACCESS_KEY = "gridirontestaccess01";
const SECRET_KEY = "gridirontestsecret0000000000000000000001";
const OTHER_ACCESS_KEY = "gridirontestother001";

export interface TestS3 {
  endpoint: string;
  /** What a process needs to reach it through the AWS SDK's standard chain. */
  env: Record<string, string>;
  client: S3Client;
  /** Another account's client: its buckets are not the first one's to read. */
  other: S3Client;
  /** A new, empty bucket. */
  bucket(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * The settings Ceph needed here, each for a reason seen: the monitor client mode (radosgw looped
 * on -13 without it), a short paxos interval (13 s to start without it), tcp_nodelay (48 ms
 * stalls per small request without it).
 */
function cephConf(dir: string, fsid: string, monPort: number, s3Address: string): string {
  return `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
run dir = ${dir}/run
log file = ${dir}/log/$name.log
mon data = ${dir}/mon
osd data = ${dir}/osd
osd objectstore = memstore
osd pool default size = 1
osd pool default pg num = 8
mon allow pool size one = true
paxos propose interval = 0.05
paxos min wait = 0.01
rgw data = ${dir}/rgw
rgw frontends = beast endpoint=${s3Address} tcp_nodelay=1
`;
}

/** What a process needs to reach the test S3 at `endpoint` through the AWS SDK's standard chain. */
export function testS3Env(endpoint: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: SECRET_KEY,
    AWS_REGION: "us-east-1",
  };
}

/**
 * Starts Ceph's S3 in a fresh dir under /tmp/s3, about 2 s on an idle machine: on 127.0.0.1 and a
 * free port, or where told (0.0.0.0, for network namespaces that reach the host through a bridge
 * made after it starts). The test's own client uses loopback.
 */
export async function startTestS3({
  bind = "127.0.0.1",
  port,
}: {
  bind?: string;
  port?: number;
} = {}): Promise<TestS3> {
  await mkdir("/tmp/s3", { recursive: true });
  const dir = await mkdtemp("/tmp/s3/ceph-");
  const conf = join(dir, "ceph.conf");
  const pids: number[] = [];
  const stop = async () => {
    for (const pid of pids.filter(isAlive)) process.kill(pid, "SIGKILL");
    await waitFor("Ceph's daemons to exit", async () => !pids.some(isAlive), STOP_MS).catch(() => {});
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    const [monPort, s3Port] = [await getPort(), port ?? (await getPort())];
    const fsid = randomUUID();
    await Promise.all(["mon", "osd", "rgw", "log", "run"].map((d) => mkdir(join(dir, d))));
    await writeFile(conf, cephConf(dir, fsid, monPort, `${bind}:${s3Port}`));
    const monmap = join(dir, "monmap");
    await execa("monmaptool", ["--create", "--fsid", fsid, "--addv", "a", `[v2:127.0.0.1:${monPort}]`, monmap]);
    await execa("ceph-mon", ["-c", conf, "-i", "a", "--mkfs", "--monmap", monmap]);
    // Foreground (-f) and in their own process group, so they are ours to kill by PID.
    const start = (command: string, args: string[]) => {
      const { pid } = execa(command, ["-c", conf, "-f", ...args], { detached: true, stdio: "ignore", reject: false });
      if (pid !== undefined) pids.push(pid);
    };
    const ceph = (...args: string[]) => execa("ceph", ["-c", conf, "--connect-timeout", "5", ...args]);
    start("ceph-mon", ["-i", "a"]);
    await waitFor("Ceph's monitor", async () => Boolean(await ceph("mon", "stat")), START_STEP_MS);
    const osdUuid = randomUUID();
    const id = (await ceph("osd", "new", osdUuid)).stdout.trim();
    // The OSD never booted without its uuid given at mkfs.
    await execa("ceph-osd", ["-c", conf, "-i", id, "--mkfs", "--osd-uuid", osdUuid]);
    start("ceph-osd", ["-i", id]);
    await waitFor("Ceph's OSD", async () => (await ceph("osd", "stat")).stdout.includes(" 1 up"), START_STEP_MS);
    start("radosgw", ["-n", "client.rgw.a"]);
    const endpoint = `http://${bind === "0.0.0.0" ? "127.0.0.1" : bind}:${s3Port}`;
    await waitFor("Ceph's S3 gateway", async () => (await fetch(endpoint)).ok, START_STEP_MS);
    const user = (uid: string, access: string, secret: string) =>
      execa("radosgw-admin", [
        ...["-c", conf, "user", "create", `--uid=${uid}`, `--display-name=${uid}`],
        ...[`--access-key=${access}`, `--secret-key=${secret}`],
      ]);
    await user("test", ACCESS_KEY, SECRET_KEY);
    await user("other", OTHER_ACCESS_KEY, SECRET_KEY);
    const env = testS3Env(endpoint);
    const clientOf = (accessKeyId: string) =>
      new S3Client({
        endpoint,
        region: "us-east-1",
        forcePathStyle: true,
        credentials: { accessKeyId, secretAccessKey: SECRET_KEY },
      });
    const client = clientOf(ACCESS_KEY);
    const other = clientOf(OTHER_ACCESS_KEY);
    const bucket = async () => {
      const name = `b-${randomUUID().slice(0, 8)}`;
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    };
    return {
      endpoint,
      env,
      client,
      other,
      bucket,
      stop: async () => {
        client.destroy();
        other.destroy();
        await stop();
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * For one describe block: a Ceph S3 started before the block's other hooks and stopped after.
 * `env` is filled in place before the mesh's hook reads it, so pass it to useTestMesh.
 */
export function useTestS3(): { s3: TestS3; env: Record<string, string> } {
  const fixture = { env: {} } as { s3: TestS3; env: Record<string, string> };
  beforeAll(async () => {
    fixture.s3 = await startTestS3();
    Object.assign(fixture.env, fixture.s3.env);
  }, 120_000);
  afterAll(async () => {
    await fixture.s3?.stop();
  }, 30_000);
  return fixture;
}
