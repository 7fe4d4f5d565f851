import * as clients from "@restatedev/restate-sdk-clients";
import { deployerClient } from "../contracts.ts";
import { type Step, stepsOf } from "../domain/journal-steps.ts";
import type { StatusView } from "../domain/lifecycle.ts";
import type { BuildOutcomes } from "../logs/store.ts";
import type { AdminClient, DeployerCall } from "../restate/admin-client.ts";
import type { Settings } from "../settings.ts";

/** Invocations listed per build; the rest are a click away in Restate's UI. */
const PINNED_SHOWN = 5;

/** What the dashboard shows, read fresh for every page: each bundle's status, and calls in flight. */
export interface Dashboard {
  bundles: StatusView[];
  /** Pinned invocation ids per deployment, at most PINNED_SHOWN each. */
  pinned: Record<string, string[]>;
  inFlight: (DeployerCall & { steps: Step[] })[];
  /** When this was read; drain deadlines are shown relative to it. */
  now: number;
  graceMs: number;
  pollMs: number;
  /** Restate's web UI behind the admin front, for links. */
  restateUi: string;
  /** This node's calls per build in the last minute, by outcome (logs/store.ts). */
  outcomes: BuildOutcomes[];
}

/** Reads through the deployer's own `status` (as the API does) and Restate's introspection. */
export async function loadDashboard(
  settings: Pick<Settings, "ingressUrl" | "adminUrl" | "drainGraceMs" | "drainPollMs">,
  admin: AdminClient,
  outcomes: () => BuildOutcomes[] = () => [],
): Promise<Dashboard> {
  const ingress = clients.connect({ url: settings.ingressUrl });
  const names = await admin.bundles();
  const bundles = await Promise.all(names.map((name) => deployerClient(ingress, name).status()));
  const pinned: Record<string, string[]> = {};
  for (const build of bundles.flatMap((b) => b.builds)) {
    if (build.deploymentId && build.pinned > 0) {
      pinned[build.deploymentId] = await admin.pinnedInvocations(build.deploymentId, PINNED_SHOWN);
    }
  }
  const calls = await admin.deployerCallsInFlight();
  const inFlight = await Promise.all(
    calls.map(async (call) => ({ ...call, steps: stepsOf(await admin.journal(call.id)) })),
  );
  return {
    bundles,
    pinned,
    inFlight,
    now: Date.now(),
    graceMs: settings.drainGraceMs,
    pollMs: settings.drainPollMs,
    restateUi: `${settings.adminUrl}/ui`,
    outcomes: outcomes(),
  };
}
