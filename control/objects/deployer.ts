import * as restate from "@restatedev/restate-sdk";
import type { z } from "zod";
import { DEPLOYER } from "../contracts.ts";
import { adminOnly } from "../credentials/admin-token.ts";
import type { BuildOutcomes } from "../domain/rollout.ts";
import { DeleteSecretsRequest, PutSecretsRequest, type SecretsKey } from "../domain/secrets.ts";
import type { Settings } from "../settings.ts";
import { activate } from "./deployer/activate.ts";
import {
  ActivateRequest,
  type ActivateResult,
  DrainCheck,
  type PruneRequest,
  type PruneResult,
  type RollbackRequest,
  RolloutJudgement,
  RolloutRequest,
  type SecretsChange,
} from "./deployer/api.ts";
import { type Ctx, deployerContext, type SharedCtx } from "./deployer/context.ts";
import { checkDrain, resumePaused } from "./deployer/drain.ts";
import { pruneBuilds } from "./deployer/prune.ts";
import { rollback } from "./deployer/rollback.ts";
import { abortRollout, judgeRollout, promoteCanary, stepRollout } from "./deployer/rollout.ts";
import { deleteSecrets, listSecrets, putSecrets } from "./deployer/secrets.ts";
import { status } from "./deployer/status.ts";
import { asTerminalError } from "./error-policy.ts";

/**
 * `deployer`, keyed by bundle name: activates builds of that bundle, watches replaced builds
 * drain with delayed messages to itself, prunes them, rolls back, reports status, and keeps the
 * bundle's secrets, sealed to `secretsKey` (secrets.ts). Each workflow is a module of
 * `deployer/`; this is only the handlers table, with each handler's options.
 */
export function deployerObject(
  settings: Settings,
  adminToken: string,
  secretsKey: SecretsKey,
  /** Per-build outcome counts for `auto` rollouts; without them `auto` is refused. */
  outcomes?: BuildOutcomes,
) {
  const d = deployerContext(settings, adminToken, secretsKey, outcomes);
  return restate.object({
    name: DEPLOYER,
    handlers: {
      /** The bundle's secrets' names and revisions, and which build runs with which; never a value. */
      secrets: restate.handlers.object.shared(async (ctx: SharedCtx) => listSecrets(d, ctx)),

      /** The public key secrets are sealed to (the same for every bundle), for the CLI and scripts. */
      secretsKey: restate.handlers.object.shared(async (): Promise<SecretsKey> => secretsKey),

      // Admins' calls (`d.admins` checks the token). An anonymous one never waits on the bundle's
      // key: the ingress front refuses it before Restate sees it (ingress-front.ts).
      activate: restate.handlers.object.exclusive(
        { input: restate.serde.schema(ActivateRequest), hooks: d.admins },
        async (ctx: Ctx, input: ActivateRequest): Promise<ActivateResult> => activate(d, ctx, input),
      ),

      /** Adds or replaces sealed secrets; the active build runs with them as a new build. */
      putSecrets: restate.handlers.object.exclusive(
        { input: restate.serde.schema(PutSecretsRequest), hooks: d.admins },
        async (ctx: Ctx, input: PutSecretsRequest): Promise<SecretsChange> => putSecrets(d, ctx, input),
      ),

      /** Deletes secrets; the active build runs without them as a new build. */
      deleteSecrets: restate.handlers.object.exclusive(
        { input: restate.serde.schema(DeleteSecretsRequest), hooks: d.admins },
        async (ctx: Ctx, input: DeleteSecretsRequest): Promise<SecretsChange> => deleteSecrets(d, ctx, input),
      ),

      /** One look at a replaced build; reschedules itself until the build is pruned or active again. */
      // Only the deployer's own delayed messages call it.
      checkDrain: restate.handlers.object.exclusive(
        {
          input: restate.serde.schema(DrainCheck),
          ingressPrivate: true,
          hooks: [adminOnly(adminToken, "checkDrain is internal to the deployer: a call to it")],
        },
        async (ctx: Ctx, check: z.infer<typeof DrainCheck>) => checkDrain(d, ctx, check),
      ),

      /**
       * Prunes every drained build now, or with `buildId` one non-active build; that one must be
       * drained unless `force` is set.
       */
      prune: restate.handlers.object.exclusive(
        // Optional bodies cannot use a schema serde: it would declare the body as always empty.
        { hooks: d.admins },
        // Typed for the clients; validated in pruneBuilds.
        async (ctx: Ctx, raw?: PruneRequest): Promise<PruneResult> => pruneBuilds(d, ctx, raw),
      ),

      /** Makes the previous (or the named) build receive all new calls again. */
      rollback: restate.handlers.object.exclusive(
        { hooks: d.admins },
        // Typed for the clients; validated in rollback.
        async (ctx: Ctx, raw?: RollbackRequest): Promise<ActivateResult> => rollback(d, ctx, raw),
      ),

      /** Moves invocations paused on replaced builds to the active build. */
      resumePaused: restate.handlers.object.exclusive({ hooks: d.admins }, async (ctx: Ctx) => resumePaused(d, ctx)),

      /** A new percentage for the rollout in progress: a new split becomes the latest, the old one drains. */
      rollout: restate.handlers.object.exclusive(
        { input: restate.serde.schema(RolloutRequest), hooks: d.admins },
        async (ctx: Ctx, input: RolloutRequest) => await stepRollout(d, ctx, input.percent),
      ),

      /** The canary becomes the active build. */
      promote: restate.handlers.object.exclusive({ hooks: d.admins }, async (ctx: Ctx) => promoteCanary(d, ctx)),

      /** The stable build takes every new call again; the canary drains. */
      abort: restate.handlers.object.exclusive({ hooks: d.admins }, async (ctx: Ctx) => abortRollout(d, ctx)),

      /** One judgement of an automatic rollout; only the deployer's own delayed messages call it. */
      judgeRollout: restate.handlers.object.exclusive(
        {
          input: restate.serde.schema(RolloutJudgement),
          ingressPrivate: true,
          hooks: [adminOnly(adminToken, "judgeRollout is internal to the deployer: a call to it")],
        },
        async (ctx: Ctx, judgement: z.infer<typeof RolloutJudgement>) => judgeRollout(d, ctx, judgement),
      ),

      status: restate.handlers.object.shared(async (ctx: SharedCtx) => status(d, ctx)),
    },
    options: { asTerminalError },
  });
}

export type DeployerObject = ReturnType<typeof deployerObject>;
