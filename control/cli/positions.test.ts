import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, expect, test } from "vitest";
import { toSourcePositions } from "./positions.ts";
import { buildOutput } from "./wrangler.ts";

let outdir: string;
let project: string;

beforeAll(async () => {
  const root = await mkdtemp(join(tmpdir(), "gridiron-positions-"));
  outdir = join(root, "out");
  project = join(root, "project");
  await mkdir(outdir);
  // index.js's lines 2-4 are src/index.ts's lines 1-3, as wrangler's map says (relative to the map's dir).
  const map = {
    version: 3,
    sources: ["../project/src/index.ts", "/elsewhere/lib.ts"],
    names: [],
    mappings: ";AAAA;AACA;ACCA",
  };
  await writeFile(join(outdir, "index.js.map"), JSON.stringify(map));
});

test("positions in a mapped module are told in the project's sources, others left as they are", async () => {
  const text = [
    "Error: boom at load",
    "    at index.js:3:5",
    "    at file:///bundle/greeter/1.0.0-abc/index.js:2",
    "    at lib (index.js:4:1)",
    "    at async control (file:///bundle/router.js:176:11)",
  ].join("\n");
  expect(await toSourcePositions(text, outdir, project)).toBe(
    [
      "Error: boom at load",
      "    at src/index.ts:2:1",
      "    at src/index.ts:1",
      "    at lib (/elsewhere/lib.ts:3:1)",
      "    at async control (file:///bundle/router.js:176:11)",
    ].join("\n"),
  );
});

test("without a source map the text is left as it is", async () => {
  const bare = await mkdtemp(join(tmpdir(), "gridiron-positions-"));
  expect(await toSourcePositions("at index.js:3:5", bare, project)).toBe("at index.js:3:5");
});

test("wrangler's output keeps its lines and loses its colour codes", () => {
  const output =
    '\u001b[31m✘ \u001b[41;31m[\u001b[41;97mERROR\u001b[41;31m]\u001b[0m \u001b[1mExpected ";"\u001b[0m   \n\n    src/index.ts:2:9:\n';
  expect(buildOutput(output)).toBe('✘ [ERROR] Expected ";"\n\n    src/index.ts:2:9:');
});
