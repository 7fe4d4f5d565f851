import { objectsInUse } from "../../cluster/store-client.ts";
import { Step } from "../../contracts.ts";
import type { Build } from "../../domain/bundle.ts";
import { type BuildRecord, filesToDelete } from "../../domain/lifecycle.ts";
import { removeBundle, storeBundle, storedBuildIds } from "../../files/bundle-store.ts";
import { proveBuild } from "../../node/workerd/proof.ts";
import type { Ctx, Deployer, Uses } from "./context.ts";

/* A build's files: kept where nodes serve them from, proved there, and deleted once no record keeps them. */

/** Puts a build's files where nodes serve them from: the bundles dir, and in a cluster the store first. */
export const keepFiles = async (d: Uses<"store", "bundlesDir">, dir: string, build: Build, activationId: string) => {
  await d.store?.upload(dir, build, activationId);
  await storeBundle(d.settings.bundlesDir, dir, build);
};

/**
 * Proves a build on this node's disk. In a cluster, a retry can run on another node than the
 * one whose "copy bundle" step copied the files there: that node fetches them from the store.
 */
const proveHere = async (d: Pick<Deployer, "settings" | "store">, build: Build) => {
  await d.store?.fetch(d.settings.bundlesDir, build, d.settings.maxBundleBytes);
  return proveBuild(d.settings, build);
};

/** The manifest a build's proof recorded: kept in its record, or proved now for older records. */
export const manifestOf = async (
  d: Pick<Deployer, "settings" | "store" | "steps">,
  ctx: Ctx,
  build: Build,
  record: BuildRecord | undefined,
) => record?.manifest ?? (await d.steps.run(ctx, Step.proveBuild, () => proveHere(d, build))).recorded;

/**
 * Deletes a build's files here, and in a cluster from the store (and its bucket, but for files
 * other builds share), whence every node's agent deletes its own.
 */
export const deleteFiles = async (d: Uses<"store" | "admin", "bundlesDir">, build: Pick<Build, "name" | "buildId">) => {
  await d.store?.remove(build, () => objectsInUse(d.admin, build));
  await removeBundle(d.settings.bundlesDir, build);
};

/**
 * Deletes the files of `current`'s bundle that no record keeps: an activation killed after
 * copying its build (no record is written then) left them. Activations of a bundle run one at
 * a time, so no other is copying files of it meanwhile.
 */
export const deleteOrphans = async (
  d: Uses<"store" | "admin", "bundlesDir">,
  records: BuildRecord[],
  current: Build,
) => {
  const kept = new Set([current.buildId, ...records.filter((r) => r.filesKept).map((r) => r.buildId)]);
  for (const buildId of await storedBuildIds(d.settings.bundlesDir, current.name)) {
    if (!kept.has(buildId)) await deleteFiles(d, { name: current.name, buildId });
  }
};

export const deleteOldFiles = async (
  d: Uses<"store" | "admin", "bundlesDir" | "keepBuilds">,
  ctx: Ctx,
  records: BuildRecord[],
): Promise<BuildRecord[]> => {
  const doomed = new Set(filesToDelete(records, d.settings.keepBuilds).map((r) => r.buildId));
  for (const record of records.filter((r) => doomed.has(r.buildId))) {
    await ctx.run(`delete files of ${record.buildId}`, () => deleteFiles(d, record));
  }
  return records.map((r) => (doomed.has(r.buildId) ? { ...r, filesKept: false } : r));
};
