import { z } from "zod";
import type { Build, BundleModule, SealedSecret } from "./bundle.ts";
import { BUILD_EVENTS, BUILD_STATES, type BuildRecord, type HistoryEntry, type Origin } from "./lifecycle.ts";
import type { RecordedManifest } from "./manifest.ts";
import type { TakenOver } from "./ownership.ts";
import { ProtocolMode } from "./protocol-mode.ts";
import type { SecretRecord, Secrets } from "./secrets.ts";

/**
 * The deployer's stored state, as every reader reads it: the deployer's own handlers, and the ops
 * port's metrics, which read it from Restate's state table by SQL. Version 1, the only one so far:
 * the records as the deployer has written them, the fields added over time optional so that every
 * record written before them still parses. A record of another shape needs a version 2 here, with
 * a `v` field to tell them apart and a migration from this one; the checks at the end keep these
 * schemas in step with the types the deployer writes.
 */

/** Stored values were checked when they came in; read back, they are taken as they are. */
const SealedSecretV1 = z.object({ revision: z.string(), sealed: z.string() });
const ModuleV1 = z.object({
  name: z.string(),
  type: z.enum(["esModule", "commonJsModule", "wasm", "text", "data", "json"]),
});

const BuildV1 = z.object({
  name: z.string(),
  version: z.string(),
  buildId: z.string(),
  mainModule: z.string(),
  modules: z.array(ModuleV1),
  compatibilityDate: z.string(),
  compatibilityFlags: z.array(z.string()),
  vars: z.record(z.string(), z.json()).exactOptional(),
  secrets: z.record(z.string(), SealedSecretV1).exactOptional(),
  egress: z.union([z.literal("none"), z.object({ allow: z.array(z.string()) })]).exactOptional(),
});

const HistoryEntryV1 = z.object({
  at: z.string(),
  event: z.enum(BUILD_EVENTS),
  durationMs: z.number().exactOptional(),
  percent: z.number().exactOptional(),
});
const OriginV1 = z.object({ source: z.string(), message: z.string().exactOptional() });
const TakenOverV1 = z.object({ service: z.string(), from: z.string() });
const RecordedManifestV1 = z.object({ contentType: z.string(), body: z.string() });

/** One build's record, the items of the deployer's `builds`. */
export const BuildRecordV1 = BuildV1.extend({
  deploymentId: z.string().nullable(),
  uri: z.string(),
  services: z.array(z.string()),
  protocolMode: ProtocolMode.exactOptional(),
  manifest: RecordedManifestV1.exactOptional(),
  state: z.enum(BUILD_STATES),
  times: z.partialRecord(z.enum(BUILD_STATES), z.string()),
  filesKept: z.boolean(),
  watch: z.string().exactOptional(),
  error: z.string().exactOptional(),
  tookOver: z.array(TakenOverV1).exactOptional(),
  requiredSecrets: z.array(z.string()).exactOptional(),
  origin: OriginV1.exactOptional(),
  lastDrainCheck: z.string().exactOptional(),
  history: z.array(HistoryEntryV1).exactOptional(),
  cell: z.number().exactOptional(),
});

/** The deployer's `builds`: every build of its bundle. */
export const StoredBuilds = z.array(BuildRecordV1);

/** The deployer's `secrets`: the bundle's secrets by name. */
export const StoredSecrets = z.record(z.string(), SealedSecretV1.extend({ setAt: z.string() }));

/** True when A and B have the same keys, so a schema cannot silently drop a field its type has. */
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;
/** Each schema parses to its type, field for field. */
type InStep<S extends z.ZodType, T> = z.output<S> extends T ? SameKeys<z.output<S>, T> : false;
const schemasInStep: [
  InStep<typeof BuildRecordV1, BuildRecord>,
  InStep<typeof BuildV1, Build>,
  InStep<typeof ModuleV1, BundleModule>,
  InStep<typeof SealedSecretV1, SealedSecret>,
  InStep<typeof HistoryEntryV1, HistoryEntry>,
  InStep<typeof OriginV1, Origin>,
  InStep<typeof TakenOverV1, TakenOver>,
  InStep<typeof RecordedManifestV1, RecordedManifest>,
  InStep<(typeof StoredSecrets)["valueType"], SecretRecord>,
  z.output<typeof StoredSecrets> extends Secrets ? true : false,
] = [true, true, true, true, true, true, true, true, true, true];
void schemasInStep;
