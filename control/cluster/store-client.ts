import { createHash, createHmac } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import * as clients from "@restatedev/restate-sdk-clients";
import { BUNDLES, buildKey, bundlesClient } from "../contracts.ts";
import { adminHeaders } from "../credentials/admin-token.ts";
import type { Build } from "../domain/bundle.ts";
import { BundleError } from "../domain/errors.ts";
import { buildDir, inspectBundle, PARTIAL } from "../files/bundle-store.ts";
import { isS3Refusal, type S3Location, s3Client, s3Location, s3Problem, s3Sdk, s3Status } from "../files/s3.ts";
import type { AdminClient } from "../restate/admin-client.ts";
import { CHUNK_BYTES, Manifest, type StoredFile } from "./store-schema.ts";

/** One chunk's call; a store call that hangs (a paused invocation, say) fails the step instead. */
const CALL_TIMEOUT_MS = 30_000;

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

/**
 * An upload call's idempotency key, keyed with the admin token. Restate keeps the answer to the
 * first call with a key, a refusal included: a key anyone could work out from what is public (an
 * activation's invocation id is) would let an anonymous call made first poison the admin's.
 */
export function uploadIdempotencyKey(adminToken: string, uploadId: string, what: string): string {
  return createHmac("sha256", adminToken).update(`${uploadId}/${what}`).digest("base64url");
}

const timed = <I, O>() => clients.rpc.opts<I, O>({ timeout: CALL_TIMEOUT_MS });

/**
 * The bundle store as a node reaches it: through an ingress (its own, or a peer's), with the
 * token. `objects` (`s3://bucket/prefix`) is where the deployer puts builds' files, if not in
 * Restate; a node reads them from wherever the manifest says.
 */
export class StoreClient {
  private readonly ingress: clients.Ingress;
  private readonly adminToken: string;
  private readonly objects: string | undefined;

  constructor(ingressUrl: string, adminToken: string, objects?: string) {
    this.ingress = clients.connect({ url: ingressUrl, headers: adminHeaders(adminToken) });
    this.adminToken = adminToken;
    this.objects = objects;
  }

  private object(build: Pick<Build, "name" | "buildId">) {
    return bundlesClient(this.ingress, build);
  }

  /**
   * Stores the build whose modules are in `dir`. Safe to repeat with the same `uploadId` (the
   * activation's invocation id): every call has an idempotency key made from it. A new
   * activation of a build removed before stores it again.
   */
  async upload(dir: string, build: Build, uploadId: string): Promise<void> {
    const store = this.object(build);
    const once = <I>(what: string) =>
      clients.rpc.opts<I, void>({
        idempotencyKey: uploadIdempotencyKey(this.adminToken, uploadId, what),
        timeout: CALL_TIMEOUT_MS,
      });
    if (this.objects) {
      const objects = bundleObjects(this.objects, build);
      const files = await uploadObjects(objects, dir, build);
      await store.seal({ build, files, objects }, once("manifest"));
      return;
    }
    const files: StoredFile[] = [];
    for (const module of build.modules) {
      const bytes = await readFile(join(dir, module.name));
      const chunks = Math.max(1, Math.ceil(bytes.length / CHUNK_BYTES));
      for (let index = 0; index < chunks; index++) {
        const data = bytes.subarray(index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES).toString("base64");
        await store.put({ file: module.name, index, data }, once(`${module.name}/${index}`));
      }
      files.push({ name: module.name, chunks, sha256: sha256(bytes) });
    }
    await store.seal({ build, files }, once("manifest"));
  }

  /**
   * Removes a stored build. Its files in S3 go too, but for those another stored build has:
   * `inUse` says which (see objectsInUse). The manifest goes last, so a retry after a failure
   * still knows the files.
   */
  async remove(build: Pick<Build, "name" | "buildId">, inUse: () => Promise<Set<string>>): Promise<void> {
    const manifest = await this.object(build).manifest(timed());
    if (manifest?.objects) {
      const { objects, files } = manifest;
      const used = await inUse();
      await deleteObjects(
        objects,
        files.map((f) => f.sha256).filter((hex) => !used.has(objectPath(objects, hex))),
      );
    }
    await this.object(build).remove(timed());
  }

