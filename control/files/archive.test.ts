import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { constants, gunzipSync, gzipSync } from "node:zlib";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { emptyFiles, tarOf } from "../../test/archives.ts";
import { BundleError } from "../domain/errors.ts";
import { MAX_ARCHIVE_ENTRIES, type UnpackLimits, unpack } from "./archive.ts";

/**
 * unpack on archives made in memory or with zip(1): every refusal that the headers show comes
 * before anything is written (the target dir is never made), and before the rest is read.
 */

const MiB = 1024 * 1024;
const LIMITS: UnpackLimits = { maxUnpackedBytes: MiB, timeoutMs: 5_000 };
/** Where a zip's central directory starts: "PK\x01\x02", its first header's signature. */
const ZIP_CENTRAL_DIRECTORY = Buffer.from([0x50, 0x4b, 0x01, 0x02]);
const TOO_MANY = `the archive holds more than ${MAX_ARCHIVE_ENTRIES} entries; a bundle holds at most 1000 files`;

let root: string;
let targets = 0;
/** A fresh target dir's path; the dir itself does not exist yet. */
const target = () => join(root, `out-${++targets}`);
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** Unpacks, expecting a BundleError; returns its message. */
async function refusal(archive: Buffer, dir: string, limits = LIMITS): Promise<{ message: string }> {
  const error: unknown = await unpack(archive, dir, limits).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(BundleError);
  return { message: (error as BundleError).message };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "gridiron-archive-"));
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe("entries are counted before anything is written", () => {
  test(`a tar.gz of ${MAX_ARCHIVE_ENTRIES} entries unpacks; one more is refused and nothing is made`, async () => {
    const fits = target();
    await unpack(tarOf(emptyFiles(MAX_ARCHIVE_ENTRIES)), fits, LIMITS);
    expect(await readdir(fits)).toHaveLength(MAX_ARCHIVE_ENTRIES);
    const over = target();
    expect((await refusal(tarOf(emptyFiles(MAX_ARCHIVE_ENTRIES + 1)), over)).message).toBe(TOO_MANY);
    expect(await exists(over)).toBe(false);
  });

  test("a tar.gz of 20,000 empty files is refused at its 1,002nd header, the rest never read", async () => {
    const dir = target();
    // Every header after the 1,100th is garbage: an unpacker that read on would fail on it, not
    // on the count.
    const tar = tarOf(emptyFiles(20_000), false);
    tar.fill(0xff, 1_100 * 512, tar.length);
    // Room for the 10 MB tar, so the count is what refuses it.
    const { message } = await refusal(gzipSync(tar), dir, { ...LIMITS, maxUnpackedBytes: 16 * MiB });
    expect(message).toBe(TOO_MANY);
    expect(await exists(dir)).toBe(false);
  });

  test("a plain tar's link is refused before the files ahead of it are written", async () => {
    const dir = target();
    const archive = tarOf(
      [...emptyFiles(3), { path: "passwd.txt", type: "SymbolicLink", linkpath: "/etc/passwd" }],
      false,
    );
    expect((await refusal(archive, dir)).message).toBe("passwd.txt is a link; bundles must contain plain files");
    expect(await exists(dir)).toBe(false);
  });

  test("a zip of too many entries is refused from its directory's count, before any entry is read", async () => {
    const files = join(root, "many");
    await mkdir(files);
    await Promise.all(emptyFiles(MAX_ARCHIVE_ENTRIES + 1).map(({ path }) => writeFile(join(files, path), "")));
    await execa("zip", ["-q", "-r", "../many.zip", "."], { cwd: files });
    const zip = await readFile(join(root, "many.zip"));
    // Every entry's own header is garbage (but the first signature, by which a zip is known):
    // reading any entry would fail on it, not on the count.
    zip.fill(0xff, 4, zip.indexOf(ZIP_CENTRAL_DIRECTORY));
    const dir = target();
    const { message } = await refusal(zip, dir);
    expect(message).toBe(TOO_MANY);
    expect(await exists(dir)).toBe(false);
  });
});

describe("what a tar.gz inflates to is bounded", () => {
  test("a tar.gz whose tar runs on past its end is refused at the bound, the rest never inflated", async () => {
    const dir = target();
    const header = tarOf(emptyFiles(1), false).subarray(0, 512);
    // 8 MiB of zeros, past the ~5 MiB a tar within these limits can reach, then the deflate stream
    // breaks (0xff starts a block of a type that does not exist): an unpacker that inflated on past
    // the bound would fail on the break, not on the size.
    const inflatable = gzipSync(Buffer.concat([header, Buffer.alloc(8 * MiB)]), {
      finishFlush: constants.Z_SYNC_FLUSH,
    });
    const archive = Buffer.concat([inflatable, Buffer.alloc(64, 0xff)]);
    expect(() => gunzipSync(archive)).toThrow(/invalid block type/);
    const { message } = await refusal(archive, dir);
    expect(message).toBe(
      "the archive unpacks to more than 1.0 MB, the limit for what an archive unpacks to (see GRIDIRON_MAX_BUNDLE_MB)",
    );
    expect(await exists(dir)).toBe(false);
  });

  test("a tar.gz holding another gzip is refused, not inflated again", async () => {
    const dir = target();
    const { message } = await refusal(gzipSync(tarOf(emptyFiles(1))), dir);
    expect(message).toBe("the tar.gz archive does not hold a tar");
    expect(await exists(dir)).toBe(false);
  });
});

describe("the deadline", () => {
  test("unpacking that outlasts timeoutMs is stopped with a BundleError, a tar.gz or a zip", async () => {
    const files = join(root, "few");
    await mkdir(files);
    await writeFile(join(files, "index.js"), "export default {};");
    await execa("zip", ["-q", "-r", "../few.zip", "."], { cwd: files });
    // Both are read asynchronously, so a deadline of 0 ms passes before they are.
    for (const archive of [tarOf(emptyFiles(10)), await readFile(join(root, "few.zip"))]) {
      const { message } = await refusal(archive, target(), { ...LIMITS, timeoutMs: 0 });
      expect(message).toBe("the archive did not unpack within 0 s (see GRIDIRON_FETCH_TIMEOUT_SECONDS)");
    }
  });
});
