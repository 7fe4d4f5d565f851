import type { Build } from "./bundle.ts";

/** A build record for unit tests: one ES module, no files behind it. */
export function testBuild(name: string, buildId: string): Build {
  return {
    name,
    version: buildId.split("-")[0] ?? buildId,
    buildId,
    mainModule: "index.js",
    modules: [],
    compatibilityDate: "2026-11-01",
    compatibilityFlags: [],
  };
}
