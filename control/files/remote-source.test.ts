import { createHash } from "node:crypto";
import { link, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { withUncompressedSize } from "../../test/archives.ts";
import { BundleError } from "../domain/errors.ts";
import { archiveKind } from "./archive.ts";
import { type FetchLimits, redirectRefusal, shownSource, withSourceDir } from "./remote-source.ts";

/**
 * withSourceDir against local servers, without a mesh. Most sources here are plain http://:
 * withSourceDir does not look at the scheme (the deployer's schema is what admits only file: and
 * https:), and an https server with a throwaway certificate needs the process to trust it, which
 * only the last block does.
 */

const MiB = 1024 * 1024;
/** The servers are on loopback, so redirects between them need privateRedirects. */
const LIMITS: FetchLimits = { maxBytes: MiB, maxUnpackedBytes: 4 * MiB, timeoutMs: 5_000, privateRedirects: true };
const SLOW: FetchLimits = { ...LIMITS, timeoutMs: 300 };
const WRONG = "0".repeat(64);
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

let root: string;
/** Where the escaping entries aim; it must stay empty. */
let outside: string;
/** The downloads dir of one test; it must be empty again when withSourceDir is done. */
let work: string;
const archives = new Map<string, Buffer>();
const requested: string[] = [];
const servers: Server[] = [];
let base: string;
let elsewhere: string;

/** A wrangler outdir: a main module, a wasm module beside it, a helper in a subdirectory. */
const OUTDIR: Record<string, string | Uint8Array> = {
  "index.js": 'import wasm from "../abc-core.wasm"; export default {};',
  "abc-core.wasm": new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]),
  "lib/util.js": "export const answer = 42;",
};

async function writeTree(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
}

/** What the callback saw: every file under `dir` with its content. */
async function readTree(dir: string): Promise<Record<string, string>> {
  const tree: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      tree[path.slice(dir.length + 1)] = (await readFile(path)).toString("hex");
    }
  }
  return tree;
}

const hexTree = (files: Record<string, string | Uint8Array>) =>
  Object.fromEntries(Object.entries(files).map(([name, content]) => [name, Buffer.from(content).toString("hex")]));

/**
 * With tar(1), like the zips with zip(1): node-tar's packer once threw "write after end" from a
 * timer in a full run, an unhandled error that fails the suite; extraction is what is under test.
 */
async function tarOf(cwd: string, entries: string[], options: { gzip?: boolean; preservePaths?: boolean } = {}) {
  const flags = `-c${options.gzip ? "z" : ""}${options.preservePaths ? "P" : ""}f`;
  const { stdout } = await execa("tar", [flags, "-", "--format=ustar", "--owner=0", "--group=0", ...entries], {
    cwd,
    encoding: "buffer",
  });
  return Buffer.from(stdout);
}

let zips = 0;

async function zipOf(cwd: string, entries: string[]): Promise<Buffer> {
  // A new name each time: zip(1) adds to an archive that is already there.
  const file = join(root, `${++zips}.zip`);
  // -D: no entries for directories; -y: a symbolic link is stored as one, not followed.
  await execa("zip", ["-qrDy", file, ...entries], { cwd });
  return readFile(file).finally(() => rm(file));
}

/**
 * zip(1) will not store `../x` or `/x`, so such an entry is written under a placeholder name of
 * the same length and renamed in the bytes: the CRC covers the data, not the name.
 */
function renamed(zip: Buffer, from: string, to: string): Buffer {
  expect(to.length).toBe(from.length);
  const text = zip.toString("latin1");
  // Once in the local header, once in the central directory, nowhere else.
  expect(text.split(from).length - 1).toBe(2);
  return Buffer.from(text.replaceAll(from, to), "latin1");
}

async function buildArchives(): Promise<void> {
  await writeTree(join(root, "dist"), OUTDIR);
  archives.set("/dist.tar", await tarOf(root, ["dist"]));
  archives.set("/dist.tgz", await tarOf(root, ["dist"], { gzip: true }));
  // As `cd dist && zip -r ../dist.zip .` makes it: the files at the top, no directory around them.
  archives.set("/dist.zip", await zipOf(join(root, "dist"), ["."]));
  archives.set("/hello.txt", Buffer.from("hello, world\n"));
  const tgz = archives.get("/dist.tgz") as Buffer;
  archives.set("/truncated.tgz", tgz.subarray(0, tgz.length / 2));
  const zip = archives.get("/dist.zip") as Buffer;
  archives.set("/truncated.zip", zip.subarray(0, zip.length / 2));
  await buildEscapingTars();
  await buildEscapingZips();
  await buildBombs();
}

