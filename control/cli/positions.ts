import { readdir, readFile } from "node:fs/promises";
import { SourceMap, type SourceMapPayload } from "node:module";
import { isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Positions in a built module (`index.js:5465:11`, as workerd reports a top-level throw) told as
 * positions in the project's own sources (`src/index.ts:12:9`), by the source maps wrangler wrote
 * beside the modules in `outdir`. Text with no position, or a module without a map, is returned
 * as it is; a source inside `projectDir` is shown relative to it.
 */
export async function toSourcePositions(text: string, outdir: string, projectDir: string): Promise<string> {
  const maps = await sourceMaps(outdir);
  if (maps.size === 0) return text;
  const modules = [...maps.keys()].map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
  // The module's name, maybe behind a path or a URL of the built copy, then :line and maybe :column.
  const position = new RegExp(`(?:(?:[a-z][\\w+.-]*:)?[\\w.+~@/-]*/)?(${modules}):(\\d+)(?::(\\d+))?`, "g");
  return text.replace(position, (whole, module: string, line: string, column?: string) => {
    const map = maps.get(module);
    const entry = map?.findEntry(Number(line) - 1, column ? Number(column) - 1 : 0);
    if (!entry || !("originalSource" in entry)) return whole;
    const source = sourcePath(entry.originalSource, outdir);
    const shown = isInside(source, projectDir) ? relative(projectDir, source) : source;
    return `${shown}:${entry.originalLine + 1}${column ? `:${entry.originalColumn + 1}` : ""}`;
  });
}

/** Each module with a `NAME.map` beside it in `outdir`, by the module's name. */
async function sourceMaps(outdir: string): Promise<Map<string, SourceMap>> {
  const names = await readdir(outdir).catch(() => [] as string[]);
  const maps = new Map<string, SourceMap>();
  for (const name of names.filter((n) => n.endsWith(".map"))) {
    const payload = JSON.parse(await readFile(join(outdir, name), "utf8")) as SourceMapPayload;
    maps.set(name.slice(0, -".map".length), new SourceMap(payload));
  }
  return maps;
}

/** A map's source, relative to the map's own dir as wrangler writes it, or a file:// URL. */
function sourcePath(source: string, outdir: string): string {
  if (source.startsWith("file://")) return fileURLToPath(source);
  return isAbsolute(source) ? source : resolve(outdir, source);
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}
