import { buildPath, Step } from "../../contracts.ts";
import type { Build } from "../../domain/bundle.ts";
import { BundleError } from "../../domain/errors.ts";
import { type BuildRecord, type Drift, driftOf, type Origin, recordFailure } from "../../domain/lifecycle.ts";
import { declaredBy, type RecordedManifest, registrationDifference } from "../../domain/manifest.ts";
import type { CellRequest } from "../../domain/placement.ts";
import { cellUrl } from "../../node/workerd/cells.ts";
import { startSpare } from "../../node/workerd/proof.ts";
import { PROVED_WARM_TIMEOUT_MS, warm } from "../../node/workerd/router-client.ts";
import { type RegisterOptions, register } from "../registration.ts";
import { waitForNodes } from "../serving.ts";
import { type Ctx, type Deployer, routes, type SharedCtx, since, type Uses } from "./context.ts";
import { deleteFiles } from "./files.ts";

/* Serving a build: routed on every node, registered with Restate, and undone if it fails. */

interface ServeOptions extends RegisterOptions {
  takeOver: string[];
  cell?: CellRequest;
}

/** How a build being activated came to be, and what its activation may do. */
export interface Activation {
  origin: Origin;
  requiredSecrets: string[];
  breaking: boolean;
  takeOver: string[];
  cell?: CellRequest;
  startedMs: number;
}

/**
 * Routes the build with the manifest its proof recorded, waits until every node serves it, and
 * registers it; it becomes the latest deployment. `force` re-registers a uri Restate already knew;
 * `breaking` accepts schema changes. Restate must register exactly the proved services, or the
 * registration is undone.
 */
export const serve = async (
  d: Pick<Deployer, "admin" | "steps" | "internal" | "settings">,
  ctx: Ctx,
  build: Build,
  manifest: RecordedManifest,
  options: ServeOptions,
) => {
  const { uri, cell, services, protocolMode, takenOver } = await routeBuild(d, ctx, build, manifest, options);
  const deploymentId = await registerUri(d, ctx, uri, services, options);
  compileAhead(d, cell, build);
  return { uri, cell, deploymentId, services, protocolMode, ...(takenOver.length ? { tookOver: takenOver } : {}) };
};

/**
 * Has this node's live workerd compile a build just registered, while the activation ends and
 * its answer travels, so that its first call finds it (nearly) ready. Not before registering:
 * workerd runs one event loop, and Restate's discovery would wait behind the compile. Not
 * journaled and not waited for: compiling twice (on a replay) is a no-op, and a build that fails
 * here was proved, so its first call fails the same way and says why. Then the next proof's
 * spare workerd starts: the activation no longer needs the machine.
 */
export function compileAhead(d: Pick<Deployer, "settings">, cell: number, build: Build): void {
  warm(d.settings, cellUrl(d.settings, cell), PROVED_WARM_TIMEOUT_MS, build)
    .catch((error: unknown) => {
      console.warn(
        `[gridiron] compiling ${build.name} ${build.buildId} ahead of its first call: ${(error as Error).message}`,
      );
    })
    .finally(() => startSpare(d.settings));
}

/**
 * Routes the build with its proof's manifest and waits until every node serves it. The live
 * routers answer discovery from that manifest (router.js), so it is not asked again here.
 */
export const routeBuild = async (
  d: Uses<"steps" | "internal", "agentSocket" | "cluster" | "ports" | "cells" | "identityKeyPath">,
  ctx: Ctx,
  build: Build,
  manifest: RecordedManifest,
  options: { takeOver: string[]; cell?: CellRequest },
) => {
  const { services, protocolMode } = declaredBy(manifest);
  const { takenOver, cell, change } = await routes(ctx).add(
    {
      build: { ...build, services, manifest },
      takeOver: options.takeOver,
      ...(options.cell ? { cell: options.cell } : {}),
    },
    d.internal(),
  );
  await d.steps.after(Step.routeBuild);
  await d.steps.run(ctx, Step.waitForNodes, () => waitForNodes(d.settings, build, "served", change));
  // Registered at its cell's address, which is the same on every node (node/workerd/cells.ts).
  const uri = `${cellUrl(d.settings, cell)}/${buildPath(build)}`;
  if (protocolMode === "REQUEST_RESPONSE") {
    ctx.console.warn(
      `${build.name} ${build.buildId} serves in request-response mode: every ctx.run, call or sleep costs Restate another request and a replay; pass bidirectional: true to createEndpointHandler to keep one stream per invocation`,
    );
  }
  return { uri, cell, services, protocolMode, takenOver };
};

/** Registers a routed uri (a build's or a split's); it becomes the latest. Undone if Restate saw other services. */
export const registerUri = async (
  d: Pick<Deployer, "admin" | "steps">,
  ctx: Ctx,
  uri: string,
  services: string[],
  options: RegisterOptions,
) => {
  const registered = await d.steps.run(ctx, Step.register, () => register(d.admin, uri, options));
  const difference = registrationDifference(
    services,
    registered.services.map((s) => s.name),
  );
  if (difference) {
    await d.steps.run(ctx, Step.undoRegistration, () => d.admin.deleteDeployment(registered.id));
    throw new BundleError(`the build showed Restate other services than its proof: ${difference}; it was undone`);
  }
  return registered.id;
};

/**
 * How a build that should serve differs from serving: its route, registration and services.
 * During a rollout the active build is not the latest: the split that sends it calls (`latest`) is.
 */
export const driftOfBuild = async (
  d: Pick<Deployer, "admin" | "internal">,
  ctx: SharedCtx,
  record: BuildRecord,
  latest = record.deploymentId,
): Promise<Drift> => {
  const view = await routes(ctx).view(d.internal());
  const deploymentId = record.deploymentId;
  const seen = await ctx.run(`look at ${record.buildId}`, async () => {
    const registered = deploymentId ? await d.admin.hasDeployment(deploymentId) : false;
    const latestFor = registered && latest ? (await d.admin.observeDeployment(latest)).latestFor : [];
    return { registered, latestFor };
  });
  const routed = view.builds.some((b) => b.name === record.name && b.buildId === record.buildId);
  return driftOf(record, { ...seen, routed, owners: view.owners });
};

/**
 * Records a failed activation that started at `startedMs`. A build that never served is undone
 * first (route, services, files); one that served before keeps them for rollback.
 */
export const recordFailed = async (
  d: Uses<"internal" | "store" | "admin", "agentSocket" | "cluster" | "ports" | "bundlesDir">,
  ctx: Ctx,
  records: BuildRecord[],
  build: Build,
  known: boolean,
  error: string,
  startedMs: number,
  origin: Origin,
) => {
  if (!known) {
    const change = await routes(ctx).remove(build, d.internal());
    await ctx.run(Step.waitForNodes, () => waitForNodes(d.settings, build, "gone", change));
    await ctx.run("delete files of the failed build", () => deleteFiles(d, build));
  }
  const { at, durationMs } = await since(ctx, startedMs);
  ctx.set("builds", recordFailure(records, build, error, at, durationMs, origin));
};
