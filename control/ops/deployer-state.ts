import { z } from "zod";
import { BUILD_EVENTS, BUILD_STATES, type InvocationCounts } from "../domain/lifecycle.ts";
import type { AdminClient } from "../restate/admin-client.ts";
import type { BundleRecords, StoredBuild } from "./deploys.ts";

/** The deployer's records as Restate stores them, validated as far as the metrics read them. */
const StoredBuildSchema = z.object({
  buildId: z.string(),
  state: z.enum(BUILD_STATES),
  deploymentId: z.string().nullable(),
  history: z
    .array(
      z.object({
        at: z.string(),
        event: z.enum(BUILD_EVENTS),
        durationMs: z.number().exactOptional(),
      }),
    )
    .exactOptional(),
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
    "SELECT service_key, value_utf8 FROM state WHERE service_name = 'deployer' AND key = 'builds'",
  );
  const bundles = rows.map((row) => {
    const { service_key, value_utf8 } = StateRow.parse(row);
    return { bundle: service_key, records: z.array(StoredBuildSchema).parse(JSON.parse(value_utf8)) };
  });
  return { bundles, pinned: await admin.pinnedByDeployment() };
}
