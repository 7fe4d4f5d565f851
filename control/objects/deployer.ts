import * as restate from "@restatedev/restate-sdk";
import { z } from "zod";
import { askNodes, servingNodes } from "../cluster/nodes.ts";
import { objectsInUse, StoreClient } from "../cluster/store.ts";
import { buildPath, DEPLOYER, ROUTES, ROUTES_KEY, Step, type StepName } from "../contracts.ts";
import { adminHeaders, adminOnly } from "../credentials/admin-token.ts";
import { identityHeaders } from "../credentials/request-identity.ts";
import {
  type Build,
  BundleName,
  CompatibilityDate,
  CompatibilityFlags,
  Egress,
  Vars,
  Version,
} from "../domain/bundle.ts";
import { asTerminalError, BundleError, UserError } from "../domain/errors.ts";
import {
  afterDrainCheck,
  type BuildRecord,
  type DrainStep,
  type Drift,
  drainStep,
  driftOf,
  filesToDelete,
  type HistoryEntry,
  type InvocationCounts,
  isCurrentDrainCheck,
  isDrained,
  liveBuilds,
  type Origin,
  promote,
  pruneTargets,
  recordFailure,
  recordPrune,
  rollbackTarget,
  statusView,
  withState,
} from "../domain/lifecycle.ts";
import { type RecordedManifest, registrationDifference, servicesOf } from "../domain/manifest.ts";
import { CellRequest } from "../domain/placement.ts";
import type { ProtocolMode } from "../domain/protocol-mode.ts";
import { StoredBuilds, StoredSecrets } from "../domain/records.ts";
import {
  AutoPolicy,
  type BuildOutcomes,
  heldBySplit,
  judgeStep,
  liveSplits,
  Percent,
  type Rollout,
  rolloutView,
  type SplitRecord,
  shapeDifference,
  splitOf,
  withRolloutEvent,
} from "../domain/rollout.ts";
import {
  DeleteSecretsRequest,
  envProblem,
  PutSecretsRequest,
  revisionOf,
  SecretName,
  type Secrets,
  type SecretsKey,
  type SecretsView,
  sealedOf,
  sealedProblem,
  secretsView,
} from "../domain/secrets.ts";
import { buildDir, inspectBundle, removeBundle, storeBundle, storedBuildIds } from "../files/bundle-store.ts";
import { withSourceDir } from "../files/remote-source.ts";
import { cellOf, cellUrl } from "../node/workerd/cells.ts";
import { proveBuild } from "../node/workerd/proof.ts";
import { AdminClient } from "../restate/admin-client.ts";
import type { Settings } from "../settings.ts";
import { adminGate } from "./admin-gate.ts";
import { journaledSteps } from "./crash-switch.ts";
import { type RegisterOptions, register, waitForDiscovery } from "./registration.ts";
import type { RoutesObject } from "./routes.ts";
import { waitForNodes } from "./serving.ts";

export const ActivateRequest = z
  .strictObject({
    source: z.url({
      protocol: /^(file|https|s3)$/,
      error:
        "source must be a file:///absolute/path URL of a wrangler outdir, or an https:// or s3://bucket/key URL of a tar, tar.gz or zip of one",
    }),
    /** The hex SHA-256 of an https:// or s3:// source's archive; checked before anything is unpacked. */
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, "sha256 must be 64 hex digits")
      .optional(),
    version: Version,
    compatibilityDate: CompatibilityDate.optional(),
    compatibilityFlags: CompatibilityFlags.optional(),
    /** The build's vars, as wrangler's `[vars]`: each handler's `env`. */
    vars: Vars.optional(),
    /** Where the build's code may fetch: absent, the public internet; "none"; or `{ allow: [hosts] }`. */
    egress: Egress.optional(),
    /** Secrets the build needs, as wrangler's `secrets.required`: activate refuses while one is not set. */
    requireSecrets: z.array(SecretName).max(1000).optional(),
    /** Lets Restate accept a schema change it would refuse, like a removed handler. */
    breaking: z.boolean().optional(),
    /** Services another bundle owns that this bundle takes over (see ownership.ts). */
    takeOver: z.array(z.string().min(1).max(255)).max(100).optional(),
    /** A cell of the bundle's own, or back among the others (placement.ts); absent: as before. */
    cell: CellRequest.optional(),
    /** What this build changes, in the deployer's words; shown in status. */
    message: z.string().max(1000).optional(),
    /**
     * Where the build was made, when `source` is only a copy of it: the CLI sends the project's
     * dir and git commit, since the outdir it builds into is gone once the build is copied.
     */
    project: z.string().max(1000).optional(),
    /**
     * Rolls the build out to this percentage of new calls instead of making it active: it becomes
     * the canary beside the active build (rollout.ts), until `promote` or `abort`.
     */
    percent: Percent.optional(),
    /** Steps the rollout up by itself, judging the canary's errors (rollout.ts); starts at its first step. */
    auto: AutoPolicy.optional(),
  })
  .refine((request) => request.source.startsWith("file:") || request.sha256, {
    message: "an https:// or s3:// source needs sha256: the hex SHA-256 of the archive (`sha256sum FILE`)",
    path: ["sha256"],
  });
export type ActivateRequest = z.infer<typeof ActivateRequest>;

