import * as restate from "@restatedev/restate-sdk";
import { z } from "zod";
import { askNodes, servingNodes } from "../cluster/nodes.ts";
import { StoreClient } from "../cluster/store.ts";
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
} from "../domain/lifecycle.ts";
import { type RecordedManifest, registrationDifference, servicesOf } from "../domain/manifest.ts";
import { CellRequest } from "../domain/placement.ts";
import type { ProtocolMode } from "../domain/protocol-mode.ts";
import { StoredBuilds, StoredSecrets } from "../domain/records.ts";
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
import { cellUrl } from "../node/workerd/cells.ts";
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
const DrainCheck = z.strictObject({ buildId: BuildIdField, watch: z.string() });

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
}

export interface PruneResult {
  pruned: { buildId: string; affectedInvocations: number }[];
}

/** What a secret change returns: the secrets now, and the active build it made, if there was one. */
export interface SecretsChange extends SecretsView {
  activated?: ActivateResult;
}

type DeployerState = { builds: BuildRecord[]; secrets: Secrets };
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
export function deployerObject(settings: Settings, adminToken: string, secretsKey: SecretsKey) {
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
    const registered = await step(ctx, Step.register, () => register(admin, uri, options));
    const difference = registrationDifference(
      services,
      registered.services.map((s) => s.name),
    );
    if (difference) {
      await step(ctx, Step.undoRegistration, () => admin.deleteDeployment(registered.id));
      throw new BundleError(`the build showed Restate other services than its proof: ${difference}; it was undone`);
    }
    return {
      uri,
      cell,
      deploymentId: registered.id,
      services: registered.services.map((s) => s.name),
      protocolMode,
      ...(takenOver.length ? { tookOver: takenOver } : {}),
    };
  };

  /** How a build that should serve differs from serving: its route, registration and services. */
  const driftOfBuild = async (ctx: restate.ObjectSharedContext<DeployerState>, record: BuildRecord): Promise<Drift> => {
    const view = await routes(ctx).view(internal());
    const deploymentId = record.deploymentId;
    const seen = await ctx.run(`look at ${record.buildId}`, async () => {
      const registered = deploymentId ? await admin.hasDeployment(deploymentId) : false;
      const latestFor = registered && deploymentId ? (await admin.observeDeployment(deploymentId)).latestFor : [];
      return { registered, latestFor };
    });
    const routed = view.builds.some((b) => b.name === record.name && b.buildId === record.buildId);
    return driftOf(record, { ...seen, routed, owners: view.owners });
  };

  /** Schedules the next drain check of a replaced build: a delayed message, never a sleep. */
  const watchDrain = (ctx: Ctx, record: BuildRecord, delayMs: number): BuildRecord => {
    const watch = ctx.rand.uuidv4();
    ctx.genericSend({
      service: DEPLOYER,
      method: "checkDrain",
      key: ctx.key,
      parameter: restate.serde.json.serialize({ buildId: record.buildId, watch }),
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
      next.map((r) => (r.buildId === replaced ? watchDrain(ctx, r, settings.drainPollMs) : r)),
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

  /** Deletes a build's files here, and in a cluster from the store, whence every node's agent deletes its own. */
  const deleteFiles = async (build: Pick<Build, "name" | "buildId">) => {
    await store?.remove(build);
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

  return restate.object({
    name: DEPLOYER,
    handlers: {
      // Admins' calls, refused without the token before they wait on the bundle's key (admin-gate.ts).
      activate: adminGate<ActivateRequest, ActivateResult>(adminToken, "activate"),
      rollback: adminGate<RollbackRequest, ActivateResult>(adminToken, "rollback"),
      prune: adminGate<PruneRequest, PruneResult>(adminToken, "prune"),
      resumePaused: adminGate<undefined, { resumed: string[] }>(adminToken, "resumePaused"),
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
          return await activateBuild(ctx, build, {
            origin: originOf(input),
            requiredSecrets: input.requireSecrets ?? [],
            breaking: input.breaking ?? false,
            takeOver: input.takeOver ?? [],
            ...(input.cell ? { cell: input.cell } : {}),
            startedMs,
          });
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
          if (!isCurrentDrainCheck(record, check.watch)) return;
          const observed = await ctx.run("look at Restate", () => admin.observeDeployment(record.deploymentId));
          const drain = drainStep(record, observed, await ctx.date.now(), settings.drainGraceMs);
          const followUp = afterDrainCheck(record, drain, await now(ctx), settings.drainPollMs);
          const next =
            followUp.kind === "prune"
              ? await prune(ctx, record)
              : watchDrain(ctx, followUp.record, followUp.checkAgainMs);
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
          const replaced = records
            .filter((r) => r.state !== "active" && r.deploymentId)
            .map((r) => r.deploymentId as string);
          const paused = await ctx.run("find paused invocations", () => admin.pausedOn(replaced));
          for (const id of paused) await ctx.run(`resume ${id}`, () => admin.resumeOnLatest(id));
          return { resumed: paused };
        },
      ),

      status: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext<DeployerState>) => {
        const records = await recordsOf(ctx);
        const counts = await ctx.run("count invocations", async () => {
          const entries: [string, InvocationCounts][] = [];
          for (const r of liveBuilds(records)) {
            const { pinned, paused } = await admin.observeDeployment(r.deploymentId);
            entries.push([r.buildId, { pinned, paused }]);
          }
          return Object.fromEntries(entries);
        });
        const active = records.find((r) => r.state === "active");
        const drift = active ? await driftOfBuild(ctx, active) : undefined;
        const serving = settings.cluster
          ? servingNodes(await ctx.run("ask every node", () => askNodes(settings)), ctx.key)
          : undefined;
        return statusView(ctx.key, records, counts, drift, serving);
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