/** Archives well under the download limit that unpack to more than UNPACKED_FACTOR times it. */
async function buildBombs(): Promise<void> {
  const src = join(root, "bomb");
  await writeTree(src, {
    "index.js": "export default {};",
    "zeros.bin": new Uint8Array(LIMITS.maxUnpackedBytes),
  });
  archives.set("/bomb.tgz", await tarOf(src, ["index.js", "zeros.bin"], { gzip: true }));
  archives.set("/bomb.zip", await zipOf(src, ["index.js", "zeros.bin"]));
  // Well within the limits, as far as the headers tell.
  await writeTree(src, { "small.bin": new Uint8Array(100_000) });
  const small = await zipOf(src, ["index.js", "small.bin"]);
  archives.set("/under-stated.zip", withUncompressedSize(small, "small.bin", 10));
  archives.set("/over-stated.zip", withUncompressedSize(small, "index.js", 1000));
}

async function buildEscapingTars(): Promise<void> {
  const src = join(root, "tar-src");
  await writeTree(src, { "index.js": "export default {};", "a.js": "export {};" });
  await writeFile(join(root, "x"), "would land beside the unpack dir");
  archives.set("/dotdot.tar", await tarOf(src, ["index.js", "../x"], { preservePaths: true }));
  // Archived from `outside`, then removed from there: unpacking it must not bring it back.
  await writeFile(join(outside, "abs.txt"), "would land at an absolute path");
  archives.set("/absolute.tar", await tarOf(src, ["index.js", join(outside, "abs.txt")], { preservePaths: true }));
  await rm(join(outside, "abs.txt"));
  await symlink("/etc/passwd", join(src, "passwd.txt"));
  await symlink(outside, join(src, "up"));
  archives.set("/symlink.tgz", await tarOf(src, ["index.js", "passwd.txt"], { gzip: true }));
  archives.set("/dir-symlink.tar", await tarOf(src, ["index.js", "up"]));
  await link(join(src, "a.js"), join(src, "b.js"));
  archives.set("/hardlink.tar", await tarOf(src, ["a.js", "b.js"]));
}

async function buildEscapingZips(): Promise<void> {
  const src = join(root, "zip-src");
  await writeTree(src, { "index.js": "export default {};", "__/x": "dotdot", "e/sub/f": "through a link" });
  archives.set("/dotdot.zip", renamed(await zipOf(src, ["index.js", "__/x"]), "__/x", "../x"));
  const absolute = join(outside, "abs.txt");
  const placeholder = `_${absolute.slice(1)}`;
  await writeTree(src, { [placeholder]: "absolute" });
  archives.set("/absolute.zip", renamed(await zipOf(src, ["index.js", placeholder]), placeholder, absolute));
  await symlink("/etc/passwd", join(src, "passwd.txt"));
  archives.set("/symlink.zip", await zipOf(src, ["index.js", "passwd.txt"]));
  // `d` links to `outside`; a later entry `d/sub/f` would be written through it.
  await symlink(outside, join(src, "d"));
  archives.set("/through-symlink.zip", renamed(await zipOf(src, ["d", "e/sub/f"]), "e/sub/f", "d/sub/f"));
}

/** Sends zeros without a Content-Length, for as long as the client reads them. */
function endless(response: ServerResponse): void {
  const chunk = Buffer.alloc(64 * 1024);
  const write = () => {
    while (!response.destroyed && response.write(chunk)) {}
  };
  response.on("drain", write);
  write();
}

/** Answers at once, then sends a byte every 50 ms: never quiet for long, never done. */
function dribble(response: ServerResponse): void {
  response.writeHead(200, { "content-type": "application/gzip" });
  const timer = setInterval(() => response.write("x"), 50);
  response.on("close", () => clearInterval(timer));
}

const redirect = (response: ServerResponse, status: number, location: string) =>
  response.writeHead(status, { location }).end();

