import { z } from "zod";
import { DEPLOYER } from "../contracts.ts";
import type { InvocationCounts } from "../domain/lifecycle.ts";
import { BuildRecordV1 } from "../domain/records.ts";
import type { AdminClient } from "../restate/admin-client.ts";
import type { BundleRecords, StoredBuild } from "./deploys.ts";

/** The deployer's records as Restate stores them (records.ts), as far as the metrics read them. */
const StoredBuildSchema = BuildRecordV1.pick({
  buildId: true,
  state: true,
  deploymentId: true,
  history: true,
}) satisfies z.ZodType<StoredBuild>;

/** A bundle's rollout in progress (rollout.ts), as far as the metrics read it. */
const StoredRollout = z.object({
  stable: z.string(),
  canary: z.string(),
  percent: z.number(),
  auto: z.object({ nextAt: z.string() }).exactOptional(),
});
export type RolloutFact = z.infer<typeof StoredRollout> & { bundle: string };

/** A row of Restate's `state` table: one key of one object, its value as JSON text. */
const StateRow = z.object({ service_key: z.string(), key: z.enum(["builds", "rollout"]), value_utf8: z.string() });

export interface DeployerState {
  bundles: BundleRecords[];
  /** Every bundle's rollout in progress. */
  rollouts: RolloutFact[];
  /** Invocations pinned to each deployment that has any. */
  pinned: Map<string, InvocationCounts>;
}

/**
 * Every bundle's `builds` and `rollout`, straight from Restate's state table (the deployer
 * object's durable state, as its handlers last committed it), and the invocations pinned to each
 * deployment.
 */
export async function readDeployerState(
  admin: Pick<AdminClient, "query" | "pinnedByDeployment">,
): Promise<DeployerState> {
  const rows = await admin.query(
    `SELECT service_key, key, value_utf8 FROM state WHERE service_name = '${DEPLOYER}' AND key IN ('builds', 'rollout')`,
  );
  const state: DeployerState = { bundles: [], rollouts: [], pinned: await admin.pinnedByDeployment() };
  for (const row of rows) {
    const { service_key: bundle, key, value_utf8 } = StateRow.parse(row);
    const value = JSON.parse(value_utf8);
    if (key === "builds") state.bundles.push({ bundle, records: z.array(StoredBuildSchema).parse(value) });
    else state.rollouts.push({ bundle, ...StoredRollout.parse(value) });
  }
  return state;
}
