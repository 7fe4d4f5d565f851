import { DEPLOYER } from "../contracts.ts";
import type { NodeAgent } from "../node/node-agent.ts";
import { alwaysRunningCells, cellUrl } from "../node/workerd/cells.ts";
import { AdminClient } from "../restate/admin-client.ts";
import type { Settings } from "../settings.ts";
import { answers, withTimeout } from "../wait.ts";

/**
 * Kubernetes-style health: `/livez` says the process serving it runs, `/readyz` that the mesh
 * can serve calls and deploys. Each check is bounded; a failure is told in a fixed sentence, never
 * in an error's own text, so the port shows nothing an operator could not see from outside.
 */

export interface Check {
  name: string;
  /** What a failure means, as `?verbose` shows it. */
  failure: string;
  passes: () => Promise<boolean>;
}

export interface Outcome {
  name: string;
  /** Undefined when the check passed. */
  failure: string | undefined;
}

/** Each check bounds its own wait; this bounds the whole check, whatever it waits on. */
const CHECK_TIMEOUT_MS = 1_000;

export const livenessChecks: Check[] = [{ name: "ping", failure: "", passes: async () => true }];

/**
 * The parts a call or a deploy needs: Restate's admin API and ingress, workerd, the deployer, and
 * on a cluster node, the builds the cluster routes.
 */
export function readinessChecks(
  settings: Pick<Settings, "adminSocket" | "ingressUrl" | "cells" | "ports">,
  agent?: NodeAgent,
): Check[] {
  const admin = new AdminClient({ socketPath: settings.adminSocket }, { timeoutMs: CHECK_TIMEOUT_MS });
  const probe = { timeoutMs: CHECK_TIMEOUT_MS };
  return [
    {
      name: "restate-admin",
      failure: "restate-server's admin API does not answer /health",
      passes: () => admin.healthy(),
    },
    {
      name: "restate-ingress",
      failure: "restate-server's ingress does not answer /restate/health",
      passes: () => answers(`${settings.ingressUrl}/restate/health`, probe),
    },
    {
      name: "workerd",
      // Every cell bundles are placed in: a call or a deploy may need any of them. Not the
      // quarantine cell, which may not run yet (cells.ts), and serves only quarantined bundles.
      failure: "workerd does not answer",
      passes: async () =>
        (
          await Promise.all(alwaysRunningCells(settings).map((cell) => answers(`${cellUrl(settings, cell)}/`, probe)))
        ).every(Boolean),
    },
    {
      name: "deployer-registered",
      failure: "Restate has no deployment of the deployer service",
      passes: () => admin.hasService(DEPLOYER),
    },
    ...(agent
      ? [
          {
            name: "builds-served",
            failure: "this node has not yet served the builds the cluster routes",
            passes: async () => agent.report().caughtUp,
          },
        ]
      : []),
  ];
}

/** Runs every check at once, each for at most a second; a check that throws failed. */
export function runChecks(checks: Check[]): Promise<Outcome[]> {
  return Promise.all(
    checks.map(async ({ name, failure, passes }) => {
      const passed = await withTimeout(passes(), CHECK_TIMEOUT_MS, "timed out").catch(() => false);
      return { name, failure: passed ? undefined : failure };
    }),
  );
}

/**
 * The answer to `/livez` or `/readyz`, as Kubernetes' own endpoints give it: 200 and `ok`, or
 * 503; with `verbose`, or on failure, a `[+]name ok` / `[-]name failed: why` line per check.
 */
export function healthReport(
  endpoint: "livez" | "readyz",
  outcomes: Outcome[],
  verbose: boolean,
): { status: 200 | 503; body: string } {
  const ok = outcomes.every((o) => o.failure === undefined);
  if (ok && !verbose) return { status: 200, body: "ok\n" };
  const lines = outcomes.map((o) =>
    o.failure === undefined ? `[+]${o.name} ok` : `[-]${o.name} failed: ${o.failure}`,
  );
  lines.push(`${endpoint} check ${ok ? "passed" : "failed"}`);
  return { status: ok ? 200 : 503, body: `${lines.join("\n")}\n` };
}