const BuildIdField = z.string().min(1).max(100);
const PruneRequest = z.strictObject({ buildId: BuildIdField.optional(), force: z.boolean().optional() }).optional();
type PruneRequest = z.infer<typeof PruneRequest>;
const RollbackRequest = z.strictObject({ buildId: BuildIdField.optional() }).optional();
type RollbackRequest = z.infer<typeof RollbackRequest>;
/** A drain check of a build, or of a split (its `buildId` is then the split's segment). */
const DrainCheck = z.strictObject({ buildId: z.string().min(1).max(300), watch: z.string() });
const RolloutRequest = z.strictObject({ percent: Percent });
type RolloutRequest = z.infer<typeof RolloutRequest>;
const RolloutJudgement = z.strictObject({ watch: z.string() });

export interface ActivateResult {
  name: string;
  version: string;
  buildId: string;
  deploymentId: string;
  uri: string;
  /** The cell that serves it (workerd/cells.ts). */
  cell: number;
  services: string[];
  protocolMode: ProtocolMode | undefined;
  /** For a canary: the rollout step it is in; `deploymentId` and `uri` are then the split's. */
  rollout?: { stable: string; percent: number };
}

export interface PruneResult {
  pruned: { buildId: string; affectedInvocations: number }[];
}

/** What a secret change returns: the secrets now, and the active build it made, if there was one. */
export interface SecretsChange extends SecretsView {
  activated?: ActivateResult;
}

type DeployerState = { builds: BuildRecord[]; secrets: Secrets; rollout: Rollout; splits: SplitRecord[] };
/** Read back through the one schema of the deployer's records (records.ts). */
const storedBuilds = restate.serde.schema(StoredBuilds);
const storedSecrets = restate.serde.schema(StoredSecrets);

interface ServeOptions extends RegisterOptions {
  takeOver: string[];
  cell?: CellRequest;
}

/** How a build being activated came to be, and what its activation may do. */
interface Activation {
  origin: Origin;
  requiredSecrets: string[];
  breaking: boolean;
  takeOver: string[];
  cell?: CellRequest;
  startedMs: number;
}
type Ctx = restate.ObjectContext<DeployerState>;

/**
 * `deployer`, keyed by bundle name: activates builds of that bundle, watches replaced builds
 * drain with delayed messages to itself, prunes them, rolls back, reports status, and keeps the
 * bundle's secrets, sealed to `secretsKey` (secrets.ts).
 */
