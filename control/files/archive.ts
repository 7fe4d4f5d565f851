import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import * as tar from "tar";
import { type Entry, fromBufferPromise, type ZipFile } from "yauzl";
import { BundleError } from "../domain/errors.ts";
import { mb } from "../memory.ts";
import { MAX_ENTRIES } from "./bundle-store.ts";

export interface UnpackLimits {
  /** The most an archive may unpack to, its files' sizes summed. */
  maxUnpackedBytes: number;
  /** How long unpacking may take, start to end. */
  timeoutMs: number;
}

/** A bundle's own limit on files, plus the one directory an archive of `dist` wraps them in. */
export const MAX_ARCHIVE_ENTRIES = MAX_ENTRIES + 1;

type ArchiveKind = "zip" | "tar.gz" | "tar";

/** Recognises an archive by its first bytes, as file(1) does, not by the URL's extension. */
export function archiveKind(bytes: Uint8Array): ArchiveKind | undefined {
  if (bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) return "zip";
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return "tar.gz";
  if (new TextDecoder().decode(bytes.subarray(257, 262)) === "ustar") return "tar";
  return undefined;
}

/**
 * Unpacks a tar, tar.gz or zip into `dir` within the limits. Every entry is counted, sized and
 * checked from the archive's headers before a single file is written, and the sizes the headers
 * give are held to while writing; the whole step has a deadline. `dir` is made once every entry
 * passed; on a later failure it may hold part of the archive, and the caller removes it.
 */
export async function unpack(archive: Buffer, dir: string, limits: UnpackLimits): Promise<void> {
  const kind = archiveKind(archive);
  if (!kind) throw new BundleError("the downloaded file is not a tar, tar.gz or zip archive");
  const signal = AbortSignal.timeout(limits.timeoutMs);
  const budget = entryBudget(limits.maxUnpackedBytes);
  try {
    if (kind === "zip") await unzip(archive, dir, budget, signal);
    else await untar(archive, kind, dir, budget, signal);
  } catch (error) {
    if (error instanceof BundleError) throw error;
    if (signal.aborted) {
      throw new BundleError(
        `the archive did not unpack within ${limits.timeoutMs / 1000} s (see GRIDIRON_FETCH_TIMEOUT_SECONDS)`,
      );
    }
    throw new BundleError(`cannot unpack the ${kind} archive: ${error instanceof Error ? error.message : error}`);
  }
}

const TOO_MANY_ENTRIES = `the archive holds more than ${MAX_ARCHIVE_ENTRIES} entries; a bundle holds at most ${MAX_ENTRIES} files`;

/**
 * Room in a tar, besides its files' data, for each entry's header, a long name's extra header and
 * the padding to whole blocks.
 */
const TAR_BYTES_PER_ENTRY = 4096;

type Budget = ReturnType<typeof entryBudget>;

/** Counts an archive's entries and their sizes, header by header, against the limits. */
function entryBudget(maxBytes: number) {
  let entries = 0;
  let bytes = 0;
  const tooBig = `the archive unpacks to more than ${mb(maxBytes)} MB, the limit for what an archive unpacks to (see GRIDIRON_MAX_BUNDLE_MB)`;
  return {
    tooBig,
    /** The largest tar that can hold files within the limits. */
    maxTarBytes: maxBytes + MAX_ARCHIVE_ENTRIES * TAR_BYTES_PER_ENTRY,
    /** Why the entry cannot be unpacked, everything before it included; undefined when it can. */
    refusal(path: string, isLink: boolean, size: number): string | undefined {
      // A link could point anywhere on the host, and later entries could be written through it.
      if (isLink) return `${path} is a link; bundles must contain plain files`;
      if (++entries > MAX_ARCHIVE_ENTRIES) return TOO_MANY_ENTRIES;
      bytes += size;
      return bytes > maxBytes ? tooBig : undefined;
    },
  };
}

/**
 * yauzl reads the central directory, so every entry is known before one is written, and it fails
 * an entry whose data is longer or shorter than the size its header gives (validateEntrySizes),
 * so the sizes counted are the sizes written. Names that are absolute or hold `..` are refused.
 */
