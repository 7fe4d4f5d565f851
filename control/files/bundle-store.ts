import { createHash } from "node:crypto";
import { cp, mkdir, opendir, readdir, readFile, rename, rm, rmdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { buildPath } from "../contracts.ts";
import {
  type Build,
  type BuildSettings,
  BundleMetadata,
  buildIdFor,
  chooseMainModule,
  DEFAULT_COMPATIBILITY_DATE,
  DEFAULT_COMPATIBILITY_FLAGS,
  moduleNameProblem,
  moduleType,
} from "../domain/bundle.ts";
import { BundleError } from "../domain/errors.ts";
import { mb } from "../memory.ts";

/** A build being copied or fetched, beside where it will be: renamed into place once whole. */
export const PARTIAL = ".partial";

/** A wrangler outdir holds a handful of files; far more means the source points somewhere else. */
export const MAX_ENTRIES = 1_000;

/** Reads and checks a wrangler outdir whose modules may hold at most `maxBytes`; nothing is written. */
export async function inspectBundle(
  sourceDir: string,
  name: string,
  version: string,
  requested: BuildSettings,
  maxBytes: number,
): Promise<Build> {
  const info = await stat(sourceDir).catch(() => undefined);
  if (!info?.isDirectory()) throw new BundleError(`${sourceDir} is not a directory`);

  const files = await listFiles(sourceDir);
  const metadata = await readMetadata(sourceDir, files);
  const modules = files.flatMap((file) => {
    const type = moduleType(file);
    return type ? [{ name: file, type }] : [];
  });
  for (const module of modules) {
    const problem = moduleNameProblem(module.name);
    if (problem) throw new BundleError(problem);
  }
  const main = chooseMainModule(modules, requested.main ?? metadata.main);
  if (typeof main !== "string") throw new BundleError(main.error);

  const compatibilityDate = requested.compatibilityDate ?? metadata.compatibilityDate ?? DEFAULT_COMPATIBILITY_DATE;
  const compatibilityFlags = requested.compatibilityFlags ?? metadata.compatibilityFlags ?? DEFAULT_COMPATIBILITY_FLAGS;

  let size = 0;
  for (const module of modules) size += (await stat(join(sourceDir, module.name))).size;
  if (size > maxBytes) {
    throw new BundleError(`the bundle's modules hold ${mb(size)} MB, over the limit of ${mb(maxBytes)} MB`);
  }

  const hash = createHash("sha256");
  // Vars, secrets and egress are part of what a build is (the Worker Loader caches a build by id);
  // a build without them hashes as before they existed. A secret counts by its revision.
  const vars = requested.vars && Object.keys(requested.vars).length ? requested.vars : undefined;
  const secrets = requested.secrets && Object.keys(requested.secrets).length ? requested.secrets : undefined;
  const revisions = secrets ? Object.fromEntries(Object.entries(secrets).map(([n, s]) => [n, s.revision])) : undefined;
  hash.update(
    JSON.stringify({
      main,
      compatibilityDate,
      compatibilityFlags,
      ...(vars ? { vars } : {}),
      ...(revisions ? { secrets: revisions } : {}),
      ...(requested.egress ? { egress: requested.egress } : {}),
    }),
  );
  for (const module of modules) {
    hash.update(`\0${module.name}\0${module.type}\0`);
    hash.update(await readFile(join(sourceDir, module.name)));
  }
  return {
    name,
    version,
    buildId: buildIdFor(version, hash.digest("hex")),
    mainModule: main,
    modules,
    compatibilityDate,
    compatibilityFlags,
    ...(vars ? { vars } : {}),
    ...(secrets ? { secrets } : {}),
    ...(requested.egress ? { egress: requested.egress } : {}),
  };
}

export function buildDir(bundlesDir: string, build: Pick<Build, "name" | "buildId">): string {
  return join(bundlesDir, buildPath(build));
}

/** Copies a build's modules into the bundles dir. Safe to repeat: an existing build is kept. */
export async function storeBundle(bundlesDir: string, sourceDir: string, build: Build): Promise<string> {
  const target = buildDir(bundlesDir, build);
  if (await stat(target).catch(() => undefined)) return target;
  // Copy beside the target and rename, so a crash never leaves a half-copied build in place.
  const partial = `${target}${PARTIAL}`;
  await rm(partial, { recursive: true, force: true });
  try {
    await mkdir(partial, { recursive: true });
    for (const module of build.modules) {
      await cp(join(sourceDir, module.name), join(partial, module.name));
    }
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    await removeEmptyBundleDir(bundlesDir, build.name);
    throw error;
  }
  return target;
}

/** Deletes a build's files, and its bundle's dir once no build is left in it. */
export async function removeBundle(bundlesDir: string, build: Pick<Build, "name" | "buildId">): Promise<void> {
  await rm(buildDir(bundlesDir, build), { recursive: true, force: true });
  await removeEmptyBundleDir(bundlesDir, build.name);
}

/** The builds of bundle `name` whose files are in the bundles dir (a half-copied one is not). */
export async function storedBuildIds(bundlesDir: string, name: string): Promise<string[]> {
  const entries = await readdir(join(bundlesDir, name), { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && !e.name.endsWith(PARTIAL)).map((e) => e.name);
}

async function removeEmptyBundleDir(bundlesDir: string, name: string): Promise<void> {
  // rmdir refuses a dir that is not empty, which is the check wanted here.
  await rmdir(join(bundlesDir, name)).catch(() => {});
}

async function listFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  let seen = 0;
  // Walk lazily, so pointing at a huge tree by mistake fails fast instead of reading it all.
  for await (const entry of await opendir(dir, { recursive: true })) {
    if (++seen > MAX_ENTRIES) {
      throw new BundleError(`${dir} holds more than ${MAX_ENTRIES} files; point source at a wrangler --outdir`);
    }
    const path = join(entry.parentPath, entry.name);
    // A link could point anywhere on the host; a bundle must be plain files.
    if (entry.isSymbolicLink()) {
      throw new BundleError(`${relative(dir, path)} is a symbolic link; bundles must contain plain files`);
    }
    if (entry.isFile()) files.push(relative(dir, path));
  }
  return files.sort();
}

async function readMetadata(dir: string, files: string[]): Promise<BundleMetadata> {
  if (!files.includes("gridiron.json")) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, "gridiron.json"), "utf8"));
  } catch (error) {
    throw new BundleError(`gridiron.json is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = BundleMetadata.safeParse(raw);
  if (!parsed.success) throw new BundleError(`gridiron.json: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  return parsed.data;
}
