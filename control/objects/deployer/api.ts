import { z } from "zod";
import { BundleName, CompatibilityDate, CompatibilityFlags, Egress, Vars, Version } from "../../domain/bundle.ts";
import { UserError } from "../../domain/errors.ts";
import type { BuildRecord } from "../../domain/lifecycle.ts";
import { CellRequest } from "../../domain/placement.ts";
import type { ProtocolMode } from "../../domain/protocol-mode.ts";
import { AutoPolicy, Percent } from "../../domain/rollout.ts";
import { SecretName, type SecretsView } from "../../domain/secrets.ts";

/* The deployer's requests, checked once by these schemas, and its answers. */

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
  })
  .refine((request) => !(request.auto && request.percent === 0), {
    message: "an automatic rollout starts at its first step: at 0% the canary has no calls to judge",
    path: ["percent"],
  });
export type ActivateRequest = z.infer<typeof ActivateRequest>;

const BuildIdField = z.string().min(1).max(100);
export const PruneRequest = z
  .strictObject({ buildId: BuildIdField.optional(), force: z.boolean().optional() })
  .optional();
export type PruneRequest = z.infer<typeof PruneRequest>;
export const RollbackRequest = z.strictObject({ buildId: BuildIdField.optional() }).optional();
export type RollbackRequest = z.infer<typeof RollbackRequest>;
/** A drain check of a build, or of a split (its `buildId` is then the split's segment). */
export const DrainCheck = z.strictObject({ buildId: z.string().min(1).max(300), watch: z.string() });
export const RolloutRequest = z.strictObject({ percent: Percent });
export type RolloutRequest = z.infer<typeof RolloutRequest>;
export const RolloutJudgement = z.strictObject({ watch: z.string() });

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

export function bundleName(key: string): string {
  const parsed = BundleName.safeParse(key);
  if (!parsed.success) throw new UserError(`bad bundle name "${key}": ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export function parseInput<T>(schema: z.ZodType<T>, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new UserError(`bad request: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export function resultOf(record: BuildRecord): ActivateResult {
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
