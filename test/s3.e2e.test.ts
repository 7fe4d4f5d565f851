import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import * as tar from "tar";
import { describe, expect, test } from "vitest";
import type { StatusView } from "../control/domain/lifecycle.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { gridironOf } from "./cli.ts";
import { useTestMesh } from "./mesh.ts";
import { hasCeph, useTestS3 } from "./s3.ts";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/**
 * s3:// sources against a real S3 (Ceph's gateway, see s3.ts): the mesh reads them with the AWS
 * SDK's standard chain, here AWS_ENDPOINT_URL_S3 and the access keys in its environment.
 */
describe.skipIf(!hasCeph)("s3:// sources and deploy --upload", () => {
  const store = useTestS3();
  // Filled in by the store's hook, which runs first; the mesh reads it when it starts.
  const env = Object.assign(store.env, { GRIDIRON_MAX_BUNDLE_MB: "3", GRIDIRON_FETCH_TIMEOUT_SECONDS: "5" });
  const fx = useTestMesh({ greeter: ["greeter"] }, env);
  const gridiron = gridironOf(() => fx.mesh);

  let bucket = "";
  const objects = new Map<string, Buffer>();
  const put = async (Bucket: string, Key: string, Body: Buffer, client = store.s3.client) => {
    await client.send(new PutObjectCommand({ Bucket, Key, Body }));
    objects.set(Key, Body);
  };
  const s3Setup = async () => {
    if (bucket) return;
    bucket = await store.s3.bucket();
    const outdir = new URL(fx.sources.greeter as string).pathname;
    const greeter = Buffer.from(
      await tar.c({ gzip: true, cwd: join(outdir, ".."), portable: true }, ["greeter"]).concat(),
    );
    await put(bucket, "builds/greeter.tgz", greeter);
    await put(bucket, "big.bin", Buffer.alloc(4 * 1024 * 1024));
    await put(bucket, "not-an-archive", Buffer.from("hello"));
    // Another account's private bucket: the mesh's keys may not read it.
    await store.s3.other.send(new CreateBucketCommand({ Bucket: `${bucket}-other` }));
    await put(`${bucket}-other`, "greeter.tgz", greeter, store.s3.other);
  };

  const activate = (name: string, source: string, hash: string) =>
    fx.ingress.call<ActivateResult>(`deployer/${name}/activate`, { source, sha256: hash, version: "1.0.0" });

  test("a tar.gz at s3://bucket/key with the right sha256 is activated and serves", async () => {
    await s3Setup();
    const hash = sha256(objects.get("builds/greeter.tgz") as Buffer);
    const result = await activate("greeter", `s3://${bucket}/builds/greeter.tgz`, hash);
    expect(result.services).toEqual(["greeter"]);
    expect(await fx.ingress.call("greeter/greet", "s3")).toMatch(/^Hello, s3! /);
    expect(await readdir(fx.mesh.settings.downloadsDir)).toEqual([]);
  });

  test.each([
    ["a missing bucket", (b: string) => `s3://${b}-gone/greeter.tgz`, "0", /no such bucket b-[0-9a-f]{8}-gone$/],
    [
      "a missing key",
      (b: string) => `s3://${b}/builds/gone.tgz`,
      "0",
      /no such key s3:\/\/b-[0-9a-f]{8}\/builds\/gone\.tgz$/,
    ],
    [
      "another account's object",
      (b: string) => `s3://${b}-other/greeter.tgz`,
      "greeter",
      /access denied to s3:\/\/b-[0-9a-f]{8}-other\/greeter\.tgz \(AccessDenied\)/,
    ],
    ["a wrong sha256", (b: string) => `s3://${b}/builds/greeter.tgz`, "0", /does not have the expected sha256 0{64}$/],
    ["an object over the size limit", (b: string) => `s3://${b}/big.bin`, "0", /4\.0 MB, over the limit of 3\.0 MB/],
    ["an object that is no archive", (b: string) => `s3://${b}/not-an-archive`, "", /not a tar, tar\.gz or zip/],
    ["a bucket with no key", (b: string) => `s3://${b}`, "0", /names no key/],
  ])("%s is refused with a 400, at once, and changes nothing", async (_, sourceOf, given, message) => {
    await s3Setup();
    const source = sourceOf(bucket);
    const before = await fx.ingress.call("deployer/refused/status");
    const key = new URL(source).pathname.slice(1);
    const hash =
      given === "0" ? "0".repeat(64) : sha256(objects.get(given === "greeter" ? "builds/greeter.tgz" : key) as Buffer);
    const started = performance.now();
    const error = await activate("refused", source, hash).then(
      () => expect.fail("activated"),
      (thrown: unknown) => thrown as Error,
    );
    const elapsedMs = performance.now() - started;
    expect(error).toMatchObject({ status: 400 });
    expect(error.message).toMatch(message);
    console.log(`${source}: refused in ${Math.round(elapsedMs)} ms`);
    // No retry loop, the SDK's or Restate's: the first answer is the last.
    expect(elapsedMs).toBeLessThan(5_000);
    expect(await fx.ingress.call("deployer/refused/status")).toEqual(before);
    expect(await readdir(join(fx.mesh.settings.bundlesDir, "refused")).catch(() => [])).toEqual([]);
    expect(await readdir(fx.mesh.settings.downloadsDir).catch(() => [])).toEqual([]);
  });

  test("deploy --upload stores a build by its sha256, once, and activates it from there; deploy takes an s3:// URL too", async () => {
    await s3Setup();
    const prefix = `s3://${bucket}/ci/greeter`;
    const deploy = (args: string[]) => gridiron(["--json", "deploy", ...args], store.env);
    const first = await deploy(["demo/greeter", "--upload", prefix, "--version", "3.0.0"]);
    expect(first.exitCode, first.stderr).toBe(0);
    // An outdir uploaded twice is stored once (wrangler's README in a new build has a timestamp).
    const outdir = new URL(fx.sources.greeter as string).pathname;
    for (const version of ["3.0.1", "3.0.2"]) {
      const again = await deploy([outdir, "--name", "greeter", "--upload", `${prefix}/`, "--version", version]);
      expect(again.exitCode, again.stderr).toBe(0);
    }
    expect(await fx.ingress.call("greeter/greet", "upload")).toMatch(/^Hello, upload! /);

    const listed = await store.s3.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "ci/" }));
    const keys = (listed.Contents ?? []).map((o) => o.Key as string);
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(key).toMatch(/^ci\/greeter\/[0-9a-f]{64}\.tar\.gz$/);
      const object = await store.s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(`ci/greeter/${sha256((await object.Body?.transformToByteArray()) ?? new Uint8Array())}.tar.gz`).toBe(key);
    }
    const hash = (keys[0] as string).slice("ci/greeter/".length, -".tar.gz".length);
    // The build records where it came from: the project, as for any CLI deploy.
    const view = JSON.parse((await gridiron(["--json", "status", "greeter"])).stdout) as StatusView;
    expect(view.builds.find((b) => b.version === "3.0.0")?.source).toMatch(/demo\/greeter@[0-9a-f]{40}/);

    // What CI uploaded, activated by its URL and digest, as a mesh elsewhere would.
    const byUrl = await deploy([
      `s3://${bucket}/${keys[0]}`,
      "--sha256",
      hash,
      "--name",
      "greeter",
      "--version",
      "4.0.0",
    ]);
    expect(byUrl.exitCode, byUrl.stderr).toBe(0);
    expect(JSON.parse(byUrl.stdout)).toMatchObject({ name: "greeter", version: "4.0.0", services: ["greeter"] });

    const unsigned = await deploy([`s3://${bucket}/${keys[0]}`, "--name", "greeter"]);
    expect(unsigned.exitCode).toBe(1);
    expect(unsigned.stderr).toMatch(/needs --sha256/);
    const denied = await gridiron(["deploy", "demo/greeter", "--upload", `s3://${bucket}-other/ci`], store.env);
    expect(denied.exitCode).toBe(1);
    expect(denied.stderr).toMatch(/could not upload the build: access denied to s3:\/\/b-[0-9a-f]{8}-other\/ci\//);
  }, 180_000);
});
