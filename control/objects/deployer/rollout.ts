import * as restate from "@restatedev/restate-sdk";
import type { z } from "zod";
import { adminHeaders } from "../../credentials/admin-token.ts";
import type { Build } from "../../domain/bundle.ts";
import { UserError } from "../../domain/errors.ts";
import { type BuildRecord, withState } from "../../domain/lifecycle.ts";
import {
  type AutoPolicy,
  judgeStep,
  liveSplits,
  type Rollout,
  type SplitRecord,
  shapeDifference,
  splitOf,
  withRolloutEvent,
} from "../../domain/rollout.ts";
import { cellOf, cellUrl } from "../../node/workerd/cells.ts";
import { type ActivateResult, type RolloutJudgement, resultOf } from "./api.ts";
import { type Ctx, type Deployer, now, recordsOf, replaceRecord, since, splitsOf, type Uses } from "./context.ts";
import { makeActive, watchDrain } from "./drain.ts";
import { deleteFiles, manifestOf } from "./files.ts";
import { type Activation, compileAhead, recordFailed, registerUri, routeBuild } from "./serve.ts";

/*
 * Gradual rollouts (domain/rollout.ts): a canary beside the active build, sent a share of new
 * calls by a split, stepped up, promoted or aborted by hand or by judgements of its outcomes.
 */

/** The bundle's rollout in progress, or a 409 saying there is none. */
const rolloutOf = async (ctx: Ctx) => {
  const rollout = await ctx.get("rollout");
  if (!rollout) throw new UserError(`${ctx.key} has no rollout in progress: deploy with a percentage first`, 409);
  const records = await recordsOf(ctx);
  const build = (buildId: string) => {
    const record = records.find((r) => r.buildId === buildId);
    if (!record) throw new Error(`the rollout's build ${buildId} has no record`);
    return record;
  };
  return { rollout, records, stable: build(rollout.stable), canary: build(rollout.canary) };
};

/**
 * Registers the split of `stable` and `canary` at `percent` as the latest and records it; the
 * split that was the latest drains. The same split registered before (a percentage seen again)
 * is forced to become the latest again, as its uri routes exactly as it did.
 */
const registerSplit = async (
  d: Uses<"admin" | "steps" | "adminToken", "cells" | "ports" | "drainPollMs">,
  ctx: Ctx,
  stable: BuildRecord,
  canary: BuildRecord,
  percent: number,
) => {
  const segment = splitOf(stable.buildId, canary.buildId, percent);
  // A split is served by the router of one cell, which must hold both builds.
  const cell = cellOf(canary);
  if (cellOf(stable) !== cell) {
    throw new UserError(
      `a rollout needs both builds in one cell: ${stable.buildId} serves in cell ${cellOf(stable)}, ${canary.buildId} in cell ${cell}; deploy without --percent instead`,
      409,
    );
  }
  const uri = `${cellUrl(d.settings, cell)}/${ctx.key}/${segment}`;
  const deploymentId = await registerUri(d, ctx, uri, canary.services, { force: true, breaking: false });
  const at = await now(ctx);
  const split: SplitRecord = {
    segment,
    stable: stable.buildId,
    canary: canary.buildId,
    percent,
    deploymentId,
    uri,
    state: "active",
    times: { active: at },
  };
  const others = liveSplits(await splitsOf(ctx)).filter((s) => s.segment !== segment);
  ctx.set("splits", [...drainSplits(d, ctx, others, at), split]);
  return split;
};

/** The splits with the one that was the latest now draining and watched. */
const drainSplits = (d: Uses<"adminToken", "drainPollMs">, ctx: Ctx, splits: SplitRecord[], at: string) =>
  splits.map((s) =>
    s.state === "active" ? watchDrain(d, ctx, s.segment, withState(s, "draining", at), d.settings.drainPollMs) : s,
  );

/** Ends the rollout: its split drains. The caller has made another deployment the latest. */
const endRollout = async (d: Uses<"adminToken", "drainPollMs">, ctx: Ctx) => {
  ctx.set("splits", drainSplits(d, ctx, await splitsOf(ctx), await now(ctx)));
  ctx.clear("rollout");
};

