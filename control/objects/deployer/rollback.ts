import { UserError } from "../../domain/errors.ts";
import { type BuildRecord, rollbackTarget } from "../../domain/lifecycle.ts";
import { type ActivateResult, parseInput, RollbackRequest, resultOf } from "./api.ts";
import { type Ctx, type Deployer, noRollout, now, recordsOf } from "./context.ts";
import { makeActive } from "./drain.ts";
import { manifestOf } from "./files.ts";
import { serve } from "./serve.ts";

/** Makes the previous (or the named) build receive all new calls again. */
export const rollback = async (d: Deployer, ctx: Ctx, raw?: unknown): Promise<ActivateResult> => {
  const input = parseInput(RollbackRequest, raw);
  await noRollout(ctx, "roll back");
  const records = await recordsOf(ctx);
  const target = rollbackTarget(records, input?.buildId);
  if ("error" in target) throw new UserError(`cannot roll back ${ctx.key}: ${target.error}`, 409);
  const { watch: _ended, tookOver: _before, ...build } = target;
  // Going back is an explicit choice, so the old build's schema is accepted as it was; its
  // services must still be its bundle's.
  const options = { force: true, breaking: true, takeOver: [] };
  const manifest = await manifestOf(d, ctx, build, target);
  const record: BuildRecord = { ...build, manifest, ...(await serve(d, ctx, build, manifest, options)) };
  makeActive(d, ctx, records, record, { at: await now(ctx), event: "rolled back to" });
  return resultOf(record);
};