/** What the servers answer besides the archives; anything else is a 404. */
const routes: Record<string, (response: ServerResponse) => void> = {
  "/moved": (response) => redirect(response, 301, "/dist.tar"),
  "/elsewhere": (response) => redirect(response, 302, `${elsewhere}/dist.zip`),
  "/to-localhost": (response) => redirect(response, 302, `${base.replace("127.0.0.1", "localhost")}/dist.tar`),
  // From the https server, a downgrade.
  "/to-http": (response) => redirect(response, 302, `${base}/dist.tar`),
  "/big": (response) => response.end(Buffer.alloc(2 * MiB)),
  "/endless": endless,
  "/dribble": dribble,
  "/silent": () => {}, // never answers
  "/broken": (response) => response.writeHead(500).end("internal error"),
};

function handle(request: IncomingMessage, response: ServerResponse): void {
  const path = request.url ?? "";
  requested.push(path);
  const archive = archives.get(path);
  const route = routes[path];
  // /hop/N redirects N + 1 times before landing on /dist.tgz.
  const hops = /^\/hop\/(\d+)$/.exec(path)?.[1];
  if (archive) response.end(archive);
  else if (route) route(response);
  else if (hops) redirect(response, 302, hops === "0" ? "/dist.tgz" : `/hop/${Number(hops) - 1}`);
  else response.writeHead(404).end();
}

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "gridiron-remote-source-"));
  outside = join(root, "outside");
  await mkdir(outside);
  await buildArchives();
  base = `http://127.0.0.1:${await listen(createServer(handle))}`;
  elsewhere = `http://127.0.0.1:${await listen(createServer(handle))}`;
});

beforeEach(async () => {
  work = await mkdtemp(join(root, "downloads-"));
  // Emptied again, so one test's escape cannot show up as another's.
  await rm(outside, { recursive: true, force: true });
  await mkdir(outside);
  requested.length = 0;
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  if (root) await rm(root, { recursive: true, force: true });
});

/** Runs withSourceDir, expecting it to let the callback see the outdir; returns the dir it saw. */
async function unpacked(source: string, hash: string, limits = LIMITS): Promise<string> {
  const seen = await withSourceDir(source, hash, work, limits, async (dir) => {
    expect(await readTree(dir)).toEqual(hexTree(OUTDIR));
    return dir;
  });
  expect(await readdir(work)).toEqual([]);
  return seen;
}

/** Runs withSourceDir, expecting a refusal before the callback that leaves nothing behind. */
async function refused(source: string, hash: string | undefined, limits = LIMITS): Promise<string> {
  let called = false;
  const error: unknown = await withSourceDir(source, hash, work, limits, async () => {
    called = true;
  }).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(BundleError);
  expect(called).toBe(false);
  expect(await readdir(work)).toEqual([]);
  expect(await readdir(outside)).toEqual([]);
  return (error as BundleError).message;
}

const hashOf = (path: string) => sha256(archives.get(path) as Buffer);

describe("archives that are unpacked", () => {
  test.each([
    ["tar", "/dist.tar"],
    ["tar.gz", "/dist.tgz"],
    ["zip", "/dist.zip"],
  ] as const)("a %s is recognised by its bytes and unpacked for the callback, then removed", async (kind, path) => {
    expect(archiveKind(archives.get(path) as Buffer)).toBe(kind);
    const dir = await unpacked(`${base}${path}`, hashOf(path));
    // A fresh dir in the downloads dir; a tar of `dist` holds one directory, which is entered.
    expect(dir.slice(work.length)).toMatch(kind === "zip" ? /^\/[0-9a-f-]{36}$/ : /^\/[0-9a-f-]{36}\/dist$/);
  });

  test("the callback's result is returned, and its error removes the unpacked dir too", async () => {
    const source = `${base}/dist.tgz`;
    expect(await withSourceDir(source, hashOf("/dist.tgz"), work, LIMITS, async () => 42)).toBe(42);
    const failing = withSourceDir(source, hashOf("/dist.tgz"), work, LIMITS, async () => {
      throw new Error("the bundle is bad");
    });
    await expect(failing).rejects.toThrow("the bundle is bad");
    expect(await readdir(work)).toEqual([]);
  });

  test("the sha256 may be written in upper case, as some tools print it", async () => {
    await unpacked(`${base}/dist.zip`, hashOf("/dist.zip").toUpperCase());
  });

  test("an archive of exactly maxBytes is accepted; one byte less is the limit's", async () => {
    const size = (archives.get("/dist.tar") as Buffer).length;
    await unpacked(`${base}/dist.tar`, hashOf("/dist.tar"), { ...LIMITS, maxBytes: size });
    expect(await refused(`${base}/dist.tar`, hashOf("/dist.tar"), { ...LIMITS, maxBytes: size - 1 })).toMatch(
      /over the limit of/,
    );
  });

  test("redirects are followed, also to another origin, and the final body is what is checked", async () => {
    await unpacked(`${base}/moved`, hashOf("/dist.tar"));
    await unpacked(`${base}/hop/4`, hashOf("/dist.tgz"));
    await unpacked(`${base}/elsewhere`, hashOf("/dist.zip"));
    expect(requested).toEqual([
      "/moved",
      "/dist.tar",
      ...["/hop/4", "/hop/3", "/hop/2", "/hop/1", "/hop/0"],
      "/dist.tgz",
      "/elsewhere",
      "/dist.zip",
    ]);
  });
});

