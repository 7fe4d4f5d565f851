import { createRequire } from "node:module";
import { extname } from "node:path";
import { z } from "zod";

/**
 * A bundle is what `wrangler deploy --dry-run --outdir DIR` writes: a main ES module plus other
 * modules it imports by file name (the SDK's wasm core, for one). This file holds the build it
 * makes and the pure rules for reading such a directory; bundle-store.ts does the I/O.
 */

export type ModuleType = "esModule" | "commonJsModule" | "wasm" | "text" | "data" | "json";

export interface BundleModule {
  name: string;
  type: ModuleType;
}

/** Everything workerd needs to run one build, stored in the bundles dir as `{name}/{buildId}`. */
export interface Build {
  name: string;
  version: string;
  buildId: string;
  mainModule: string;
  modules: BundleModule[];
  compatibilityDate: string;
  compatibilityFlags: string[];
  /** The build's vars, its `env` in every handler; absent when it has none. */
  vars?: Vars;
  /** The bundle's secrets as they were when the build was made, sealed (secrets.ts); absent when none. */
  secrets?: Record<string, SealedSecret>;
  /** Where its code may fetch (see Egress); absent: the public internet, as before egress could be narrowed. */
  egress?: Egress;
}

/**
 * A secret as a build carries it: sealed to the mesh's secrets key, opened only by workerd's
 * router, and the revision it is known by (a hash of the sealed form, so every put is another).
 */
export interface SealedSecret {
  revision: string;
  sealed: string;
}

/** What a build runs with besides its modules, as activate names it (else gridiron.json says). */
export interface BuildSettings {
  /** The main module, when the files alone cannot tell (else gridiron.json or the rules below). */
  main?: string | undefined;
  compatibilityDate?: string | undefined;
  compatibilityFlags?: string[] | undefined;
  vars?: Vars | undefined;
  secrets?: Record<string, SealedSecret> | undefined;
  egress?: Egress | undefined;
}

/**
 * workerd refuses compatibility dates newer than its own build, so its build date (the middle of
 * its package version, 1.YYYYMMDD.N) is the default.
 */
export const DEFAULT_COMPATIBILITY_DATE = compatibilityDateOf(
  createRequire(import.meta.url)("workerd/package.json").version,
);
/**
 * nodejs_compat became a default flag on 2026-08-04; from that date on it is implied and workerd
 * warns when it is listed, so the default list is empty.
 */
export const DEFAULT_COMPATIBILITY_FLAGS: string[] = [];

// The same file-extension rules as wrangler's default module rules.
const MODULE_TYPES: Record<string, ModuleType> = {
  ".js": "esModule",
  ".mjs": "esModule",
  ".cjs": "commonJsModule",
  ".wasm": "wasm",
  ".txt": "text",
  ".html": "text",
  ".bin": "data",
  ".json": "json",
};

/** Files wrangler writes beside the modules that are not part of the worker. */
const IGNORED = new Set(["README.md", "gridiron.json"]);

export function compatibilityDateOf(workerdVersion: string): string {
  const match = /^\d+\.(\d{4})(\d{2})(\d{2})\./.exec(workerdVersion);
  if (!match) throw new Error(`unexpected workerd version ${workerdVersion}`);
  return `${match[1]}-${match[2]}-${match[3]}`;
}

/**
 * Module names end up in file paths under the data dir and in the router's URLs, so they are kept
 * short and URL-safe: a longer name could overflow the destination path (ENAMETOOLONG) and a `#`
 * or `?` would change the URL the router reads the module from.
 */
const MAX_MODULE_NAME_BYTES = 255;

/** Why `name` cannot be a module's file name; undefined if it can. */
export function moduleNameProblem(name: string): string | undefined {
  if (Buffer.byteLength(name) > MAX_MODULE_NAME_BYTES) {
    return `the file name ${name.slice(0, 40)}... is longer than ${MAX_MODULE_NAME_BYTES} bytes`;
  }
  if (!/^[A-Za-z0-9._~@+/-]+$/.test(name)) {
    return `the file name "${name}" has characters other than letters, digits and ._~@+-/`;
  }
  return undefined;
}

