// @ts-check
// Gridiron's own long-lived processes run its TypeScript sources as Node does, by stripping the
// types, but without loading Node's stripper (amaro, a WebAssembly build of swc) into each of them:
// it adds about 15 MB to every process that strips a file (docs/benchmarks.md). Loaded with
// `--import` (node-flags.ts), this registers a module hook that serves each of Gridiron's `.ts`
// files from a cache of the same file with its types stripped. A file not in the cache yet is
// stripped here, as Node would, and kept for the next process; `npm install` fills the cache
// (`node control/node/stripped-modules.js`), so `npm start` finds every file there. Plain
// JavaScript, so that loading this needs no stripping itself.
//
// The stripped text keeps every line and column (types become spaces), so stack traces point at
// the .ts file as before; the module's URL is unchanged, so `import.meta.url` paths still work.
// Hand-written rather than a loader library (tsx, ts-node): those bring a compiler of their own,
// which is the memory this saves.

import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { registerHooks, stripTypeScriptTypes } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** npm's conventional place for tools' caches: removed with node_modules, never committed. */
const CACHE = join(ROOT, "node_modules", ".cache", "gridiron-stripped");
/** Gridiron's sources: what is under the project root but not in a dependency. */
const OURS = pathToFileURL(ROOT).href;

/**
 * `source` with its types stripped, from the cache when this exact text was stripped before by
 * this Node (its version is part of the key, as stripping may change with it).
 * @param {string} url
 * @param {string} source
 */
function stripped(url, source) {
  const key = createHash("sha256").update(`${process.version}\0${url}\0${source}`).digest("hex");
  const cached = join(CACHE, `${key}.js`);
  try {
    return readFileSync(cached, "utf8");
  } catch {
    const code = stripTypeScriptTypes(source, { mode: "strip", sourceUrl: url });
    keep(cached, code);
    return code;
  }
}

/**
 * Writes a cache entry whole or not at all (processes start side by side); a cache that cannot be
 * written (a read-only install) only costs the memory this would have saved.
 * @param {string} path
 * @param {string} code
 */
function keep(path, code) {
  try {
    mkdirSync(CACHE, { recursive: true });
    const partial = `${path}.${process.pid}.partial`;
    writeFileSync(partial, code);
    renameSync(partial, path);
  } catch {}
}

/** @param {string} url */
const isOurs = (url) => url.startsWith(OURS) && url.endsWith(".ts") && !url.includes("/node_modules/");

/** Strips every .ts file under `dir` into the cache, as `npm install` does for control/. @param {string} dir */
function fill(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) fill(path);
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) {
      stripped(pathToFileURL(path).href, readFileSync(path, "utf8"));
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  fill(join(ROOT, "control"));
} else {
  registerHooks({
    load(url, context, nextLoad) {
      if (!isOurs(url)) return nextLoad(url, context);
      const source = readFileSync(fileURLToPath(url), "utf8");
      return { format: "module", source: stripped(url, source), shortCircuit: true };
    },
  });
}