/** Asks for the next judgement of an automatic rollout one interval from now. */
const judgeLater = async (d: Pick<Deployer, "adminToken">, ctx: Ctx, policy: AutoPolicy, waiting?: string) => {
  const watch = ctx.rand.uuidv4();
  const delay = policy.intervalSeconds * 1000;
  ctx.genericSend({
    service: "deployer",
    method: "judgeRollout",
    key: ctx.key,
    parameter: restate.serde.json.serialize({ watch }),
    headers: adminHeaders(d.adminToken),
    delay,
  });
  const nextAt = new Date((await ctx.date.now()) + delay).toISOString();
  return { policy, watch, nextAt, ...(waiting ? { waiting } : {}) };
};

/**
 * Rolls a copied build out beside the active one: proves it, checks both have the same shape
 * (else 400, nothing changed), routes it and makes a split of the two at `percent` the latest.
 */
export const startRollout = async (
  d: Deployer,
  ctx: Ctx,
  build: Build,
  activation: Activation,
  percent: number,
  auto: AutoPolicy | undefined,
): Promise<ActivateResult> => {
  const records = await recordsOf(ctx);
  const stable = records.find((r) => r.state === "active");
  if (!stable) {
    throw new UserError(`${ctx.key} has no active build to roll out beside: deploy without a percentage first`, 409);
  }
  if (stable.buildId === build.buildId) throw new UserError(`build ${build.buildId} is the active build already`, 409);
  const known = records.find((r) => r.buildId === build.buildId && r.state !== "failed");
  const manifest = await manifestOf(d, ctx, build, known);
  const difference = shapeDifference(await manifestOf(d, ctx, stable, stable), manifest);
  if (difference) {
    if (!known) await ctx.run("delete files of the refused build", () => deleteFiles(d, build));
    throw new UserError(
      `nothing changed: ${build.buildId} cannot share calls with the active build ${stable.buildId}, their shapes differ: ${difference}`,
    );
  }
  let canary: BuildRecord;
  let split: SplitRecord;
  try {
    const routed = await routeBuild(d, ctx, build, manifest, { takeOver: [] });
    canary = {
      ...build,
      ...(known ?? {}),
      uri: routed.uri,
      services: routed.services,
      cell: routed.cell,
      protocolMode: routed.protocolMode,
      manifest,
      deploymentId: known?.deploymentId ?? null,
      origin: activation.origin,
      ...(activation.requiredSecrets.length ? { requiredSecrets: activation.requiredSecrets } : {}),
      state: "canary",
      times: known?.times ?? {},
      filesKept: true,
    };
    split = await registerSplit(d, ctx, stable, canary, percent);
    compileAhead(d, routed.cell, build);
  } catch (error) {
    if (error instanceof restate.TerminalError || error instanceof UserError) {
      const { origin, startedMs } = activation;
      await recordFailed(d, ctx, records, build, Boolean(known), error.message, startedMs, origin);
    }
    throw error;
  }
  const at = await now(ctx);
  const { watch: _ended, error: _before, ...fresh } = canary;
  const started = withRolloutEvent(withState(fresh, "canary", at), { at, event: "rolled out", percent });
  ctx.set("builds", [...records.filter((r) => r.buildId !== build.buildId), started]);
  const rollout: Rollout = {
    stable: stable.buildId,
    canary: build.buildId,
    percent,
    split: split.segment,
    startedAt: at,
    stepAt: at,
  };
  ctx.set("rollout", auto ? { ...rollout, auto: await judgeLater(d, ctx, auto) } : rollout);
  return rolloutResult(started, split, stable.buildId);
};

/** Makes a split at `percent` the latest: the canary takes that share of new calls. */
export const stepRollout = async (
  d: Uses<"admin" | "steps" | "adminToken", "cells" | "ports" | "drainPollMs">,
  ctx: Ctx,
  percent: number,
): Promise<ActivateResult> => {
  const { rollout, records, stable, canary } = await rolloutOf(ctx);
  const split = await registerSplit(d, ctx, stable, canary, percent);
  const at = await now(ctx);
  const stepped = withRolloutEvent(canary, { at, event: "rolled out", percent });
  ctx.set("builds", replaceRecord(records, stepped));
  ctx.set("rollout", { ...rollout, percent, split: split.segment, stepAt: at });
  return rolloutResult(stepped, split, stable.buildId);
};