describe("file:// sources", () => {
  test.each([
    [
      "with a host",
      "file://builds.example/srv/dist",
      /^file:\/\/builds\.example\/srv\/dist is not a path on this machine: /,
    ],
    ["with an encoded slash", "file:///srv/a%2Fb", /^file:\/\/\/srv\/a%2Fb is not a path on this machine: /],
  ])("one %s is refused with a BundleError", async (_, source, message) => {
    const attempt = withSourceDir(source, undefined, work, LIMITS, async () => "used");
    await expect(attempt).rejects.toBeInstanceOf(BundleError);
    await expect(attempt).rejects.toThrow(message);
  });

  test("are used in place: no sha256, no download, nothing copied", async () => {
    const dir = join(root, "my dist");
    await writeTree(dir, OUTDIR);
    const source = pathToFileURL(dir).href;
    expect(source).toContain("my%20dist");
    const seen = await withSourceDir(source, undefined, work, LIMITS, async (inPlace) => {
      expect(await readTree(inPlace)).toEqual(hexTree(OUTDIR));
      return inPlace;
    });
    expect(seen).toBe(dir);
    expect(await readdir(work)).toEqual([]);
  });
});

interface Refusal {
  path: string;
  /** The archive's own hash when left out. */
  sha256?: string;
  limits?: FetchLimits;
  message: (url: string) => string | RegExp;
}

