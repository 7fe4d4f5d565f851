import { gzipSync } from "node:zlib";
import * as tar from "tar";

/** Hostile archives made in memory, for the unit and end-to-end tests of https:// sources. */

export interface TarEntry {
  path: string;
  type?: "File" | "SymbolicLink";
  linkpath?: string;
}

/** A tar of empty entries, written header by header (fast even for 20,000), gzipped unless told. */
export function tarOf(entries: TarEntry[], gzip = true): Buffer {
  const blocks: Buffer[] = [];
  for (const { path, type = "File", linkpath } of entries) {
    const block = Buffer.alloc(512);
    new tar.Header({ path, type, mode: 0o644, size: 0, mtime: new Date(0), ...(linkpath ? { linkpath } : {}) }).encode(
      block,
    );
    blocks.push(block);
  }
  // The end of the archive: two empty blocks.
  blocks.push(Buffer.alloc(1024));
  const archive = Buffer.concat(blocks);
  return gzip ? gzipSync(archive) : archive;
}

export const emptyFiles = (count: number): TarEntry[] =>
  Array.from({ length: count }, (_, i) => ({ path: `f${i}.txt` }));

const ZIP_LOCAL_HEADER = 0x04034b50;
const ZIP_CENTRAL_HEADER = 0x02014b50;

/**
 * A copy of a zip whose local and central headers both give `size` as `name`'s uncompressed
 * size, as a hostile server would write them (readers take sizes from the central one).
 */
export function withUncompressedSize(zip: Buffer, name: string, size: number): Buffer {
  const copy = Buffer.from(zip);
  // Where each header keeps the uncompressed size, the name's length and the name.
  const layouts = [
    { signature: ZIP_LOCAL_HEADER, sizeAt: 22, nameLengthAt: 26, nameAt: 30 },
    { signature: ZIP_CENTRAL_HEADER, sizeAt: 24, nameLengthAt: 28, nameAt: 46 },
  ];
  let patched = 0;
  for (let at = 0; at + 46 <= copy.length; at++) {
    for (const layout of layouts) {
      if (copy.readUInt32LE(at) !== layout.signature) continue;
      const length = copy.readUInt16LE(at + layout.nameLengthAt);
      if (copy.toString("latin1", at + layout.nameAt, at + layout.nameAt + length) !== name) continue;
      copy.writeUInt32LE(size, at + layout.sizeAt);
      patched++;
    }
  }
  if (patched !== 2) throw new Error(`${name} has ${patched} headers in the zip, not 2`);
  return copy;
}
