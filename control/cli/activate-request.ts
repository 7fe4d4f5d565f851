import type { Egress } from "../domain/bundle.ts";
import type { CellRequest } from "../domain/placement.ts";
import { type AutoPolicy, DEFAULT_AUTO } from "../domain/rollout.ts";
import type { ActivateRequest } from "../objects/deployer/api.ts";
import { describe } from "./failure.ts";
import type { Source } from "./project.ts";

/** The version a deploy gets when neither --version nor the project's package.json names one. */
export const DEFAULT_VERSION = "0.0.0";

/** What `gridiron deploy` and `gridiron dev` are told of the build beyond its source. */
export interface DeployOptions {
  name?: string;
  version?: string;
  message?: string;
  breaking?: boolean;
  takeOver?: string[];
  env?: string;
  require?: string[];
  /** Where to upload the build before activating it from there: s3://bucket/prefix. */
  upload?: string;
  /** The SHA-256 of an archive given by URL. */
  sha256?: string;
  cell?: CellRequest;
  egress?: string[];
  /** Roll the build out to this share of new calls beside the active build (see Gradual rollouts). */
  percent?: number;
  /** `--auto [steps]`: step the rollout up by itself. */
  auto?: boolean | string;
  autoInterval?: number;
}

/** The deployer's activate request for a prepared source. */
export function activateRequest(source: Source, options: DeployOptions): ActivateRequest {
  const required = [...new Set([...source.requiredSecrets, ...(options.require ?? [])])];
  return {
    source: `file://${source.outdir}`,
    version: options.version ?? source.version ?? DEFAULT_VERSION,
    ...source.settings,
    ...(source.project ? { project: source.project } : {}),
    ...(options.message ? { message: options.message } : {}),
    ...(options.breaking ? { breaking: true } : {}),
    ...(options.takeOver ? { takeOver: options.takeOver } : {}),
    ...(options.cell ? { cell: options.cell } : {}),
    ...(options.egress ? { egress: egressOf(options.egress) } : {}),
    ...(required.length ? { requireSecrets: required } : {}),
    ...(options.percent === undefined ? {} : { percent: options.percent }),
    ...(options.auto ? { auto: autoPolicy(options) } : {}),
  };
}

/** `--auto [steps]` and `--auto-interval`, over the defaults; the deployer validates them. */
function autoPolicy(options: DeployOptions): AutoPolicy {
  const steps = typeof options.auto === "string" ? options.auto.split(",").map(Number) : DEFAULT_AUTO.steps;
  return { ...DEFAULT_AUTO, steps, intervalSeconds: options.autoInterval ?? DEFAULT_AUTO.intervalSeconds };
}

/** `--egress none`, or the hosts the build may fetch from. */
function egressOf(hosts: string[]): Egress {
  return hosts.length === 1 && hosts[0] === "none" ? "none" : { allow: hosts };
}

/** A failed activation's message with positions in the built modules told in the project's sources. */
export async function inSourceTerms(error: unknown, source: Source): Promise<Error> {
  return new Error(await source.positions(describe(error)), { cause: error });
}
