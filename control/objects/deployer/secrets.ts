import { Step } from "../../contracts.ts";
import { UserError } from "../../domain/errors.ts";
import {
  type DeleteSecretsRequest,
  envProblem,
  type PutSecretsRequest,
  revisionOf,
  type Secrets,
  sealedOf,
  sealedProblem,
  secretsView,
} from "../../domain/secrets.ts";
import { buildDir, inspectBundle } from "../../files/bundle-store.ts";
import { activateBuild } from "./activate.ts";
import { bundleName, type SecretsChange } from "./api.ts";
import { type Ctx, type Deployer, noRollout, now, recordsOf, type SharedCtx, secretsOf } from "./context.ts";
import { keepFiles } from "./files.ts";

/* The bundle's sealed secrets (domain/secrets.ts): a change runs the active build with them as a new build. */

/** The bundle's secrets' names and revisions, and which build runs with which; never a value. */
export const listSecrets = async (d: Pick<Deployer, "secretsKey">, ctx: SharedCtx) =>
  secretsView(ctx.key, await secretsOf(ctx), await recordsOf(ctx), d.secretsKey.kid);

/** Adds or replaces sealed secrets; the active build runs with them as a new build. */
export const putSecrets = async (d: Deployer, ctx: Ctx, input: PutSecretsRequest): Promise<SecretsChange> => {
  const name = bundleName(ctx.key);
  const problems = Object.entries(input.secrets).flatMap(
    ([secret, sealed]) => sealedProblem(sealed, name, secret, d.secretsKey.kid) ?? [],
  );
  if (problems.length) throw new UserError(`nothing changed: ${problems.join("; ")}`);
  const setAt = await now(ctx);
  const put = Object.entries(input.secrets).map(([secret, sealed]) => [
    secret,
    { sealed, revision: revisionOf(sealed), setAt },
  ]);
  return await changeSecrets(d, ctx, { ...(await secretsOf(ctx)), ...Object.fromEntries(put) }, "put");
};

/** Deletes secrets; the active build runs without them as a new build. */
export const deleteSecrets = async (d: Deployer, ctx: Ctx, input: DeleteSecretsRequest): Promise<SecretsChange> => {
  const secrets = await secretsOf(ctx);
  const unknown = input.names.filter((secret) => !(secret in secrets));
  if (unknown.length) throw new UserError(`${ctx.key} has no secret(s) ${unknown.join(", ")}`, 404);
  const kept = Object.fromEntries(Object.entries(secrets).filter(([secret]) => !input.names.includes(secret)));
  return await changeSecrets(d, ctx, kept, "deleted");
};

/**
 * Stores the bundle's secrets as `secrets`, then rolls the change out like a deploy: the active
 * build's files, with the active build's settings and these secrets, become a new build (their
 * revisions are part of its id) that gets new calls, while calls in flight finish on the old one,
 * which drains as any replaced build. Nothing is refused halfway: the secrets are checked first.
 */
const changeSecrets = async (
  d: Deployer,
  ctx: Ctx,
  secrets: Secrets,
  what: "put" | "deleted",
): Promise<SecretsChange> => {
  await noRollout(ctx, "change the secrets of");
  const records = await recordsOf(ctx);
  const active = records.find((r) => r.state === "active");
  const problem = envProblem(active?.vars, secrets);
  if (problem) throw new UserError(`nothing changed: ${problem}`);
  const required = active?.requiredSecrets ?? [];
  const missing = required.filter((secret) => !(secret in secrets));
  if (missing.length) {
    throw new UserError(
      `nothing changed: the active build ${active?.buildId} requires ${missing.join(", ")}; activate one that does not first`,
      409,
    );
  }
  ctx.set("secrets", secrets);
  if (!active) return secretsView(ctx.key, secrets, records, d.secretsKey.kid);
  const startedMs = await ctx.date.now();
  const build = await d.steps.run(ctx, Step.copyBundle, async () => {
    // In a cluster this node may not have the files yet: the store has them.
    await d.store?.fetch(d.settings.bundlesDir, active, d.settings.maxBundleBytes);
    const dir = buildDir(d.settings.bundlesDir, active);
    const { mainModule: main, compatibilityDate, compatibilityFlags, vars, egress } = active;
    const requested = { main, compatibilityDate, compatibilityFlags, vars, egress, secrets: sealedOf(secrets) };
    const rebuilt = await inspectBundle(dir, active.name, active.version, requested, d.settings.maxBundleBytes);
    await keepFiles(d, dir, rebuilt, ctx.request().id);
    return rebuilt;
  });
  const origin = {
    source: active.origin?.source ?? buildDir(d.settings.bundlesDir, active),
    message: `secrets ${what}`,
  };
  const activation = { origin, requiredSecrets: required, breaking: false, takeOver: [], startedMs };
  const activated = await activateBuild(d, ctx, build, activation);
  return { ...secretsView(ctx.key, secrets, await recordsOf(ctx), d.secretsKey.kid), activated };
};
