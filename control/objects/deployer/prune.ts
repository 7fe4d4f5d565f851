import { Step } from "../../contracts.ts";
import { UserError } from "../../domain/errors.ts";
import { type BuildRecord, isDrained, pruneTargets, recordPrune, withState } from "../../domain/lifecycle.ts";
import { heldBySplit, type SplitRecord } from "../../domain/rollout.ts";
import { waitForNodes } from "../serving.ts";
import { PruneRequest, type PruneResult, parseInput } from "./api.ts";
import { type Ctx, type Deployer, now, recordsOf, replaceRecord, routes, splitsOf, type Uses } from "./context.ts";
import { deleteOldFiles } from "./files.ts";

/* Pruning: Restate forgets a replaced build or split, and no node serves the build any more. */

/** Unregisters and unroutes a build, and waits until no node serves it. Every step is safe to repeat. */
export const prune = async (
  d: Uses<"admin" | "steps" | "internal", "agentSocket" | "cluster" | "ports">,
  ctx: Ctx,
  record: BuildRecord,
): Promise<BuildRecord> => {
  const { deploymentId } = record;
  if (deploymentId) await d.steps.run(ctx, Step.unregister, () => d.admin.deleteDeployment(deploymentId));
  const change = await routes(ctx).remove({ name: record.name, buildId: record.buildId }, d.internal());
  await d.steps.after(Step.unrouteBuild);
  await d.steps.run(ctx, Step.waitForNodes, () => waitForNodes(d.settings, record, "gone", change));
  return recordPrune(record, await now(ctx));
};

/** A replaced split, pruned: Restate forgets its deployment. The builds it held can drain now. */
export const pruneSplit = async (
  d: Pick<Deployer, "admin" | "steps">,
  ctx: Ctx,
  split: SplitRecord,
): Promise<SplitRecord> => {
  await d.steps.run(ctx, Step.unregisterSplit, () => d.admin.deleteDeployment(split.deploymentId));
  const { watch: _ended, ...rest } = split;
  return withState(rest, "pruned", await now(ctx));
};

/**
 * Prunes every drained build now, or with `buildId` one non-active build; that one must be
 * drained unless `force` is set.
 */
export const pruneBuilds = async (d: Deployer, ctx: Ctx, raw?: unknown): Promise<PruneResult> => {
  const input = parseInput(PruneRequest, raw);
  let records = await recordsOf(ctx);
  const chosen = pruneTargets(records, input?.buildId);
  if ("error" in chosen) throw new UserError(chosen.error, chosen.status);
  const pruned: PruneResult["pruned"] = [];
  for (const record of chosen) {
    const deploymentId = record.deploymentId;
    const observed = deploymentId
      ? await ctx.run(`look at ${record.buildId}`, () => d.admin.observeDeployment(deploymentId))
      : undefined;
    const affected = observed ? observed.pinned + observed.running : 0;
    if (input?.buildId && !input.force && heldBySplit(await splitsOf(ctx), record.buildId)) {
      throw new UserError(
        `build ${record.buildId} still takes calls through a rollout's split that is draining; wait for it, or pass "force": true`,
        409,
      );
    }
    if (input?.buildId && !input.force && observed && !isDrained(observed)) {
      throw new UserError(
        `build ${record.buildId} is not drained: ${affected} invocation(s) still run on it${observed.latestFor.length ? ` and it is the latest for ${observed.latestFor.join(", ")}` : ""}; wait for it, or pass "force": true`,
        409,
      );
    }
    records = replaceRecord(records, await prune(d, ctx, record));
    pruned.push({ buildId: record.buildId, affectedInvocations: affected });
  }
  ctx.set("builds", await deleteOldFiles(d, ctx, records));
  return { pruned };
};
