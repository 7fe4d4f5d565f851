import * as restate from "@restatedev/restate-sdk";
import type { z } from "zod";
import { DEPLOYER } from "../../contracts.ts";
import { adminHeaders } from "../../credentials/admin-token.ts";
import {
  afterDrainCheck,
  type BuildRecord,
  type DrainStep,
  drainStep,
  type HistoryEntry,
  isCurrentDrainCheck,
  promote,
} from "../../domain/lifecycle.ts";
import { heldBySplit, liveSplits } from "../../domain/rollout.ts";
import type { DrainCheck } from "./api.ts";
import { type Ctx, type Deployer, now, recordsOf, replaceRecord, splitsOf, type Uses } from "./context.ts";
import { deleteOldFiles } from "./files.ts";
import { prune, pruneSplit } from "./prune.ts";

/* Replaced builds and splits drain: watched by delayed messages to the deployer itself until pruned. */

/** Schedules the next drain check of a replaced build or split: a delayed message, never a sleep. */
export const watchDrain = <R extends { watch?: string }>(
  d: Pick<Deployer, "adminToken">,
  ctx: Ctx,
  id: string,
  record: R,
  delayMs: number,
): R => {
  const watch = ctx.rand.uuidv4();
  ctx.genericSend({
    service: DEPLOYER,
    method: "checkDrain",
    key: ctx.key,
    parameter: restate.serde.json.serialize({ buildId: id, watch }),
    headers: adminHeaders(d.adminToken),
    delay: delayMs,
  });
  return { ...record, watch };
};

/**
 * Stores the records with `promoted` active and `entry` in its history, and starts watching the
 * build it replaced.
 */
export const makeActive = (
  d: Uses<"adminToken", "drainPollMs">,
  ctx: Ctx,
  records: BuildRecord[],
  promoted: BuildRecord,
  entry: HistoryEntry,
) => {
  const replaced = records.find((r) => r.state === "active" && r.buildId !== promoted.buildId)?.buildId;
  const next = promote(records, promoted, entry);
  ctx.set(
    "builds",
    next.map((r) => (r.buildId === replaced ? watchDrain(d, ctx, r.buildId, r, d.settings.drainPollMs) : r)),
  );
};

/** One look at a replaced build; reschedules itself until the build is pruned or active again. */
export const checkDrain = async (d: Deployer, ctx: Ctx, check: z.infer<typeof DrainCheck>) => {
  const records = await recordsOf(ctx);
  const record = records.find((r) => r.buildId === check.buildId);
  if (!record) return await checkSplitDrain(d, ctx, check);
  if (!isCurrentDrainCheck(record, check.watch)) return;
  // A build a split still sends calls to is busy, whatever its own deployment shows; an
  // aborted canary may have no deployment of its own, so nothing else runs on it.
  const deploymentId = record.deploymentId;
  const drain: DrainStep = heldBySplit(await splitsOf(ctx), record.buildId)
    ? { kind: "busy" }
    : drainStep(
        record,
        deploymentId
          ? await ctx.run("look at Restate", () => d.admin.observeDeployment(deploymentId))
          : { latestFor: [], pinned: 0, paused: 0, running: 0 },
        await ctx.date.now(),
        d.settings.drainGraceMs,
      );
  const followUp = afterDrainCheck(record, drain, await now(ctx), d.settings.drainPollMs);
  const next =
    followUp.kind === "prune"
      ? await prune(d, ctx, record)
      : watchDrain(d, ctx, record.buildId, followUp.record, followUp.checkAgainMs);
  ctx.set("builds", await deleteOldFiles(d, ctx, replaceRecord(records, next)));
};

/** One look at a replaced split, as checkDrain takes at a replaced build. */
const checkSplitDrain = async (d: Deployer, ctx: Ctx, check: z.infer<typeof DrainCheck>) => {
  const splits = await splitsOf(ctx);
  const split = splits.find((s) => s.segment === check.buildId);
  if (!isCurrentDrainCheck(split, check.watch)) return;
  const observed = await ctx.run("look at Restate", () => d.admin.observeDeployment(split.deploymentId));
  const drain = drainStep(split, observed, await ctx.date.now(), d.settings.drainGraceMs);
  const followUp = afterDrainCheck(split, drain, await now(ctx), d.settings.drainPollMs);
  const next =
    followUp.kind === "prune"
      ? await pruneSplit(d, ctx, split)
      : watchDrain(d, ctx, split.segment, followUp.record, followUp.checkAgainMs);
  ctx.set(
    "splits",
    splits.map((s) => (s.segment === split.segment ? next : s)),
  );
};

/** Moves invocations paused on replaced builds to the active build. */
export const resumePaused = async (d: Pick<Deployer, "admin">, ctx: Ctx) => {
  const records = await recordsOf(ctx);
  const rollout = await ctx.get("rollout");
  const replaced = [
    ...records.filter((r) => r.state !== "active" && r.deploymentId).map((r) => r.deploymentId as string),
    // Splits no longer the latest: invocations paused on an aborted canary go to the latest.
    ...liveSplits(await splitsOf(ctx))
      .filter((s) => s.segment !== rollout?.split)
      .map((s) => s.deploymentId),
  ];
  const paused = await ctx.run("find paused invocations", () => d.admin.pausedOn(replaced));
  for (const id of paused) await ctx.run(`resume ${id}`, () => d.admin.resumeOnLatest(id));
  return { resumed: paused };
};