const refusals: [string, Refusal][] = [
  [
    "a wrong sha256, checked before the archive (one that unpacking would refuse) is opened",
    {
      path: "/symlink.tgz",
      sha256: WRONG,
      // Not the digest of what was fetched: that could be a private page's.
      message: (url) => `the archive at ${url} does not have the expected sha256 ${WRONG}`,
    },
  ],
  [
    "an archive whose Content-Length is over maxBytes",
    { path: "/big", sha256: WRONG, message: (url) => `${url} is 2.0 MB, over the limit of 1.0 MB` },
  ],
  [
    "an endless chunked body, cut off at maxBytes",
    { path: "/endless", sha256: WRONG, message: (url) => `${url} sent more than the limit of 1.0 MB` },
  ],
  [
    "a server that never answers",
    {
      path: "/silent",
      sha256: WRONG,
      limits: SLOW,
      message: (url) => `could not download ${url}: no answer within 0.3 s`,
    },
  ],
  [
    "a body that trickles in for longer than timeoutMs",
    {
      path: "/dribble",
      sha256: WRONG,
      limits: SLOW,
      message: (url) => `could not download ${url}: no answer within 0.3 s`,
    },
  ],
  ["a missing file", { path: "/missing.tgz", sha256: WRONG, message: (url) => `${url} answered HTTP 404` }],
  ["a server error", { path: "/broken", sha256: WRONG, message: (url) => `${url} answered HTTP 500` }],
  [
    "more than five redirects",
    { path: "/hop/5", sha256: WRONG, message: (url) => `${url} redirects more than 5 times` },
  ],
  [
    "a file that is no archive",
    { path: "/hello.txt", message: () => "the downloaded file is not a tar, tar.gz or zip archive" },
  ],
  ["a truncated tar.gz", { path: "/truncated.tgz", message: () => /^cannot unpack the tar\.gz archive: / }],
  [
    "a truncated zip",
    {
      path: "/truncated.zip",
      message: () => /^cannot unpack the zip archive: End of central directory record signature not found/,
    },
  ],
  [
    "a tar entry `../x`",
    { path: "/dotdot.tar", message: () => "cannot unpack the tar archive: TAR_ENTRY_ERROR: path contains '..'" },
  ],
  [
    "a tar entry with an absolute path",
    {
      path: "/absolute.tar",
      message: () => /^cannot unpack the tar archive: TAR_ENTRY_INFO: stripping \/ from absolute/,
    },
  ],
  [
    "a tar symbolic link to /etc/passwd",
    { path: "/symlink.tgz", message: () => "passwd.txt is a link; bundles must contain plain files" },
  ],
  [
    "a tar symbolic link to a directory outside",
    { path: "/dir-symlink.tar", message: () => "up is a link; bundles must contain plain files" },
  ],
  ["a tar hard link", { path: "/hardlink.tar", message: () => "b.js is a link; bundles must contain plain files" }],
  [
    "a zip entry `../x`",
    { path: "/dotdot.zip", message: () => "cannot unpack the zip archive: invalid relative path: ../x" },
  ],
  [
    "a zip entry with an absolute path",
    {
      path: "/absolute.zip",
      message: () => `cannot unpack the zip archive: absolute path: ${join(outside, "abs.txt")}`,
    },
  ],
  [
    "a tar.gz that unpacks to more than maxUnpackedBytes",
    {
      path: "/bomb.tgz",
      message: () =>
        "the archive unpacks to more than 4.0 MB, the limit for what an archive unpacks to (see GRIDIRON_MAX_BUNDLE_MB)",
    },
  ],
  [
    "a zip that unpacks to more than maxUnpackedBytes",
    {
      path: "/bomb.zip",
      message: () =>
        "the archive unpacks to more than 4.0 MB, the limit for what an archive unpacks to (see GRIDIRON_MAX_BUNDLE_MB)",
    },
  ],
  [
    "a zip whose headers under-state an entry's size (extract-zip hung on it forever)",
    {
      path: "/under-stated.zip",
      message: () => /^cannot unpack the zip archive: too many bytes in the stream\. expected 10\. got at least \d+$/,
    },
  ],
  [
    "a zip whose headers over-state an entry's size",
    {
      path: "/over-stated.zip",
      message: () =>
        /^cannot unpack the zip archive: compressed\/uncompressed size mismatch for stored file: 18 != 1000$/,
    },
  ],
  [
    "a zip symbolic link to /etc/passwd",
    { path: "/symlink.zip", message: () => "passwd.txt is a link; bundles must contain plain files" },
  ],
  [
    "a zip entry written through a zip symbolic link to a directory outside",
    { path: "/through-symlink.zip", message: () => "d is a link; bundles must contain plain files" },
  ],
];

describe("refusals: a BundleError the user can act on, the callback never called, nothing left behind", () => {
  test.each(refusals)("%s", async (_, { path, sha256: hash, limits, message }) => {
    const url = `${base}${path}`;
    const actual = await refused(url, hash ?? hashOf(path), limits);
    const expected = message(url);
    if (typeof expected === "string") expect(actual).toBe(expected);
    else expect(actual).toMatch(expected);
  });

  test("the URL is shown without the credentials it carries: no user:password@, no presigned query", async () => {
    const url = new URL(`${base}/missing.tgz?X-Amz-Signature=s3cret`);
    url.username = "user";
    url.password = "passw0rd";
    expect(await refused(url.href, WRONG)).toBe(`${base}/missing.tgz answered HTTP 404`);
  });

  test("an http(s) source without a sha256 is refused before anything is requested", async () => {
    expect(await refused(`${base}/dist.tgz`, undefined)).toBe("an https:// source needs sha256");
    expect(requested).toEqual([]);
  });
});

const PRIVATE =
  "a loopback, link-local or private address, where redirects may not lead (see GRIDIRON_FETCH_PRIVATE_REDIRECTS)";