  async isStored(build: Pick<Build, "name" | "buildId">): Promise<boolean> {
    return (await this.object(build).manifest(timed())) !== null;
  }

  /**
   * Fetches a stored build into `bundlesDir`, checks every file's hash and that its content makes
   * the same build id, and only then moves it into place. Safe to repeat.
   */
  async fetch(bundlesDir: string, build: Build, maxBytes: number): Promise<void> {
    const target = buildDir(bundlesDir, build);
    if (await stat(target).catch(() => undefined)) return;
    const store = this.object(build);
    const manifest = await store.manifest(timed());
    if (!manifest) throw new Error(`build ${buildKey(build)} is not in the bundle store`);
    const partial = `${target}${PARTIAL}`;
    await rm(partial, { recursive: true, force: true });
    const objects = manifest.objects ? await objectReader(manifest.objects, maxBytes) : undefined;
    try {
      for (const file of manifest.files) {
        const bytes = objects ? await objects.read(file.sha256) : await this.chunks(build, file);
        if (sha256(bytes) !== file.sha256)
          throw new Error(`${file.name} of ${buildKey(build)} does not match its hash`);
        await mkdir(dirname(join(partial, file.name)), { recursive: true });
        await writeFile(join(partial, file.name), bytes);
      }
      await checkBuildId(partial, build, maxBytes);
      await rename(partial, target);
    } catch (error) {
      await rm(partial, { recursive: true, force: true });
      throw error;
    } finally {
      objects?.close();
    }
  }

  /** A file's bytes from its chunks in Restate's state. */
  private async chunks(build: Build, file: StoredFile): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let index = 0; index < file.chunks; index++) {
      const data = await this.object(build).chunk({ file: file.name, index }, timed());
      if (data === null) throw new Error(`chunk ${index} of ${file.name} of ${buildKey(build)} is missing`);
      parts.push(Buffer.from(data, "base64"));
    }
    return Buffer.concat(parts);
  }
}

/**
 * Where a bundle's files go under GRIDIRON_CLUSTER_BUILDS (`s3://bucket/prefix`): a prefix of its
 * own. Activations and prunes of one bundle run one at a time (its deployer's key), of two bundles
 * at once: with files shared across bundles, a prune of one could delete a file another's
 * activation had just found there and not yet named in its sealed manifest.
 */
function bundleObjects(objects: string, build: Pick<Build, "name">): string {
  return `${objects.replace(/\/+$/, "")}/${build.name}`;
}

/** Where a file with this SHA-256 is kept under `objects` (`s3://bucket/prefix`). */
function objectLocation(objects: string, hex: string): S3Location {
  const { bucket, key } = s3Location(objects);
  return { bucket, key: posix.join(key, "sha256", hex) };
}

/** A file's object as one string, bucket and key, to tell whether two manifests name the same. */
function objectPath(objects: string, hex: string): string {
  const { bucket, key } = objectLocation(objects, hex);
  return `${bucket}/${key}`;
}

/**
 * Puts a build's files under `objects`, each named by its SHA-256; one already there (If-None-Match
 * refused with 412) has those bytes, from an earlier build, and is not sent again.
 */
async function uploadObjects(objects: string, dir: string, build: Build): Promise<StoredFile[]> {
  const client = await s3Client();
  const { PutObjectCommand } = await s3Sdk();
  try {
    const files: StoredFile[] = [];
    for (const module of build.modules) {
      const bytes = await readFile(join(dir, module.name));
      const hex = sha256(bytes);
      const location = objectLocation(objects, hex);
      await client
        .send(new PutObjectCommand({ Bucket: location.bucket, Key: location.key, Body: bytes, IfNoneMatch: "*" }))
        .catch((error: unknown) => {
          if (s3Status(error) === 412) return;
          // A refusal is the settings' to fix: a 400 that ends the activation, not a retry loop.
          const message = `cannot store ${module.name} of ${buildKey(build)} in GRIDIRON_CLUSTER_BUILDS: ${s3Problem(error, location)}`;
          throw isS3Refusal(error) ? new BundleError(message) : new Error(message);
        });
      files.push({ name: module.name, chunks: 0, sha256: hex });
    }
    return files;
  } finally {
    client.destroy();
  }
}