/** The canary becomes the active build: its own deployment is the latest; the stable one drains. */
export const promoteCanary = async (
  d: Uses<"admin" | "steps" | "adminToken", "drainPollMs">,
  ctx: Ctx,
): Promise<ActivateResult> => {
  const { rollout, records, canary } = await rolloutOf(ctx);
  const deploymentId = await registerUri(d, ctx, canary.uri, canary.services, { force: true, breaking: false });
  const promoted = { ...canary, deploymentId };
  makeActive(d, ctx, records, promoted, { event: "activated", ...(await since(ctx, Date.parse(rollout.startedAt))) });
  await endRollout(d, ctx);
  return resultOf(promoted);
};

/**
 * The stable build takes every new call again; the canary drains. Invocations pinned to a split
 * finish on the build the split sent them to, the canary too (see README, Gradual rollouts).
 */
export const abortRollout = async (
  d: Uses<"admin" | "steps" | "adminToken", "drainPollMs">,
  ctx: Ctx,
  reason?: string,
): Promise<ActivateResult> => {
  const { records, stable, canary } = await rolloutOf(ctx);
  // Its own uri again, as a rollback does: an explicit choice, so its schema is accepted as it was.
  const deploymentId = await registerUri(d, ctx, stable.uri, stable.services, { force: true, breaking: true });
  const at = await now(ctx);
  const aborted = withRolloutEvent(withState(canary, "draining", at), { at, event: "aborted" });
  const watched = watchDrain(
    d,
    ctx,
    canary.buildId,
    reason ? { ...aborted, error: reason } : aborted,
    d.settings.drainPollMs,
  );
  const restored = { ...stable, deploymentId };
  ctx.set("builds", replaceRecord(replaceRecord(records, watched), restored));
  await endRollout(d, ctx);
  return resultOf(restored);
};

/**
 * One judgement of an automatic rollout, at the end of a step: the canary's and the stable
 * build's outcomes over the step's window decide (rollout.ts judgeStep). Only the deployer's
 * own delayed messages call it; a stale one (the rollout moved on by hand) ends itself.
 */
export const judgeRollout = async (d: Deployer, ctx: Ctx, { watch }: z.infer<typeof RolloutJudgement>) => {
  const { outcomes } = d;
  const rollout = await ctx.get("rollout");
  if (!rollout?.auto || rollout.auto.watch !== watch || !outcomes) return;
  const { policy } = rollout.auto;
  const toMs = await ctx.date.now();
  const fromMs = Math.max(Date.parse(rollout.stepAt), toMs - policy.intervalSeconds * 1000);
  const [stable, canary] = await ctx.run("count outcomes", async () => [
    await outcomes.counts(ctx.key, rollout.stable, fromMs, toMs),
    await outcomes.counts(ctx.key, rollout.canary, fromMs, toMs),
  ]);
  const decision = judgeStep(policy, rollout.percent, stable, canary);
  ctx.console.info(`rollout of ${ctx.key} ${rollout.canary} at ${rollout.percent}%: ${JSON.stringify(decision)}`);
  if (decision.kind === "abort") await abortRollout(d, ctx, `aborted automatically: ${decision.reason}`);
  else if (decision.kind === "promote") await promoteCanary(d, ctx);
  else {
    if (decision.kind === "step") await stepRollout(d, ctx, decision.percent);
    const waiting = decision.kind === "wait" ? decision.reason : undefined;
    const current = (await ctx.get("rollout")) ?? rollout;
    ctx.set("rollout", { ...current, auto: await judgeLater(d, ctx, policy, waiting) });
  }
};

/** What starting or stepping a rollout answers: the canary, with the split's deployment and uri. */
function rolloutResult(canary: BuildRecord, split: SplitRecord, stable: string): ActivateResult {
  return {
    ...resultOf(canary),
    deploymentId: split.deploymentId,
    uri: split.uri,
    rollout: { stable, percent: split.percent },
  };
}
