import { execa } from "execa";
import { request } from "undici";
import { z } from "zod";
import { waitFor } from "./processes.ts";
import { identityHeaders } from "./request-identity.ts";
import type { Settings } from "./settings.ts";
import { requestWorkerdReload } from "./supervisor-ipc.ts";

const READY_TIMEOUT_MS = 60_000;

const RoutesAnswer = z.object({ builds: z.number() });

/**
 * Makes the running workerd serve what writeLiveConfig just wrote. With the loader, the router
 * re-reads routes.json and nothing restarts. In restart mode workerd is restarted: through runit's
 * `sv` when the mesh runs under runsvdir (GRIDIRON_WORKERD_SV), else by the Node supervisor.
 */
export async function reloadWorkerd(settings: Settings, liveBuilds: number): Promise<void> {
  if (settings.workerdReload === "loader") return refreshRoutes(settings, liveBuilds);
  if (!settings.workerdService) return requestWorkerdReload();
  await execa("sv", ["restart", settings.workerdService], { timeout: READY_TIMEOUT_MS });
  await workerdReady(settings);
}

/** Resolves once the router on workerd's socket answers. */
export function workerdReady(settings: Settings): Promise<void> {
  return waitFor("workerd", () => answers(`${settings.workerdUrl}/`), READY_TIMEOUT_MS);
}

export async function answers(
  url: string,
  { method = "GET" as "GET" | "POST", timeoutMs = 2_000, headers = {} as Record<string, string> } = {},
): Promise<boolean> {
  const { statusCode, body } = await request(url, { method, headersTimeout: timeoutMs, headers });
  await body.dump();
  return statusCode === 200;
}

/**
 * With the loader, a removed build stays compiled in workerd until its process ends. Under the
 * Node supervisor, which shares workerd's socket, a fresh workerd takes over from the old one
 * with no gap. Under runit there is no shared socket: the memory is released when runit next
 * restarts workerd.
 */
export async function releaseRemovedBuilds(settings: Settings): Promise<void> {
  if (settings.workerdReload !== "loader" || settings.workerdService) return;
  await requestWorkerdReload();
}

async function refreshRoutes(settings: Settings, liveBuilds: number): Promise<void> {
  const { statusCode, body } = await request(`${settings.workerdUrl}/_gridiron/routes`, {
    method: "POST",
    headers: await identityHeaders(settings, "/_gridiron/routes"),
    headersTimeout: READY_TIMEOUT_MS,
  });
  const answer = await body.text();
  if (statusCode !== 200) throw new Error(`workerd's router did not re-read its routes: ${statusCode} ${answer}`);
  const { builds } = RoutesAnswer.parse(JSON.parse(answer));
  if (builds !== liveBuilds) throw new Error(`workerd's router serves ${builds} builds, expected ${liveBuilds}`);
}
