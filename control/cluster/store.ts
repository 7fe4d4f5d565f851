import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import * as restate from "@restatedev/restate-sdk";
import * as clients from "@restatedev/restate-sdk-clients";
import { z } from "zod";
import type { AdminClient } from "../admin-client.ts";
import { adminHeaders, requireAdmin } from "../admin-token.ts";
import type { Build } from "../bundle.ts";
import { buildDir, inspectBundle } from "../bundle-store.ts";
import { asTerminalError } from "../errors.ts";
import { MB } from "../memory.ts";

/**
 * `bundles`, keyed by `{name}@{buildId}`: every build's modules in Restate's own replicated state,
 * in chunks, so each node of a cluster can fetch any build without a shared disk. The deployer
 * writes a build here (through the ingress, so 50 MB never sits in a journal) before any node is
 * asked to serve it; nodes read it back with SQL through the admin API.
 */

/** Small enough for one Restate message with room to spare, big enough that 50 MB is 50 calls. */
const CHUNK_BYTES = 1 * MB;

const Chunk = z.strictObject({
  file: z.string().min(1).max(255),
  index: z.number().int().min(0),
  /** The chunk's bytes, base64. */
  data: z.string().max(2 * CHUNK_BYTES),
});

const StoredFile = z.object({ name: z.string(), chunks: z.number().int().min(1), sha256: z.string() });
/** What a stored build holds: the build (its id is a hash of all of it) and its files' chunking. */
const Manifest = z.object({ build: z.custom<Build>(), files: z.array(StoredFile) });
type Manifest = z.infer<typeof Manifest>;

const chunkKey = (file: string, index: number) => `chunk:${file}:${index}`;
export const storeKey = (build: Pick<Build, "name" | "buildId">) => `${build.name}@${build.buildId}`;
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

export function bundlesObject(adminToken: string) {
  const internal = (ctx: restate.ObjectContext) =>
    requireAdmin(ctx, adminToken, "bundles is internal to Gridiron's control plane: a call to it");
  return restate.object({
    name: "bundles",
    handlers: {
      put: restate.handlers.object.exclusive(
        { input: restate.serde.schema(Chunk) },
        async (ctx: restate.ObjectContext, chunk: z.infer<typeof Chunk>) => {
          internal(ctx);
          ctx.set(chunkKey(chunk.file, chunk.index), chunk.data);
        },
      ),
      /** Written last: a build without a manifest is not (yet) stored. */
      seal: restate.handlers.object.exclusive(
        { input: restate.serde.schema(Manifest) },
        async (ctx: restate.ObjectContext, manifest: Manifest) => {
          internal(ctx);
          ctx.set("manifest", manifest);
        },
      ),
      remove: async (ctx: restate.ObjectContext) => {
        internal(ctx);
        ctx.clearAll();
      },
    },
    options: { asTerminalError },
  });
}

export type BundlesObject = ReturnType<typeof bundlesObject>;

function storeClient(ingressUrl: string, adminToken: string, build: Pick<Build, "name" | "buildId">) {
  return clients
    .connect({ url: ingressUrl, headers: adminHeaders(adminToken) })
    .objectClient<BundlesObject>({ name: "bundles" }, storeKey(build));
}

/**
 * Stores the build whose modules are in `dir`. Safe to repeat with the same `uploadId` (the
 * activation's invocation id): every call has an idempotency key made from it. A new activation
 * of a build removed before stores it again.
 */
export async function uploadBuild(
  ingressUrl: string,
  adminToken: string,
  dir: string,
  build: Build,
  uploadId: string,
): Promise<void> {
  const store = storeClient(ingressUrl, adminToken, build);
  const once = <I>(what: string) => clients.rpc.opts<I, void>({ idempotencyKey: `${uploadId}/${what}` });
  const files: z.infer<typeof StoredFile>[] = [];
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

export async function removeStoredBuild(ingressUrl: string, adminToken: string, build: Build): Promise<void> {
  await storeClient(ingressUrl, adminToken, build).remove();
}

const sql = (text: string) => `'${text.replaceAll("'", "''")}'`;

async function stateValue(admin: AdminClient, key: string, stateKey: string): Promise<unknown> {
  const rows = await admin.query(
    `SELECT value_utf8 FROM state WHERE service_name = 'bundles' AND service_key = ${sql(key)} AND key = ${sql(stateKey)}`,
  );
  const value = rows[0]?.value_utf8;
  return typeof value === "string" ? JSON.parse(value) : undefined;
}

/** The keys (`{name}@{buildId}`) of every build stored completely. */
export async function storedBuilds(admin: AdminClient): Promise<Set<string>> {
  const rows = await admin.query("SELECT service_key FROM state WHERE service_name = 'bundles' AND key = 'manifest'");
  return new Set(rows.map((r) => String(r.service_key)));
}

/**
 * Fetches a stored build into `bundlesDir`, checks every file's hash and that its content makes
 * the same build id, and only then moves it into place. Safe to repeat.
 */
export async function fetchBuild(
  admin: AdminClient,
  bundlesDir: string,
  build: Build,
  maxBytes: number,
): Promise<void> {
  const target = buildDir(bundlesDir, build);
  if (await stat(target).catch(() => undefined)) return;
  const manifest = Manifest.safeParse(await stateValue(admin, storeKey(build), "manifest"));
  if (!manifest.success) throw new Error(`build ${storeKey(build)} is not in the bundle store`);
  const partial = `${target}.partial`;
  await rm(partial, { recursive: true, force: true });
  try {
    for (const file of manifest.data.files) {
      const parts: Buffer[] = [];
      for (let index = 0; index < file.chunks; index++) {
        const data = await stateValue(admin, storeKey(build), chunkKey(file.name, index));
        if (typeof data !== "string")
          throw new Error(`chunk ${index} of ${file.name} of ${storeKey(build)} is missing`);
        parts.push(Buffer.from(data, "base64"));
      }
      const bytes = Buffer.concat(parts);
      if (sha256(bytes) !== file.sha256) throw new Error(`${file.name} of ${storeKey(build)} does not match its hash`);
      await mkdir(dirname(join(partial, file.name)), { recursive: true });
      await writeFile(join(partial, file.name), bytes);
    }
    // The main module is part of the build id; name it as the original's gridiron.json may have.
    const metadata = join(partial, "gridiron.json");
    await writeFile(metadata, JSON.stringify({ main: build.mainModule }));
    const fetched = await inspectBundle(partial, build.name, build.version, build, maxBytes);
    await rm(metadata);
    if (fetched.buildId !== build.buildId) {
      throw new Error(`the stored files of ${storeKey(build)} make build ${fetched.buildId}`);
    }
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
}
