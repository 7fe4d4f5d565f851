import * as restate from "@restatedev/restate-sdk";
import { StoreClient } from "../../cluster/store-client.ts";
import { ROUTES, ROUTES_KEY } from "../../contracts.ts";
import { adminHeaders, adminOnly } from "../../credentials/admin-token.ts";
import { UserError } from "../../domain/errors.ts";
import type { BuildRecord } from "../../domain/lifecycle.ts";
import { StoredBuilds, StoredSecrets } from "../../domain/records.ts";
import type { BuildOutcomes, Rollout, SplitRecord } from "../../domain/rollout.ts";
import type { Secrets, SecretsKey } from "../../domain/secrets.ts";
import { AdminClient } from "../../restate/admin-client.ts";
import type { Settings } from "../../settings.ts";
import { journaledSteps, type Steps } from "../crash-switch.ts";
import type { RoutesObject } from "../routes.ts";

export type DeployerState = { builds: BuildRecord[]; secrets: Secrets; rollout: Rollout; splits: SplitRecord[] };
export type Ctx = restate.ObjectContext<DeployerState>;
export type SharedCtx = restate.ObjectSharedContext<DeployerState>;

/** What every workflow of the deployer shares: built once per endpoint by `deployerContext`. */
export interface Deployer {
  settings: Settings;
  adminToken: string;
  admin: AdminClient;
  /** The options of the control plane's calls to its internal handlers: they carry the admin token; tenants' code cannot. */
  internal: <I, O>() => restate.Opts<I, O>;
  /** The hooks of the handlers only admins and the control plane may call: they check the token. */
  admins: restate.HooksProvider[];
  /** The journaled steps of activate or prune, after each of which a crash test may end the process. */
  steps: Steps;
  /** In a cluster, the store every node fetches builds' files from (cluster/store.ts). */
  store: StoreClient | undefined;
  /** The key the bundles' secrets are sealed to (secrets.ts). */
  secretsKey: SecretsKey;
  /** Per-build outcome counts for `auto` rollouts; without them `auto` is refused. */
  outcomes: BuildOutcomes | undefined;
}

/** The part of the deployer a function uses: some of its dependencies, and the settings it reads. */
export type Uses<K extends Exclude<keyof Deployer, "settings">, S extends keyof Settings = never> = Pick<
  Deployer,
  K
> & {
  settings: Pick<Settings, S>;
};

export function deployerContext(
  settings: Settings,
  adminToken: string,
  secretsKey: SecretsKey,
  outcomes: BuildOutcomes | undefined,
): Deployer {
  return {
    settings,
    adminToken,
    admin: new AdminClient({ socketPath: settings.adminSocket }),
    internal: <I, O>() => restate.rpc.opts<I, O>({ headers: adminHeaders(adminToken) }),
    admins: [adminOnly(adminToken)],
    steps: journaledSteps(settings.crashPoints ? settings.dataDir : undefined),
    store: settings.cluster ? new StoreClient(settings.ingressUrl, adminToken, settings.clusterBuilds) : undefined,
    secretsKey,
    outcomes,
  };
}

/** Read back through the one schema of the deployer's records (records.ts). */
const storedBuilds = restate.serde.schema(StoredBuilds);
const storedSecrets = restate.serde.schema(StoredSecrets);

export const routes = (ctx: Pick<Ctx, "objectClient">) => ctx.objectClient<RoutesObject>({ name: ROUTES }, ROUTES_KEY);
export const now = async (ctx: Ctx) => new Date(await ctx.date.now()).toISOString();
/** Now, and how long since `startedMs`; both journaled, so a replay measures the same. */
export const since = async (ctx: Ctx, startedMs: number) => {
  const endMs = await ctx.date.now();
  return { at: new Date(endMs).toISOString(), durationMs: endMs - startedMs };
};
export const recordsOf = async (ctx: SharedCtx) => (await ctx.get("builds", storedBuilds)) ?? [];
export const secretsOf = async (ctx: SharedCtx) => (await ctx.get("secrets", storedSecrets)) ?? {};
export const splitsOf = async (ctx: SharedCtx) => (await ctx.get("splits")) ?? [];
/** Refuses a change that would fight a rollout in progress: it must be promoted or aborted first. */
export const noRollout = async (ctx: Ctx, what: string) => {
  const rollout = await ctx.get("rollout");
  if (rollout) {
    throw new UserError(
      `cannot ${what} ${ctx.key}: build ${rollout.canary} is rolled out to ${rollout.percent}% of new calls; promote or abort it first`,
      409,
    );
  }
};

export const replaceRecord = (records: BuildRecord[], record: BuildRecord) =>
  records.map((r) => (r.buildId === record.buildId ? record : r));