export function deployerObject(
  settings: Settings,
  adminToken: string,
  secretsKey: SecretsKey,
  /** Per-build outcome counts for `auto` rollouts; without them `auto` is refused. */
  outcomes?: BuildOutcomes,
) {
  const admin = new AdminClient({ socketPath: settings.adminSocket });
  // The control plane's calls to its internal handlers carry the admin token; tenants' code cannot.
  const internal = <I, O>() => restate.rpc.opts<I, O>({ headers: adminHeaders(adminToken) });
  /** The hooks of the handlers only admins and the control plane may call: they check the token. */
  const admins = [adminOnly(adminToken)];
  const routes = (ctx: Pick<Ctx, "objectClient">) => ctx.objectClient<RoutesObject>({ name: ROUTES }, ROUTES_KEY);
  const now = async (ctx: Ctx) => new Date(await ctx.date.now()).toISOString();
  /** Now, and how long since `startedMs`; both journaled, so a replay measures the same. */
  const since = async (ctx: Ctx, startedMs: number) => {
    const endMs = await ctx.date.now();
    return { at: new Date(endMs).toISOString(), durationMs: endMs - startedMs };
  };
  const recordsOf = async (ctx: restate.ObjectSharedContext<DeployerState>) =>
    (await ctx.get("builds", storedBuilds)) ?? [];
  const secretsOf = async (ctx: restate.ObjectSharedContext<DeployerState>) =>
    (await ctx.get("secrets", storedSecrets)) ?? {};
  const splitsOf = async (ctx: restate.ObjectSharedContext<DeployerState>) => (await ctx.get("splits")) ?? [];
  /** Refuses a change that would fight a rollout in progress: it must be promoted or aborted first. */
  const noRollout = async (ctx: Ctx, what: string) => {
    const rollout = await ctx.get("rollout");
    if (rollout) {
      throw new UserError(
        `cannot ${what} ${ctx.key}: build ${rollout.canary} is rolled out to ${rollout.percent}% of new calls; promote or abort it first`,
        409,
      );
    }
  };

  const steps = journaledSteps(settings.crashPoints ? settings.dataDir : undefined);
  /** A journaled step of activate or prune, after which a crash test may end the process. */
  const step = <T>(ctx: Ctx, name: StepName, action: () => Promise<T>) => steps.run(ctx, name, action);

  /**
   * Routes the build with the manifest its proof recorded, waits until every node serves it and it
   * answers, and registers it; it becomes the latest deployment. `force` re-registers a uri Restate already knew;
   * `breaking` accepts schema changes. Restate must register exactly the proved services, or the
   * registration is undone.
   */
  const serve = async (ctx: Ctx, build: Build, manifest: RecordedManifest, options: ServeOptions) => {
    const { uri, cell, services, protocolMode, takenOver } = await routeBuild(ctx, build, manifest, options);
    const deploymentId = await registerUri(ctx, uri, services, options);
    return { uri, cell, deploymentId, services, protocolMode, ...(takenOver.length ? { tookOver: takenOver } : {}) };
  };

  /** Routes the build with its proof's manifest, waits until every node serves it and it answers discovery. */
  const routeBuild = async (
    ctx: Ctx,
    build: Build,
    manifest: RecordedManifest,
    options: { takeOver: string[]; cell?: CellRequest },
  ) => {
    const services = servicesOf(manifest);
    const { takenOver, cell } = await routes(ctx).add(
      {
        build: { ...build, services, manifest },
        takeOver: options.takeOver,
        ...(options.cell ? { cell: options.cell } : {}),
      },
      internal(),
    );
    await steps.after(Step.routeBuild);
    await step(ctx, Step.waitForNodes, () => waitForNodes(settings, build, "served"));
    // Registered at its cell's address, which is the same on every node (node/workerd/cells.ts).
    const uri = `${cellUrl(settings, cell)}/${buildPath(build)}`;
    const { protocolMode } = await step(ctx, Step.waitForDiscovery, async () =>
      waitForDiscovery(uri, await identityHeaders(settings, "/discover")),
    );
    if (protocolMode === "REQUEST_RESPONSE") {
      ctx.console.warn(
        `${build.name} ${build.buildId} serves in request-response mode: every ctx.run, call or sleep costs Restate another request and a replay; pass bidirectional: true to createEndpointHandler to keep one stream per invocation`,
      );
    }
    return { uri, cell, services, protocolMode, takenOver };
  };

  /** Registers a routed uri (a build's or a split's); it becomes the latest. Undone if Restate saw other services. */
  const registerUri = async (ctx: Ctx, uri: string, services: string[], options: RegisterOptions) => {
    const registered = await step(ctx, Step.register, () => register(admin, uri, options));
    const difference = registrationDifference(
      services,
      registered.services.map((s) => s.name),
    );
    if (difference) {
      await step(ctx, Step.undoRegistration, () => admin.deleteDeployment(registered.id));
      throw new BundleError(`the build showed Restate other services than its proof: ${difference}; it was undone`);
    }
    return registered.id;
  };

  /** How a build that should serve differs from serving: its route, registration and services. */
  /** During a rollout the active build is not the latest: the split that sends it calls (`latest`) is. */
  const driftOfBuild = async (
    ctx: restate.ObjectSharedContext<DeployerState>,
    record: BuildRecord,
    latest = record.deploymentId,
  ): Promise<Drift> => {
    const view = await routes(ctx).view(internal());
    const deploymentId = record.deploymentId;
    const seen = await ctx.run(`look at ${record.buildId}`, async () => {
      const registered = deploymentId ? await admin.hasDeployment(deploymentId) : false;
      const latestFor = registered && latest ? (await admin.observeDeployment(latest)).latestFor : [];
      return { registered, latestFor };
    });
    const routed = view.builds.some((b) => b.name === record.name && b.buildId === record.buildId);
    return driftOf(record, { ...seen, routed, owners: view.owners });
  };

  /** Schedules the next drain check of a replaced build or split: a delayed message, never a sleep. */
  const watchDrain = <R extends { watch?: string }>(ctx: Ctx, id: string, record: R, delayMs: number): R => {
    const watch = ctx.rand.uuidv4();
    ctx.genericSend({
      service: DEPLOYER,
      method: "checkDrain",
      key: ctx.key,
      parameter: restate.serde.json.serialize({ buildId: id, watch }),
      headers: adminHeaders(adminToken),
      delay: delayMs,
    });
    return { ...record, watch };
  };

  /**
   * Stores the records with `promoted` active and `entry` in its history, and starts watching the
   * build it replaced.
   */
  const makeActive = (ctx: Ctx, records: BuildRecord[], promoted: BuildRecord, entry: HistoryEntry) => {
    const replaced = records.find((r) => r.state === "active" && r.buildId !== promoted.buildId)?.buildId;
    const next = promote(records, promoted, entry);
    ctx.set(
      "builds",
      next.map((r) => (r.buildId === replaced ? watchDrain(ctx, r.buildId, r, settings.drainPollMs) : r)),
    );
  };

  /** Unregisters and unroutes a build, and waits until no node serves it. Every step is safe to repeat. */
  const prune = async (ctx: Ctx, record: BuildRecord): Promise<BuildRecord> => {
    const { deploymentId } = record;
    if (deploymentId) await step(ctx, Step.unregister, () => admin.deleteDeployment(deploymentId));
    await routes(ctx).remove({ name: record.name, buildId: record.buildId }, internal());
    await steps.after(Step.unrouteBuild);
    await step(ctx, Step.waitForNodes, () => waitForNodes(settings, record, "gone"));
    return recordPrune(record, await now(ctx));
  };

  const store = settings.cluster ? new StoreClient(settings.ingressUrl, adminToken, settings.clusterBuilds) : undefined;

  /** Puts a build's files where nodes serve them from: the bundles dir, and in a cluster the store first. */
  const keepFiles = async (dir: string, build: Build, activationId: string) => {
    await store?.upload(dir, build, activationId);
    await storeBundle(settings.bundlesDir, dir, build);
  };

  /**
   * Proves a build on this node's disk. In a cluster, a retry can run on another node than the
   * one whose "copy bundle" step copied the files there: that node fetches them from the store.
   */
  const proveHere = async (build: Build) => {
    await store?.fetch(settings.bundlesDir, build, settings.maxBundleBytes);
    return proveBuild(settings, build);
  };

  /** The manifest a build's proof recorded: kept in its record, or proved now for older records. */
  const manifestOf = async (ctx: Ctx, build: Build, record: BuildRecord | undefined) =>
    record?.manifest ?? (await step(ctx, Step.proveBuild, () => proveHere(build))).recorded;

  /**
   * Deletes a build's files here, and in a cluster from the store (and its bucket, but for files
   * other builds share), whence every node's agent deletes its own.
   */
  const deleteFiles = async (build: Pick<Build, "name" | "buildId">) => {
    await store?.remove(build, () => objectsInUse(admin, build));
    await removeBundle(settings.bundlesDir, build);
  };

  /**
   * Deletes the files of `current`'s bundle that no record keeps: an activation killed after
   * copying its build (no record is written then) left them. Activations of a bundle run one at
   * a time, so no other is copying files of it meanwhile.
   */
  const deleteOrphans = async (records: BuildRecord[], current: Build) => {
    const kept = new Set([current.buildId, ...records.filter((r) => r.filesKept).map((r) => r.buildId)]);
    for (const buildId of await storedBuildIds(settings.bundlesDir, current.name)) {
      if (!kept.has(buildId)) await deleteFiles({ name: current.name, buildId });
    }
  };

  const deleteOldFiles = async (ctx: Ctx, records: BuildRecord[]): Promise<BuildRecord[]> => {
    const doomed = new Set(filesToDelete(records, settings.keepBuilds).map((r) => r.buildId));
    for (const record of records.filter((r) => doomed.has(r.buildId))) {
      await ctx.run(`delete files of ${record.buildId}`, () => deleteFiles(record));
    }
    return records.map((r) => (doomed.has(r.buildId) ? { ...r, filesKept: false } : r));
  };

  /**
   * Records a failed activation that started at `startedMs`. A build that never served is undone
   * first (route, services, files); one that served before keeps them for rollback.
   */
  const recordFailed = async (
    ctx: Ctx,
    records: BuildRecord[],
    build: Build,
    known: boolean,
    error: string,
    startedMs: number,
    origin: Origin,
  ) => {
    if (!known) {
      await routes(ctx).remove(build, internal());
      await ctx.run(Step.waitForNodes, () => waitForNodes(settings, build, "gone"));
      await ctx.run("delete files of the failed build", () => deleteFiles(build));
    }
    const { at, durationMs } = await since(ctx, startedMs);
    ctx.set("builds", recordFailure(records, build, error, at, durationMs, origin));
  };

  const replaceRecord = (records: BuildRecord[], record: BuildRecord) =>
    records.map((r) => (r.buildId === record.buildId ? record : r));

  /**
   * Proves (unless it served before), routes and registers a copied build, and makes it active.
   * A build that served before (same content) must be forced to become the latest again; an
   * active one is only served again to repair drift.
   */
  const activateBuild = async (ctx: Ctx, build: Build, activation: Activation): Promise<ActivateResult> => {
    const records = await recordsOf(ctx);
    const known = records.find((r) => r.buildId === build.buildId && r.state !== "failed");
    if (known?.state === "active" && (await driftOfBuild(ctx, known)).problems.length === 0) {
      return resultOf(known);
    }
    let served: Awaited<ReturnType<typeof serve>>;
    let manifest: RecordedManifest;
    try {
      manifest = await manifestOf(ctx, build, known);
      served = await serve(ctx, build, manifest, {
        force: Boolean(known?.deploymentId),
        breaking: activation.breaking,
        takeOver: activation.takeOver,
        ...(activation.cell ? { cell: activation.cell } : {}),
      });
    } catch (error) {
      if (error instanceof restate.TerminalError || error instanceof UserError) {
        const { origin, startedMs } = activation;
        await recordFailed(ctx, records, build, Boolean(known), error.message, startedMs, origin);
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
    makeActive(ctx, records, record, { event: "activated", ...(await since(ctx, activation.startedMs)) });
    return resultOf(record);
  };

  /**
   * Stores the bundle's secrets as `secrets`, then rolls the change out like a deploy: the active
   * build's files, with the active build's settings and these secrets, become a new build (their
   * revisions are part of its id) that gets new calls, while calls in flight finish on the old one,
   * which drains as any replaced build. Nothing is refused halfway: the secrets are checked first.
   */
  const changeSecrets = async (ctx: Ctx, secrets: Secrets, what: "put" | "deleted"): Promise<SecretsChange> => {
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
    if (!active) return secretsView(ctx.key, secrets, records, secretsKey.kid);
    const startedMs = await ctx.date.now();
    const build = await step(ctx, Step.copyBundle, async () => {
      // In a cluster this node may not have the files yet: the store has them.
      await store?.fetch(settings.bundlesDir, active, settings.maxBundleBytes);
      const dir = buildDir(settings.bundlesDir, active);
      const { mainModule: main, compatibilityDate, compatibilityFlags, vars, egress } = active;
      const requested = { main, compatibilityDate, compatibilityFlags, vars, egress, secrets: sealedOf(secrets) };
      const rebuilt = await inspectBundle(dir, active.name, active.version, requested, settings.maxBundleBytes);
      await keepFiles(dir, rebuilt, ctx.request().id);
      return rebuilt;
    });
    const origin = {
      source: active.origin?.source ?? buildDir(settings.bundlesDir, active),
      message: `secrets ${what}`,
    };
    const activation = { origin, requiredSecrets: required, breaking: false, takeOver: [], startedMs };
    const activated = await activateBuild(ctx, build, activation);
    return { ...secretsView(ctx.key, secrets, await recordsOf(ctx), secretsKey.kid), activated };
  };

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
  const registerSplit = async (ctx: Ctx, stable: BuildRecord, canary: BuildRecord, percent: number) => {
    const segment = splitOf(stable.buildId, canary.buildId, percent);
    // A split is served by the router of one cell, which must hold both builds.
    const cell = cellOf(canary);
    if (cellOf(stable) !== cell) {
      throw new UserError(
        `a rollout needs both builds in one cell: ${stable.buildId} serves in cell ${cellOf(stable)}, ${canary.buildId} in cell ${cell}; deploy without --percent instead`,
        409,
      );
    }
    const uri = `${cellUrl(settings, cell)}/${ctx.key}/${segment}`;
    const deploymentId = await registerUri(ctx, uri, canary.services, { force: true, breaking: false });
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
    ctx.set("splits", [...drainSplits(ctx, others, at), split]);
    return split;
  };

  /** The splits with the one that was the latest now draining and watched. */
  const drainSplits = (ctx: Ctx, splits: SplitRecord[], at: string) =>
    splits.map((s) =>
      s.state === "active" ? watchDrain(ctx, s.segment, withState(s, "draining", at), settings.drainPollMs) : s,
    );

  /** Ends the rollout: its split drains. The caller has made another deployment the latest. */
  const endRollout = async (ctx: Ctx) => {
    ctx.set("splits", drainSplits(ctx, await splitsOf(ctx), await now(ctx)));
    ctx.clear("rollout");
  };

  /** Asks for the next judgement of an automatic rollout one interval from now. */
  const judgeLater = async (ctx: Ctx, policy: AutoPolicy, waiting?: string) => {
    const watch = ctx.rand.uuidv4();
    const delay = policy.intervalSeconds * 1000;
    ctx.genericSend({
      service: "deployer",
      method: "judgeRollout",
      key: ctx.key,
      parameter: restate.serde.json.serialize({ watch }),
      headers: adminHeaders(adminToken),
      delay,
    });
    const nextAt = new Date((await ctx.date.now()) + delay).toISOString();
    return { policy, watch, nextAt, ...(waiting ? { waiting } : {}) };
  };

  /**
   * Rolls a copied build out beside the active one: proves it, checks both have the same shape
   * (else 400, nothing changed), routes it and makes a split of the two at `percent` the latest.
   */
  const startRollout = async (
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
    if (stable.buildId === build.buildId)
      throw new UserError(`build ${build.buildId} is the active build already`, 409);
    const known = records.find((r) => r.buildId === build.buildId && r.state !== "failed");
    const manifest = await manifestOf(ctx, build, known);
    const difference = shapeDifference(await manifestOf(ctx, stable, stable), manifest);
    if (difference) {
      if (!known) await ctx.run("delete files of the refused build", () => deleteFiles(build));
      throw new UserError(
        `nothing changed: ${build.buildId} cannot share calls with the active build ${stable.buildId}, their shapes differ: ${difference}`,
      );
    }
    let canary: BuildRecord;
    let split: SplitRecord;
    try {
      const routed = await routeBuild(ctx, build, manifest, { takeOver: [] });
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
      split = await registerSplit(ctx, stable, canary, percent);
    } catch (error) {
      if (error instanceof restate.TerminalError || error instanceof UserError) {
        const { origin, startedMs } = activation;
        await recordFailed(ctx, records, build, Boolean(known), error.message, startedMs, origin);
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
    ctx.set("rollout", auto ? { ...rollout, auto: await judgeLater(ctx, auto) } : rollout);
    return rolloutResult(started, split, stable.buildId);
  };

  /** Makes a split at `percent` the latest: the canary takes that share of new calls. */
  const stepRollout = async (ctx: Ctx, percent: number): Promise<ActivateResult> => {
    const { rollout, records, stable, canary } = await rolloutOf(ctx);
    const split = await registerSplit(ctx, stable, canary, percent);
    const at = await now(ctx);
    const stepped = withRolloutEvent(canary, { at, event: "rolled out", percent });
    ctx.set("builds", replaceRecord(records, stepped));
    ctx.set("rollout", { ...rollout, percent, split: split.segment, stepAt: at });
    return rolloutResult(stepped, split, stable.buildId);
  };

  /** The canary becomes the active build: its own deployment is the latest; the stable one drains. */
  const promoteCanary = async (ctx: Ctx): Promise<ActivateResult> => {
    const { rollout, records, canary } = await rolloutOf(ctx);
    const deploymentId = await registerUri(ctx, canary.uri, canary.services, { force: true, breaking: false });
    const promoted = { ...canary, deploymentId };
    makeActive(ctx, records, promoted, { event: "activated", ...(await since(ctx, Date.parse(rollout.startedAt))) });
    await endRollout(ctx);
    return resultOf(promoted);
  };

  /**
   * The stable build takes every new call again; the canary drains. Invocations pinned to a split
   * finish on the build the split sent them to, the canary too (see README, Gradual rollouts).
   */
  const abortRollout = async (ctx: Ctx, reason?: string): Promise<ActivateResult> => {
    const { records, stable, canary } = await rolloutOf(ctx);
    // Its own uri again, as a rollback does: an explicit choice, so its schema is accepted as it was.
    const deploymentId = await registerUri(ctx, stable.uri, stable.services, { force: true, breaking: true });
    const at = await now(ctx);
    const aborted = withRolloutEvent(withState(canary, "draining", at), { at, event: "aborted" });
    const watched = watchDrain(
      ctx,
      canary.buildId,
      reason ? { ...aborted, error: reason } : aborted,
      settings.drainPollMs,
    );
    const restored = { ...stable, deploymentId };
    ctx.set("builds", replaceRecord(replaceRecord(records, watched), restored));
    await endRollout(ctx);
    return resultOf(restored);
  };

  /** A replaced split, pruned: Restate forgets its deployment. The builds it held can drain now. */
  const pruneSplit = async (ctx: Ctx, split: SplitRecord): Promise<SplitRecord> => {
    await step(ctx, Step.unregisterSplit, () => admin.deleteDeployment(split.deploymentId));
    const { watch: _ended, ...rest } = split;
    return withState(rest, "pruned", await now(ctx));
  };

  /** One look at a replaced split, as checkDrain takes at a replaced build. */
  const checkSplitDrain = async (ctx: Ctx, check: z.infer<typeof DrainCheck>) => {
    const splits = await splitsOf(ctx);
    const split = splits.find((s) => s.segment === check.buildId);
    if (!isCurrentDrainCheck(split, check.watch)) return;
    const observed = await ctx.run("look at Restate", () => admin.observeDeployment(split.deploymentId));
    const drain = drainStep(split, observed, await ctx.date.now(), settings.drainGraceMs);
    const followUp = afterDrainCheck(split, drain, await now(ctx), settings.drainPollMs);
    const next =
      followUp.kind === "prune"
        ? await pruneSplit(ctx, split)
        : watchDrain(ctx, split.segment, followUp.record, followUp.checkAgainMs);
    ctx.set(
      "splits",
      splits.map((s) => (s.segment === split.segment ? next : s)),
    );
  };

  return restate.object({
    name: DEPLOYER,
    handlers: {
      // Admins' calls, refused without the token before they wait on the bundle's key (admin-gate.ts).
      activate: adminGate<ActivateRequest, ActivateResult>(adminToken, "activate"),
      rollback: adminGate<RollbackRequest, ActivateResult>(adminToken, "rollback"),
      prune: adminGate<PruneRequest, PruneResult>(adminToken, "prune"),
      resumePaused: adminGate<undefined, { resumed: string[] }>(adminToken, "resumePaused"),
      rollout: adminGate<RolloutRequest, ActivateResult>(adminToken, "rollout"),
      promote: adminGate<undefined, ActivateResult>(adminToken, "promote"),
      abort: adminGate<undefined, ActivateResult>(adminToken, "abort"),
      putSecrets: adminGate<PutSecretsRequest, SecretsChange>(adminToken, "putSecrets"),
      deleteSecrets: adminGate<DeleteSecretsRequest, SecretsChange>(adminToken, "deleteSecrets"),

      /** The bundle's secrets' names and revisions, and which build runs with which; never a value. */
      secrets: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext<DeployerState>) =>
        secretsView(ctx.key, await secretsOf(ctx), await recordsOf(ctx), secretsKey.kid),
      ),

      /** The public key secrets are sealed to (the same for every bundle), for the CLI and scripts. */
      secretsKey: restate.handlers.object.shared(async (): Promise<SecretsKey> => secretsKey),

      activateLocked: restate.handlers.object.exclusive(
        { input: restate.serde.schema(ActivateRequest), ingressPrivate: true, hooks: admins },
        async (ctx: Ctx, input: ActivateRequest): Promise<ActivateResult> => {
          const name = bundleName(ctx.key);
          const startedMs = await ctx.date.now();
          const secrets = await secretsOf(ctx);
          const missing = (input.requireSecrets ?? []).filter((secret) => !(secret in secrets));
          if (missing.length) {
            throw new UserError(
              `${name} needs the secret(s) ${missing.join(", ")}, not set: \`gridiron secret put NAME --bundle ${name}\` each`,
            );
          }
          const problem = envProblem(input.vars, secrets);
          if (problem) throw new UserError(problem);
          if (input.auto && !outcomes) {
            throw new UserError(
              "automatic rollouts need per-build outcome counts, which this mesh does not collect (GRIDIRON_LOGS=false): roll out by hand with rollout, promote and abort",
              501,
            );
          }
          await noRollout(ctx, "activate a build of");
          const records = await recordsOf(ctx);
          const build = await step(ctx, Step.copyBundle, () =>
            withSourceDir(input.source, input.sha256, settings.downloadsDir, settings.fetchLimits, async (dir) => {
              const requested = { ...input, secrets: sealedOf(secrets) };
              const inspected = await inspectBundle(dir, name, input.version, requested, settings.maxBundleBytes);
              await keepFiles(dir, inspected, ctx.request().id);
              await deleteOrphans(records, inspected);
              return inspected;
            }),
          );
          const activation = {
            origin: originOf(input),
            requiredSecrets: input.requireSecrets ?? [],
            breaking: input.breaking ?? false,
            takeOver: input.takeOver ?? [],
            ...(input.cell ? { cell: input.cell } : {}),
            startedMs,
          };
          const percent = input.percent ?? input.auto?.steps[0];
          if (percent === undefined) return await activateBuild(ctx, build, activation);
          return await startRollout(ctx, build, activation, percent, input.auto);
        },
      ),

      /** Adds or replaces sealed secrets; the active build runs with them as a new build. */
      putSecretsLocked: restate.handlers.object.exclusive(
        { input: restate.serde.schema(PutSecretsRequest), ingressPrivate: true, hooks: admins },
        async (ctx: Ctx, input: PutSecretsRequest): Promise<SecretsChange> => {
          const name = bundleName(ctx.key);
          const problems = Object.entries(input.secrets).flatMap(
            ([secret, sealed]) => sealedProblem(sealed, name, secret, secretsKey.kid) ?? [],
          );
          if (problems.length) throw new UserError(`nothing changed: ${problems.join("; ")}`);
          const setAt = await now(ctx);
          const put = Object.entries(input.secrets).map(([secret, sealed]) => [
            secret,
            { sealed, revision: revisionOf(sealed), setAt },
          ]);
          return await changeSecrets(ctx, { ...(await secretsOf(ctx)), ...Object.fromEntries(put) }, "put");
        },
      ),

      /** Deletes secrets; the active build runs without them as a new build. */
      deleteSecretsLocked: restate.handlers.object.exclusive(
        { input: restate.serde.schema(DeleteSecretsRequest), ingressPrivate: true, hooks: admins },
        async (ctx: Ctx, input: DeleteSecretsRequest): Promise<SecretsChange> => {
          const secrets = await secretsOf(ctx);
          const unknown = input.names.filter((secret) => !(secret in secrets));
          if (unknown.length) throw new UserError(`${ctx.key} has no secret(s) ${unknown.join(", ")}`, 404);
          const kept = Object.fromEntries(Object.entries(secrets).filter(([secret]) => !input.names.includes(secret)));
          return await changeSecrets(ctx, kept, "deleted");
        },
      ),

      /** One look at a replaced build; reschedules itself until the build is pruned or active again. */
      // Only the deployer's own delayed messages call it.
      checkDrain: restate.handlers.object.exclusive(
        {
          input: restate.serde.schema(DrainCheck),
          ingressPrivate: true,
          hooks: [adminOnly(adminToken, "checkDrain is internal to the deployer: a call to it")],
        },
        async (ctx: Ctx, check: z.infer<typeof DrainCheck>) => {
          const records = await recordsOf(ctx);
          const record = records.find((r) => r.buildId === check.buildId);
          if (!record) return await checkSplitDrain(ctx, check);
          if (!isCurrentDrainCheck(record, check.watch)) return;
          // A build a split still sends calls to is busy, whatever its own deployment shows; an
          // aborted canary may have no deployment of its own, so nothing else runs on it.
          const deploymentId = record.deploymentId;
          const drain: DrainStep = heldBySplit(await splitsOf(ctx), record.buildId)
            ? { kind: "busy" }
            : drainStep(
                record,
                deploymentId
                  ? await ctx.run("look at Restate", () => admin.observeDeployment(deploymentId))
                  : { latestFor: [], pinned: 0, paused: 0, running: 0 },
                await ctx.date.now(),
                settings.drainGraceMs,
              );
          const followUp = afterDrainCheck(record, drain, await now(ctx), settings.drainPollMs);
          const next =
            followUp.kind === "prune"
              ? await prune(ctx, record)
              : watchDrain(ctx, record.buildId, followUp.record, followUp.checkAgainMs);
          ctx.set("builds", await deleteOldFiles(ctx, replaceRecord(records, next)));
        },
      ),

      /**
       * Prunes every drained build now, or with `buildId` one non-active build; that one must be
       * drained unless `force` is set.
       */
      pruneLocked: restate.handlers.object.exclusive(
        // Optional bodies cannot use a schema serde: it would declare the body as always empty.
        { ingressPrivate: true, hooks: admins },
        async (ctx: Ctx, raw?: unknown): Promise<PruneResult> => {
          const input = parseInput(PruneRequest, raw);
          let records = await recordsOf(ctx);
          const chosen = pruneTargets(records, input?.buildId);
          if ("error" in chosen) throw new UserError(chosen.error, chosen.status);
          const pruned: PruneResult["pruned"] = [];
          for (const record of chosen) {
            const deploymentId = record.deploymentId;
            const observed = deploymentId
              ? await ctx.run(`look at ${record.buildId}`, () => admin.observeDeployment(deploymentId))
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
            records = replaceRecord(records, await prune(ctx, record));
            pruned.push({ buildId: record.buildId, affectedInvocations: affected });
          }
          ctx.set("builds", await deleteOldFiles(ctx, records));
          return { pruned };
        },
      ),

      /** Makes the previous (or the named) build receive all new calls again. */
      rollbackLocked: restate.handlers.object.exclusive(
        { ingressPrivate: true, hooks: admins },
        async (ctx: Ctx, raw?: unknown): Promise<ActivateResult> => {
          const input = parseInput(RollbackRequest, raw);
          await noRollout(ctx, "roll back");
          const records = await recordsOf(ctx);
          const target = rollbackTarget(records, input?.buildId);
          if ("error" in target) throw new UserError(`cannot roll back ${ctx.key}: ${target.error}`, 409);
          const { watch: _ended, tookOver: _before, ...build } = target;
          // Going back is an explicit choice, so the old build's schema is accepted as it was; its
          // services must still be its bundle's.
          const options = { force: true, breaking: true, takeOver: [] };
          const manifest = await manifestOf(ctx, build, target);
          const record: BuildRecord = { ...build, manifest, ...(await serve(ctx, build, manifest, options)) };
          makeActive(ctx, records, record, { at: await now(ctx), event: "rolled back to" });
          return resultOf(record);
        },
      ),

      /** Moves invocations paused on replaced builds to the active build. */
      resumePausedLocked: restate.handlers.object.exclusive(
        { ingressPrivate: true, hooks: admins },
        async (ctx: Ctx) => {
          const records = await recordsOf(ctx);
          const rollout = await ctx.get("rollout");
          const replaced = [
            ...records.filter((r) => r.state !== "active" && r.deploymentId).map((r) => r.deploymentId as string),
            // Splits no longer the latest: invocations paused on an aborted canary go to the latest.
            ...liveSplits(await splitsOf(ctx))
              .filter((s) => s.segment !== rollout?.split)
              .map((s) => s.deploymentId),
          ];
          const paused = await ctx.run("find paused invocations", () => admin.pausedOn(replaced));
          for (const id of paused) await ctx.run(`resume ${id}`, () => admin.resumeOnLatest(id));
          return { resumed: paused };
        },
      ),

      /** A new percentage for the rollout in progress: a new split becomes the latest, the old one drains. */
      rolloutLocked: restate.handlers.object.exclusive(
        { input: restate.serde.schema(RolloutRequest), ingressPrivate: true, hooks: admins },
        async (ctx: Ctx, input: RolloutRequest) => await stepRollout(ctx, input.percent),
      ),

      /** The canary becomes the active build. */
      promoteLocked: restate.handlers.object.exclusive({ ingressPrivate: true, hooks: admins }, async (ctx: Ctx) =>
        promoteCanary(ctx),
      ),

      /** The stable build takes every new call again; the canary drains. */
      abortLocked: restate.handlers.object.exclusive({ ingressPrivate: true, hooks: admins }, async (ctx: Ctx) =>
        abortRollout(ctx),
      ),

      /**
       * One judgement of an automatic rollout, at the end of a step: the canary's and the stable
       * build's outcomes over the step's window decide (rollout.ts judgeStep). Only the deployer's
       * own delayed messages call it; a stale one (the rollout moved on by hand) ends itself.
       */
      judgeRollout: restate.handlers.object.exclusive(
        {
          input: restate.serde.schema(RolloutJudgement),
          ingressPrivate: true,
          hooks: [adminOnly(adminToken, "judgeRollout is internal to the deployer: a call to it")],
        },
        async (ctx: Ctx, { watch }: z.infer<typeof RolloutJudgement>) => {
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
          ctx.console.info(
            `rollout of ${ctx.key} ${rollout.canary} at ${rollout.percent}%: ${JSON.stringify(decision)}`,
          );
          if (decision.kind === "abort") await abortRollout(ctx, `aborted automatically: ${decision.reason}`);
          else if (decision.kind === "promote") await promoteCanary(ctx);
          else {
            if (decision.kind === "step") await stepRollout(ctx, decision.percent);
            const waiting = decision.kind === "wait" ? decision.reason : undefined;
            const current = (await ctx.get("rollout")) ?? rollout;
            ctx.set("rollout", { ...current, auto: await judgeLater(ctx, policy, waiting) });
          }
        },
      ),

      status: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext<DeployerState>) => {
        const records = await recordsOf(ctx);
        const splits = liveSplits(await splitsOf(ctx));
        const rollout = (await ctx.get("rollout")) ?? undefined;
        const counts = await ctx.run("count invocations", async () => {
          const entries: [string, InvocationCounts][] = [];
          for (const r of [...liveBuilds(records), ...splits.map((s) => ({ ...s, buildId: s.segment }))]) {
            const { pinned, paused } = await admin.observeDeployment(r.deploymentId);
            entries.push([r.buildId, { pinned, paused }]);
          }
          return Object.fromEntries(entries);
        });
        const pinned = Object.fromEntries(Object.entries(counts).map(([id, c]) => [id, c.pinned]));
        const active = records.find((r) => r.state === "active");
        const latest = splits.find((s) => s.segment === rollout?.split)?.deploymentId;
        const drift = active ? await driftOfBuild(ctx, active, latest ?? active.deploymentId) : undefined;
        const serving = settings.cluster
          ? servingNodes(await ctx.run("ask every node", () => askNodes(settings)), ctx.key)
          : undefined;
        const refused = Object.fromEntries(
          (await routes(ctx).view(internal())).builds.flatMap((b) =>
            b.name === ctx.key && b.refused ? [[b.buildId, b.refused]] : [],
          ),
        );
        return statusView(ctx.key, records, counts, drift, serving, rolloutView(rollout, splits, pinned), refused);
      }),
    },
    options: { asTerminalError },
  });
}

export type DeployerObject = ReturnType<typeof deployerObject>;

function bundleName(key: string): string {
  const parsed = BundleName.safeParse(key);
  if (!parsed.success) throw new UserError(`bad bundle name "${key}": ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

function parseInput<T>(schema: z.ZodType<T>, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new UserError(`bad request: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function originOf(input: ActivateRequest): Origin {
  return {
    source: input.project ?? input.source,
    ...(input.message ? { message: input.message } : {}),
  };
}

/** What starting or stepping a rollout answers: the canary, with the split's deployment and uri. */
function rolloutResult(canary: BuildRecord, split: SplitRecord, stable: string): ActivateResult {
  return {
    ...resultOf(canary),
    deploymentId: split.deploymentId,
    uri: split.uri,
    rollout: { stable, percent: split.percent },
  };
}

function resultOf(record: BuildRecord): ActivateResult {
  const { name, version, buildId, deploymentId, uri, services, protocolMode } = record;
  return {
    name,
    version,
    buildId,
    deploymentId: deploymentId ?? "",
    uri,
    cell: record.cell ?? 0,
    services,
    protocolMode,
  };
}