export function moduleType(file: string): ModuleType | undefined {
  if (IGNORED.has(file) || file.endsWith(".map")) return undefined;
  return MODULE_TYPES[extname(file).toLowerCase()];
}

export const BundleName = z
  .string()
  .regex(
    /^[a-z][a-z0-9-]{0,62}$/,
    "a bundle name is 1-63 lower-case letters, digits or dashes, starting with a letter",
  );

export const Version = z
  .string()
  .regex(
    /^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$/,
    "a version is up to 64 letters, digits, dots, dashes or pluses, such as 1.0.2",
  );

export const CompatibilityDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "a compatibility date looks like 2026-11-01");
export const CompatibilityFlags = z.array(
  z.string().regex(/^[a-z0-9_]+$/, "a compatibility flag looks like nodejs_compat"),
);

/** workerd's Worker Loader takes a build's env up to 1 MiB, serialized. */
export const MAX_VARS_BYTES = 1024 * 1024;

/**
 * A build's vars, as wrangler's `[vars]`: names a handler reads as `env.NAME`, values strings or
 * any JSON. Checked here, so a build workerd would refuse to load is a 400 before anything is copied.
 */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const Vars = z.record(z.string(), z.json()).superRefine((vars, ctx) => {
  for (const name of Object.keys(vars).filter((n) => !ENV_NAME.test(n))) {
    const shown = JSON.stringify(name.slice(0, 40));
    ctx.addIssue({
      code: "custom",
      message: `${shown} is not a var name: a letter or _ then up to 127 letters, digits or _`,
    });
  }
  if (Buffer.byteLength(JSON.stringify(vars)) > MAX_VARS_BYTES) {
    ctx.addIssue({
      code: "custom",
      message: `vars hold over ${MAX_VARS_BYTES / 1024 / 1024} MiB as JSON, over workerd's limit for a build's env`,
    });
  }
});
export type Vars = z.infer<typeof Vars>;

/** A host a bundle may fetch: a hostname, or `*.` and a domain for any name under it. */
const EgressHost = z
  .string()
  .max(253)
  .regex(
    /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    "an egress host is a lowercase hostname (api.example.com) or *. and a domain (*.example.com)",
  );

/**
 * Where a build's code may fetch: absent, the public internet (workerd's default; no loopback or
 * private address); `"none"`, nowhere; `{ allow }`, only those hosts (still only public addresses).
 * Enforced by the Worker Loader's `globalOutbound` (workerd/router/router.js): a refused fetch
 * throws in the bundle, saying why.
 */
export const Egress = z.union([
  z.literal("none"),
  z.strictObject({ allow: z.array(EgressHost).min(1, 'allow at least one host, or use "none"').max(100) }),
]);
export type Egress = z.infer<typeof Egress>;

/** The optional `gridiron.json` beside a bundle's modules. */
export const BundleMetadata = z.strictObject({
  main: z.string().optional(),
  compatibilityDate: CompatibilityDate.optional(),
  compatibilityFlags: CompatibilityFlags.optional(),
});
export type BundleMetadata = z.infer<typeof BundleMetadata>;

/**
 * Picks the main module: the one named in metadata, else `index.js`/`index.mjs` (wrangler's
 * output name), else the only ES module. Returns an error message when none fits.
 */
export function chooseMainModule(modules: BundleModule[], named?: string): string | { error: string } {
  const esModules = modules.filter((m) => m.type === "esModule").map((m) => m.name);
  if (named) {
    return esModules.includes(named) ? named : { error: `main module "${named}" is not an ES module in the bundle` };
  }
  for (const candidate of ["index.js", "index.mjs"]) {
    if (esModules.includes(candidate)) return candidate;
  }
  if (esModules.length === 1 && esModules[0]) return esModules[0];
  if (esModules.length === 0) return { error: "the bundle has no main module (no .js or .mjs file)" };
  return { error: `cannot tell the main module among ${esModules.join(", ")}: name it in gridiron.json as "main"` };
}

/**
 * A build id names one exact build: the version plus a short hash of the content and settings,
 * so activating the same version and content again lands on the same build.
 */
export function buildIdFor(version: string, contentHash: string): string {
  return `${version}-${contentHash.slice(0, 12)}`;
}