/**
 * Every object (objectPath) some stored build other than `except` keeps in S3: read from every
 * manifest in Restate's state. The builds of one bundle share files (the SDK's wasm, say); builds
 * stored before each bundle had a prefix of its own share them across bundles too.
 */
export async function objectsInUse(admin: AdminClient, except: Pick<Build, "name" | "buildId">): Promise<Set<string>> {
  const used = new Set<string>();
  for (const { objectKey, value } of await admin.stateValues(BUNDLES, "manifest")) {
    if (objectKey === buildKey(except)) continue;
    const manifest = Manifest.safeParse(JSON.parse(value));
    // One that does not parse may still name files: keep everything rather than guess.
    if (!manifest.success) throw new Error(`the stored manifest of ${objectKey} is not one Gridiron reads`);
    const { objects } = manifest.data;
    if (objects) for (const file of manifest.data.files) used.add(objectPath(objects, file.sha256));
  }
  return used;
}

/**
 * Deletes files by their SHA-256 from `objects`. One already gone is fine (S3 answers a delete of
 * a missing key with success); a refusal (no right to delete, say) leaves the file where it is, as
 * a leak to tell of, not a prune to fail.
 */
async function deleteObjects(objects: string, hashes: string[]): Promise<void> {
  const client = await s3Client();
  const { DeleteObjectCommand } = await s3Sdk();
  try {
    for (const hex of hashes) {
      const location = objectLocation(objects, hex);
      await client.send(new DeleteObjectCommand({ Bucket: location.bucket, Key: location.key })).catch((error) => {
        if (!isS3Refusal(error)) throw new Error(`cannot delete a stored file: ${s3Problem(error, location)}`);
        console.warn(`[gridiron] kept a file of a pruned build: ${s3Problem(error, location)}`);
      });
    }
  } finally {
    client.destroy();
  }
}

/** Reads files by their SHA-256 from `objects`, at most `maxBytes` each; the caller checks the hash. */
async function objectReader(objects: string, maxBytes: number) {
  const client = await s3Client();
  const { GetObjectCommand } = await s3Sdk();
  return {
    async read(hex: string): Promise<Buffer> {
      const location = objectLocation(objects, hex);
      const object = await client
        .send(new GetObjectCommand({ Bucket: location.bucket, Key: location.key }), {
          abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS),
        })
        .catch((error: unknown) => {
          throw new Error(`cannot read a stored file: ${s3Problem(error, location)}`);
        });
      if (!object.Body || (object.ContentLength ?? 0) > maxBytes) {
        await object.Body?.transformToWebStream().cancel();
        throw new Error(`s3://${location.bucket}/${location.key} is no file of a build: over ${maxBytes} bytes`);
      }
      return Buffer.from(await object.Body.transformToByteArray());
    },
    close: () => client.destroy(),
  };
}

/** Whether the files in `dir` make exactly `build`: its id hashes the modules, main and flags. */
async function checkBuildId(dir: string, build: Build, maxBytes: number): Promise<void> {
  // The main module is part of the build id; name it as the original's gridiron.json may have.
  const metadata = join(dir, "gridiron.json");
  await writeFile(metadata, JSON.stringify({ main: build.mainModule }));
  const fetched = await inspectBundle(dir, build.name, build.version, build, maxBytes);
  await rm(metadata);
  if (fetched.buildId !== build.buildId) {
    throw new Error(`the stored files of ${buildKey(build)} make build ${fetched.buildId}`);
  }
}
