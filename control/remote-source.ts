import { createHash, randomUUID } from "node:crypto";
import { mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import extractZip from "extract-zip";
import * as tar from "tar";
import { Agent, interceptors, request } from "undici";
import { BundleError } from "./errors.ts";
import { mb } from "./memory.ts";

export interface FetchLimits {
  /** The largest download. */
  maxBytes: number;
  /** The most an archive may unpack to, its files' sizes summed. */
  maxUnpackedBytes: number;
  timeoutMs: number;
}

const MAX_REDIRECTS = 5;

/**
 * Makes a bundle source available as a local directory for `use`, then cleans up. A file:// URL
 * is used in place. An https:// URL is an archive (tar, tar.gz or zip) of a wrangler outdir: it is
 * downloaded into memory within the limits, its SHA-256 is checked before anything is written,
 * and it is unpacked into a fresh directory under `workDir`.
 */
export async function withSourceDir<T>(
  source: string,
  sha256: string | undefined,
  workDir: string,
  limits: FetchLimits,
  use: (dir: string) => Promise<T>,
): Promise<T> {
  const url = new URL(source);
  if (url.protocol === "file:") return use(fileURLToPath(url));
  if (!sha256) throw new BundleError("an https:// source needs sha256");
  const archive = await download(url, sha256, limits);
  const dir = join(workDir, randomUUID());
  try {
    await unpack(archive, dir, limits.maxUnpackedBytes);
    return await use(await outdirIn(dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function download(url: URL, sha256: string, { maxBytes, timeoutMs }: FetchLimits): Promise<Buffer> {
  const dispatcher = new Agent({ headersTimeout: timeoutMs, bodyTimeout: timeoutMs }).compose(
    interceptors.redirect({ maxRedirections: MAX_REDIRECTS }),
  );
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    const response = await request(url, { dispatcher, signal: AbortSignal.timeout(timeoutMs) });
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new BundleError(`${url} answered HTTP ${response.statusCode}`);
    }
    const declared = Number(response.headers["content-length"] ?? 0);
    if (declared > maxBytes) {
      await response.body.dump();
      throw new BundleError(`${url} is ${mb(declared)} MB, over the limit of ${mb(maxBytes)} MB`);
    }
    for await (const chunk of response.body) {
      size += chunk.length;
      if (size > maxBytes) {
        response.body.destroy();
        throw new BundleError(`${url} sent more than the limit of ${mb(maxBytes)} MB`);
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof BundleError) throw error;
    const reason =
      error instanceof Error && error.name === "TimeoutError"
        ? `no answer within ${timeoutMs / 1000} s`
        : String(error);
    throw new BundleError(`could not download ${url}: ${reason}`);
  } finally {
    await dispatcher.close();
  }
  const archive = Buffer.concat(chunks);
  const actual = createHash("sha256").update(archive).digest("hex");
  if (actual !== sha256.toLowerCase()) {
    throw new BundleError(`the archive at ${url} has sha256 ${actual}, not the expected ${sha256.toLowerCase()}`);
  }
  return archive;
}

type ArchiveKind = "zip" | "tar.gz" | "tar";

/** Recognises an archive by its first bytes, as file(1) does, not by the URL's extension. */
export function archiveKind(bytes: Uint8Array): ArchiveKind | undefined {
  if (bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) return "zip";
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return "tar.gz";
  if (new TextDecoder().decode(bytes.subarray(257, 262)) === "ustar") return "tar";
  return undefined;
}

async function unpack(archive: Buffer, dir: string, maxUnpacked: number): Promise<void> {
  const kind = archiveKind(archive);
  if (!kind) throw new BundleError("the downloaded file is not a tar, tar.gz or zip archive");
  await mkdir(dir, { recursive: true });
  const unpacked = unpackedSize(maxUnpacked);
  try {
    if (kind === "zip") {
      const file = `${dir}.zip`;
      await writeFile(file, archive);
      // extract-zip refuses entries that would land outside `dir`, but it makes the symbolic links
      // a zip holds, and makes a later entry's directories through one before that check.
      const onEntry = (entry: ZipEntry) => {
        refuseZipLink(entry);
        if (!unpacked.fits(entry.uncompressedSize)) throw unpacked.error();
      };
      await extractZip(file, { dir, onEntry }).finally(() => rm(file, { force: true }));
      return;
    }
    const links: string[] = [];
    let tooBig = false;
    await pipeline(
      Readable.from(archive),
      // strict: an entry with `..` or an absolute path is an error, not a warning.
      tar.x({
        cwd: dir,
        strict: true,
        filter: (path, entry) => {
          const isLink = "type" in entry && (entry.type === "SymbolicLink" || entry.type === "Link");
          if (isLink) links.push(path);
          tooBig ||= !unpacked.fits("size" in entry ? (entry.size ?? 0) : 0);
          return !isLink && !tooBig;
        },
      }),
    );
    if (links.length > 0) throw new BundleError(`${links[0]} is a link; bundles must contain plain files`);
    if (tooBig) throw unpacked.error();
  } catch (error) {
    if (error instanceof BundleError) throw error;
    throw new BundleError(`cannot unpack the ${kind} archive: ${error instanceof Error ? error.message : error}`);
  }
}

/** Counts what an archive unpacks to, entry by entry, against `max`. */
function unpackedSize(max: number) {
  let total = 0;
  return {
    /** Whether everything so far, this entry's `bytes` included, fits. */
    fits(bytes: number): boolean {
      total += bytes;
      return total <= max;
    },
    error: () =>
      new BundleError(
        `the archive unpacks to more than ${mb(max)} MB, the limit for what an archive unpacks to (see GRIDIRON_MAX_BUNDLE_MB)`,
      ),
  };
}

interface ZipEntry {
  fileName: string;
  externalFileAttributes: number;
  uncompressedSize: number;
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/** Called before each entry is written; the Unix mode is the high half, as extract-zip reads it. */
function refuseZipLink(entry: ZipEntry): void {
  if (((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) {
    throw new BundleError(`${entry.fileName} is a link; bundles must contain plain files`);
  }
}

/** The archive's own top directory when it holds just one, as `tar czf x.tgz dist` makes. */
async function outdirIn(dir: string): Promise<string> {
  const entries = await readdir(dir);
  if (entries.length === 1 && entries[0] && (await stat(join(dir, entries[0]))).isDirectory()) {
    return join(dir, entries[0]);
  }
  return dir;
}
