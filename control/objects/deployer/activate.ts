import * as restate from "@restatedev/restate-sdk";
import { Step } from "../../contracts.ts";
import type { Build } from "../../domain/bundle.ts";
import { UserError } from "../../domain/errors.ts";
import type { BuildRecord, Origin } from "../../domain/lifecycle.ts";
import type { RecordedManifest } from "../../domain/manifest.ts";
import { envProblem, sealedOf } from "../../domain/secrets.ts";
import { inspectBundle } from "../../files/bundle-store.ts";
import { shownSource, withSourceDir } from "../../files/remote-source.ts";
import { type ActivateRequest, type ActivateResult, bundleName, resultOf } from "./api.ts";
import { type Ctx, type Deployer, noRollout, recordsOf, secretsOf, since } from "./context.ts";
import { makeActive } from "./drain.ts";
import { deleteOrphans, keepFiles, manifestOf } from "./files.ts";
import { startRollout } from "./rollout.ts";
import { type Activation, driftOfBuild, recordFailed, serve } from "./serve.ts";

/* Activating a build: copied from its source, proved, served, and made the active build (or a canary). */

/**
 * Copies the requested build from its source and makes it active, or with a percentage (or an
 * automatic rollout) the canary beside the active build.
 */
export const activate = async (d: Deployer, ctx: Ctx, input: ActivateRequest): Promise<ActivateResult> => {
  const name = bundleName(ctx.key);
  const secrets = await secretsOf(ctx);
  const missing = (input.requireSecrets ?? []).filter((secret) => !(secret in secrets));
  if (missing.length) {
    throw new UserError(
      `${name} needs the secret(s) ${missing.join(", ")}, not set: \`gridiron secret put NAME --bundle ${name}\` each`,
    );
  }
  const problem = envProblem(input.vars, secrets);
  if (problem) throw new UserError(problem);
  if (input.auto && !d.outcomes) {
    throw new UserError(
      "automatic rollouts need per-build outcome counts, which this mesh does not collect (GRIDIRON_LOGS=false): roll out by hand with rollout, promote and abort",
      501,
    );
  }
  await noRollout(ctx, "activate a build of");
  const records = await recordsOf(ctx);
  // When the activation started is journaled with the copy, the first step, rather than on its
  // own: each journal entry is a round trip to restate-server before the next step can start.
  const { build, startedMs } = await d.steps.run(ctx, Step.copyBundle, () => {
    const startedMs = Date.now();
    return withSourceDir(input.source, input.sha256, d.settings.downloadsDir, d.settings.fetchLimits, async (dir) => {
      const requested = { ...input, secrets: sealedOf(secrets) };
      const inspected = await inspectBundle(dir, name, input.version, requested, d.settings.maxBundleBytes);
      await keepFiles(d, dir, inspected, ctx.request().id);
      await deleteOrphans(d, records, inspected);
      return { build: inspected, startedMs };
    });
  });
  const activation = {
    origin: originOf(input),
    requiredSecrets: input.requireSecrets ?? [],
    breaking: input.breaking ?? false,
    takeOver: input.takeOver ?? [],
    ...(input.cell ? { cell: input.cell } : {}),
    startedMs,
  };
  const percent = input.percent ?? input.auto?.steps[0];
  if (percent === undefined) return await activateBuild(d, ctx, build, activation);
  return await startRollout(d, ctx, build, activation, percent, input.auto);
};

/**
 * Proves (unless it served before), routes and registers a copied build, and makes it active.
 * A build that served before (same content) must be forced to become the latest again; an
 * active one is only served again to repair drift.
 */
export const activateBuild = async (
  d: Deployer,
  ctx: Ctx,
  build: Build,
  activation: Activation,
): Promise<ActivateResult> => {
  const records = await recordsOf(ctx);
  const known = records.find((r) => r.buildId === build.buildId && r.state !== "failed");
  if (known?.state === "active" && (await driftOfBuild(d, ctx, known)).problems.length === 0) {
    return resultOf(known);
  }
  let served: Awaited<ReturnType<typeof serve>>;
  let manifest: RecordedManifest;
  try {
    manifest = await manifestOf(d, ctx, build, known);
    served = await serve(d, ctx, build, manifest, {
      force: Boolean(known?.deploymentId),
      breaking: activation.breaking,
      takeOver: activation.takeOver,
      ...(activation.cell ? { cell: activation.cell } : {}),
    });
  } catch (error) {
    if (error instanceof restate.TerminalError || error instanceof UserError) {
      const { origin, startedMs } = activation;
      await recordFailed(d, ctx, records, build, Boolean(known), error.message, startedMs, origin);
    }
    throw error;
  }
  const record: BuildRecord = {
    ...build,
    ...served,
    manifest,
    origin: activation.origin,
    ...(activation.requiredSecrets.length ? { requiredSecrets: activation.requiredSecrets } : {}),
    times: known?.times ?? {},
    state: "active",
    filesKept: true,
  };
  makeActive(d, ctx, records, record, { event: "activated", ...(await since(ctx, activation.startedMs)) });
  return resultOf(record);
};

function originOf(input: ActivateRequest): Origin {
  return {
    source: input.project ?? shownSource(input.source),
    ...(input.message ? { message: input.message } : {}),
  };
}
