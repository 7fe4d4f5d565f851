import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type BuildInto, warmBuilder } from "./dev-bundler.ts";
import { toSourcePositions } from "./positions.ts";
import { wranglerOf } from "./wrangler.ts";

const ROOT = resolve(import.meta.dirname, "../..");
let scratch: string;
let project: string;
let build: BuildInto;

/** A copy of demo/greeter, its imports resolved from the repository's node_modules. */
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "gridiron-dev-bundler-"));
  project = join(scratch, "greeter");
  await mkdir(project);
  await cp(join(ROOT, "demo/greeter/src"), join(project, "src"), { recursive: true });
  await cp(join(ROOT, "demo/greeter/wrangler.toml"), join(project, "wrangler.toml"));
  await symlink(join(ROOT, "node_modules"), join(project, "node_modules"));
  const builder = warmBuilder(await wranglerOf(project), join(project, "wrangler.toml"), undefined);
  if (!builder) throw new Error("the repository's wrangler has no unstable_DevEnv");
  build = builder;
}, 60_000);
afterAll(() => rm(scratch, { recursive: true, force: true }));

const outdir = () => mkdtemp(join(scratch, "out-"));

test("a build is laid out as wrangler deploy --outdir lays it out, each from the sources as saved", async () => {
  const first = await outdir();
  await build(first);
  const files = await readdir(first);
  expect(files.sort()).toEqual([
    expect.stringMatching(/^[0-9a-f]{40}-sdk_shared_core_wasm_bindings_bg\.wasm$/),
    "index.js",
    "index.js.map",
  ]);
  const index = await readFile(join(first, "index.js"), "utf8");
  expect(index).toContain(`import wkmod from "./${files[0]}"`);
  expect(index).toContain("Greetings from a workerd isolate");

  const source = join(project, "src/index.ts");
  await writeFile(source, (await readFile(source, "utf8")).replace(/Greetings from [^.]+\./, "Greetings from a save."));
  const second = await outdir();
  await build(second);
  expect(await readFile(join(second, "index.js"), "utf8")).toContain("Greetings from a save.");

  // Positions in the bundle are told in the project's sources though wrangler's temp dir is gone.
  const line = index.split("\n").findIndex((l) => l.includes("Greetings from")) + 1;
  expect(await toSourcePositions(`at index.js:${line}:1`, second, project)).toMatch(/^at src\/index\.ts:\d+:\d+$/);
}, 60_000);

test("a syntax error fails the build with esbuild's line, and the next build works again", async () => {
  const source = join(project, "src/index.ts");
  const good = await readFile(source, "utf8");
  await writeFile(source, "export default {\n  fetch( {\n};\n");
  const failed = await outdir();
  await expect(build(failed)).rejects.toThrow(/src\/index\.ts:\d+:\d+: ERROR/);
  await writeFile(source, good);
  const fixed = await outdir();
  await build(fixed);
  expect(await readdir(fixed)).toContain("index.js");
}, 60_000);

test("a wrangler without the dev bundler API, or whose DevEnv makes its own runtime, is not used warm", async () => {
  const config = join(project, "wrangler.toml");
  expect(warmBuilder({ cli: join(scratch, "bin/wrangler.js"), own: true }, config, undefined)).toBe(undefined);
  // A DevEnv that ignores the controllers it is given would start a runtime and never hand the bundle over.
  const cli = join(scratch, "own-runtime/wrangler-dist/cli.js");
  await mkdir(dirname(cli), { recursive: true });
  await writeFile(
    cli,
    "exports.unstable_DevEnv = class { constructor() { this.runtimes = [{}]; this.proxy = {}; } async teardown() {} };\n",
  );
  expect(warmBuilder({ cli, own: true }, config, undefined)).toBe(undefined);
});
