import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { DEFAULT_COMPATIBILITY_DATE } from "../domain/bundle.ts";
import { BundleError } from "../domain/errors.ts";
import { loadSettings } from "../settings.ts";
import { buildDir, inspectBundle, storeBundle } from "./bundle-store.ts";

/** The default limit, as the deployer passes it. */
const MAX = loadSettings({}).maxBundleBytes;

let root: string;
let source: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "gridiron-store-"));
  source = join(root, "dist");
  await mkdir(source);
  // What wrangler's --outdir holds: main module, hashed wasm, a source map and a README.
  await writeFile(join(source, "index.js"), 'import m from "../abc-core.wasm"; export default {};');
  await writeFile(join(source, "abc-core.wasm"), new Uint8Array([0, 97, 115, 109]));
  await writeFile(join(source, "index.js.map"), "{}");
  await writeFile(join(source, "README.md"), "written by wrangler");
});

afterEach(() => rm(root, { recursive: true, force: true }));

describe("inspectBundle", () => {
  test("reads a wrangler outdir, ignoring files that are not modules", async () => {
    const build = await inspectBundle(source, "greeter", "1.0.0", {}, MAX);
    expect(build).toMatchObject({
      name: "greeter",
      version: "1.0.0",
      mainModule: "index.js",
      compatibilityDate: DEFAULT_COMPATIBILITY_DATE,
      compatibilityFlags: [],
      modules: [
        { name: "abc-core.wasm", type: "wasm" },
        { name: "index.js", type: "esModule" },
      ],
    });
    expect(build.buildId).toMatch(/^1\.0\.0-[0-9a-f]{12}$/);
  });

  test("the build id follows the content and settings, nothing else", async () => {
    const first = await inspectBundle(source, "greeter", "1.0.0", {}, MAX);
    expect((await inspectBundle(source, "greeter", "1.0.0", {}, MAX)).buildId).toBe(first.buildId);
    await writeFile(join(source, "README.md"), "changed docs do not change the build");
    expect((await inspectBundle(source, "greeter", "1.0.0", {}, MAX)).buildId).toBe(first.buildId);

    const flagged = await inspectBundle(source, "greeter", "1.0.0", { compatibilityFlags: ["nodejs_compat"] }, MAX);
    expect(flagged.buildId).not.toBe(first.buildId);
    await writeFile(join(source, "index.js"), "export default {};");
    expect((await inspectBundle(source, "greeter", "1.0.0", {}, MAX)).buildId).not.toBe(first.buildId);
  });

  test("takes settings from gridiron.json unless the request overrides them", async () => {
    await writeFile(
      join(source, "gridiron.json"),
      JSON.stringify({ compatibilityDate: "2025-01-01", compatibilityFlags: ["nodejs_compat"] }),
    );
    expect(await inspectBundle(source, "x", "1", {}, MAX)).toMatchObject({
      compatibilityDate: "2025-01-01",
      compatibilityFlags: ["nodejs_compat"],
    });
    expect(await inspectBundle(source, "x", "1", { compatibilityDate: "2026-01-01" }, MAX)).toMatchObject({
      compatibilityDate: "2026-01-01",
    });
  });

  test.each([
    ["a missing directory", async () => rm(source, { recursive: true }), /is not a directory/],
    ["no main module", async () => rm(join(source, "index.js")), /no main module/],
    ["a symbolic link", async () => symlink("/etc/passwd", join(source, "passwd.txt")), /symbolic link/],
    ["bad gridiron.json", async () => writeFile(join(source, "gridiron.json"), "{"), /not valid JSON/],
    [
      "a module name too long for the bundles dir",
      async () => {
        const deep = join(source, "d".repeat(200));
        await mkdir(deep);
        await writeFile(join(deep, `${"m".repeat(60)}.js`), "");
      },
      /longer than 255 bytes/,
    ],
    ["a module name the router cannot fetch", async () => writeFile(join(source, "a#b.js"), ""), /characters other/],
    [
      "unknown gridiron.json keys",
      async () => writeFile(join(source, "gridiron.json"), '{"mian":"x.js"}'),
      /gridiron.json/,
    ],
  ])("refuses %s", async (_, breakIt, message) => {
    await breakIt();
    const attempt = inspectBundle(source, "x", "1", {}, MAX);
    await expect(attempt).rejects.toThrow(BundleError);
    await expect(attempt).rejects.toThrow(message);
  });
});

describe("storeBundle", () => {
  test("copies only the modules, once", async () => {
    const bundles = join(root, "bundles");
    const build = await inspectBundle(source, "greeter", "1.0.0", {}, MAX);
    const dir = await storeBundle(bundles, source, build);
    expect(dir).toBe(buildDir(bundles, build));
    expect((await readdir(dir)).sort()).toEqual(["abc-core.wasm", "index.js"]);

    await writeFile(join(dir, "marker"), "kept");
    await storeBundle(bundles, source, build);
    expect(await readdir(dir)).toContain("marker");
    expect(await readdir(join(bundles, "greeter"))).toEqual([build.buildId]);
  });

  test("a copy that fails leaves no partial build and no empty bundle dir", async () => {
    const bundles = join(root, "bundles");
    await mkdir(bundles);
    const build = await inspectBundle(source, "greeter", "1.0.0", {}, MAX);
    await rm(join(source, "abc-core.wasm"));
    await expect(storeBundle(bundles, source, build)).rejects.toThrow(/ENOENT/);
    expect(await readdir(bundles)).toEqual([]);
  });
});

test("a bundle over the size limit is refused before it is read", async () => {
  await writeFile(join(source, "big.bin"), new Uint8Array(2048));
  await expect(inspectBundle(source, "x", "1", {}, 1024)).rejects.toThrow(/over the limit/);
  expect((await inspectBundle(source, "x", "1", {}, 4096)).modules).toHaveLength(3);
});

test("a source with far more files than a bundle stops the walk early", async () => {
  await Promise.all(Array.from({ length: 1_001 }, (_, i) => writeFile(join(source, `f${i}.txt`), "")));
  await expect(inspectBundle(source, "x", "1", {}, MAX)).rejects.toThrow(/more than 1000 files/);
});
