import { z } from "zod";
import type { Build } from "../domain/bundle.ts";
import { MB } from "../memory.ts";

/* What a stored build looks like in the `bundles` object's state (store.ts), as the object and its
   clients (store-client.ts) both read it. */

/** Small enough for one Restate message with room to spare, big enough that 50 MB is 50 calls. */
export const CHUNK_BYTES = 1 * MB;

export const ChunkId = z.strictObject({ file: z.string().min(1).max(255), index: z.number().int().min(0) });
export type ChunkId = z.infer<typeof ChunkId>;
/** A chunk's bytes, base64. */
export const Chunk = ChunkId.extend({ data: z.string().max(2 * CHUNK_BYTES) });
export type Chunk = z.infer<typeof Chunk>;

/** A file: its chunks in Restate's state, or none when it is an object in the manifest's bucket. */
export const StoredFile = z.object({ name: z.string(), chunks: z.number().int().min(0), sha256: z.string() });
export type StoredFile = z.infer<typeof StoredFile>;
/**
 * What a stored build holds: the build (its id is a hash of all of it) and its files' chunking,
 * or with `objects` (`s3://bucket/prefix/<bundle>`: store-client.ts, bundleObjects) its files' names there:
 * `{objects}/sha256/{hex}`.
 */
export const Manifest = z.object({
  build: z.custom<Build>(),
  files: z.array(StoredFile),
  objects: z.string().startsWith("s3://").optional(),
});
export type Manifest = z.infer<typeof Manifest>;
