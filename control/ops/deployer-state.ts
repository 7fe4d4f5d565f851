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

/** A row of Restate's `state` table: one key of one object, its value as JSON text. */
const StateRow = z.object({ service_key: z.string(), value_utf8: z.string() });

export interface DeployerState {
  bundles: BundleRecords[];
  /** Invocations pinned to each deployment that has any. */
  pinned: Map<string, InvocationCounts>;
}

/**
 * Every bundle's `builds`, straight from Restate's state table (the deployer object's durable
 * state, as its handlers last committed it), and the invocations pinned to each deployment.
 */
export async function readDeployerState(
  admin: Pick<AdminClient, "query" | "pinnedByDeployment">,
): Promise<DeployerState> {
  const rows = await admin.query(
    `SELECT service_key, value_utf8 FROM state WHERE service_name = '${DEPLOYER}' AND key = 'builds'`,
  );
  const bundles = rows.map((row) => {
    const { service_key, value_utf8 } = StateRow.parse(row);
    return { bundle: service_key, records: z.array(StoredBuildSchema).parse(JSON.parse(value_utf8)) };
  });
  return { bundles, pinned: await admin.pinnedByDeployment() };
}