async function unzip(archive: Buffer, dir: string, budget: Budget, signal: AbortSignal): Promise<void> {
  const zip = await fromBufferPromise(archive, { autoClose: false, validateEntrySizes: true, strictFileNames: true });
  try {
    // The count from the end of the archive, before reading any entry: refusing 200,000 is instant.
    if (zip.entryCount > MAX_ARCHIVE_ENTRIES) {
      throw new BundleError(TOO_MANY_ENTRIES);
    }
    const entries = await checkedZipEntries(zip, budget, signal);
    await mkdir(dir, { recursive: true });
    for (const entry of entries) {
      const path = join(dir, entry.fileName);
      if (entry.fileName.endsWith("/")) {
        await mkdir(path, { recursive: true });
        continue;
      }
      await mkdir(dirname(path), { recursive: true });
      // wx: an entry named twice fails instead of overwriting the first.
      await pipeline(await zip.openReadStreamPromise(entry), createWriteStream(path, { flags: "wx" }), { signal });
    }
  } finally {
    zip.close();
  }
}

async function checkedZipEntries(zip: ZipFile, budget: Budget, signal: AbortSignal): Promise<Entry[]> {
  const entries: Entry[] = [];
  for await (const entry of zip.eachEntry()) {
    signal.throwIfAborted();
    const refusal = budget.refusal(entry.fileName, isZipLink(entry), entry.uncompressedSize);
    if (refusal) throw new BundleError(refusal);
    entries.push(entry);
  }
  return entries;
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/** A zip made on Unix keeps the file's mode in the high half of its external attributes. */
function isZipLink(entry: Entry): boolean {
  return ((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK;
}

/**
 * A tar.gz is inflated first, in the thread pool and no further than a tar within the limits can
 * reach: node-tar would inflate it synchronously, blocking the event loop past any deadline, and
 * keeps inflating (and buffering) whatever follows the tar's end.
 *
 * Then two passes over the tar in one buffer: the first reads only the headers, counting and
 * sizing every entry and stopping at the first refusal, so nothing is written for an archive that
 * is refused; the second unpacks. A tar entry's size is exact (its data is that long), so what the
 * first pass counted is what the second writes.
 */
async function untar(archive: Buffer, kind: "tar" | "tar.gz", dir: string, budget: Budget, signal: AbortSignal) {
  const tarBytes = kind === "tar" ? archive : await inflate(archive, budget);
  // The parsers would inflate a gzip found inside too, synchronously: only a tar is read. They
  // would also guess at zstd and brotli, unless told there is none.
  if (archiveKind(tarBytes) !== "tar") throw new BundleError("the tar.gz archive does not hold a tar");
  const options = { strict: true, zstd: false, brotli: false } as const;
  const lister: tar.Parser = new tar.Parser({
    ...options,
    onReadEntry: (entry) => {
      const isLink = entry.type === "SymbolicLink" || entry.type === "Link";
      const refusal = budget.refusal(entry.path, isLink, entry.size);
      if (refusal) lister.abort(new BundleError(refusal));
      entry.resume();
    },
  });
  await parse(lister, tarBytes, signal);
  await mkdir(dir, { recursive: true });
  // strict: an entry with `..` or an absolute path is an error, not a warning.
  await parse(new tar.Unpack({ ...options, cwd: dir }), tarBytes, signal);
}

const gunzipAsync = promisify(gunzip);

async function inflate(archive: Buffer, budget: Budget): Promise<Buffer> {
  try {
    return await gunzipAsync(archive, { maxOutputLength: budget.maxTarBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") throw new BundleError(budget.tooBig);
    throw error;
  }
}

/**
 * Feeds the tar, in one chunk, to a parser and settles when it is done or fails; at the deadline
 * it is aborted. Its listeners stay, so an error it emits after settling is not an uncaught one.
 */
async function parse(parser: tar.Parser, tarBytes: Buffer, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  const onDeadline = () => parser.abort(signal.reason);
  signal.addEventListener("abort", onDeadline, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      parser.on("error", reject);
      parser.on("end", resolve);
      parser.end(tarBytes);
    });
  } finally {
    signal.removeEventListener("abort", onDeadline);
  }
}