describe("redirects", () => {
  /** As by default: redirects may not lead to private addresses. */
  const STRICT: FetchLimits = { ...LIMITS, privateRedirects: false };

  test("the URL given may be on loopback; a redirect to loopback is refused before it is requested", async () => {
    await unpacked(`${base}/dist.tar`, hashOf("/dist.tar"), STRICT);
    requested.length = 0;
    // The sha256 is right: only the rule refuses it.
    expect(await refused(`${base}/moved`, hashOf("/dist.tar"), STRICT)).toBe(
      `${base}/moved redirects to ${base}/dist.tar, ${PRIVATE}`,
    );
    expect(requested).toEqual(["/moved"]);
  });

  test("a redirect to a host name that resolves to loopback is refused when it is resolved", async () => {
    expect(await refused(`${base}/to-localhost`, hashOf("/dist.tar"), STRICT)).toMatch(
      /^a redirect of http:\/\/127\.0\.0\.1:\d+\/to-localhost leads to localhost \((127\.0\.0\.1|::1)\), a loopback/,
    );
    expect(requested).toEqual(["/to-localhost"]);
  });

  test.each([
    ["https://a.example/", "http://b.example/x", true, "a downgrade from https to plain http"],
    ["https://a.example/", "https://127.0.0.1/x", false, PRIVATE],
    ["https://a.example/", "https://2130706433/x", false, PRIVATE], // 127.0.0.1, as URL reads it
    ["https://a.example/", "https://[::1]/x", false, PRIVATE],
    ["https://a.example/", "https://[::ffff:127.0.0.1]/x", false, PRIVATE],
    ["https://a.example/", "https://169.254.169.254/latest/meta-data", false, PRIVATE],
    ["https://a.example/", "https://10.1.2.3/x", false, PRIVATE],
    ["https://a.example/", "https://192.168.0.1/x", false, PRIVATE],
    ["https://a.example/", "https://[fd00::1]/x", false, PRIVATE],
    ["https://a.example/", "https://100.64.0.1/x", false, PRIVATE],
    ["https://a.example/", "https://0.0.0.0/x", false, PRIVATE],
    ["https://a.example/", "file:///etc/passwd", true, "which is not an http(s) URL"],
    ["https://a.example/", "https://127.0.0.1/x", true, undefined],
    ["https://a.example/", "https://8.8.8.8/x", false, undefined],
    ["https://a.example/", "https://[2606:4700::1111]/x", false, undefined],
    // A host name is checked when it is resolved, each time it is connected to.
    ["https://a.example/", "https://b.example/x", false, undefined],
    ["http://a.example/", "http://b.example/x", false, undefined],
  ] as const)("%s -> %s (private allowed: %s): %s", (from, to, privateRedirects, refusal) => {
    expect(redirectRefusal(new URL(from), new URL(to), privateRedirects)).toBe(refusal);
  });
});

/** https:// with a throwaway certificate authority, as the deployer admits only https. */
describe("https:// sources", () => {
  let httpsBase: string;
  let cert: string;

  beforeAll(async () => {
    const dir = join(root, "tls");
    await mkdir(dir);
    await execa("openssl", [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
      ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
      ...["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
    ]);
    cert = await readFile(join(dir, "cert.pem"), "utf8");
    const server = createHttpsServer({ key: await readFile(join(dir, "key.pem")), cert }, handle);
    httpsBase = `https://127.0.0.1:${await listen(server)}`;
  });

  test("a server whose certificate is not trusted is refused", async () => {
    const url = `${httpsBase}/dist.tgz`;
    expect(await refused(url, hashOf("/dist.tgz"))).toBe(`could not download ${url}: Error: self-signed certificate`);
  });

  /** Runs `check` with the certificate trusted process-wide, as NODE_EXTRA_CA_CERTS would; put back at once. */
  async function trusting(check: () => Promise<void>): Promise<void> {
    const defaults = getCACertificates("default");
    setDefaultCACertificates([...defaults, cert]);
    try {
      await check();
    } finally {
      setDefaultCACertificates(defaults);
    }
  }

  test("a server whose certificate the process trusts serves an archive", async () => {
    await trusting(() => unpacked(`${httpsBase}/dist.tgz`, hashOf("/dist.tgz")).then(() => undefined));
  });

  test("a redirect from https to plain http is refused, even where private addresses are allowed", async () => {
    await trusting(async () => {
      expect(await refused(`${httpsBase}/to-http`, hashOf("/dist.tar"))).toBe(
        `${httpsBase}/to-http redirects to ${base}/dist.tar, a downgrade from https to plain http`,
      );
    });
    expect(requested).toEqual(["/to-http"]);
  });
});

describe("shownSource", () => {
  test("keeps a file:// path and an s3://bucket/key, and drops a URL's credentials", () => {
    expect(shownSource("file:///srv/builds/greeter")).toBe("file:///srv/builds/greeter");
    expect(shownSource("s3://bucket/builds/greeter.tgz")).toBe("s3://bucket/builds/greeter.tgz");
    expect(shownSource("https://user:pw@example.com:8443/a/b.tgz?X-Amz-Signature=abc#frag")).toBe(
      "https://example.com:8443/a/b.tgz",
    );
  });
});
