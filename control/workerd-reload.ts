import { execa } from "execa";
import { request } from "undici";
import { waitFor } from "./processes.ts";
import type { Settings } from "./settings.ts";
import { requestWorkerdReload } from "./supervisor-ipc.ts";

const READY_TIMEOUT_MS = 60_000;

/**
 * Restarts workerd so it loads the config just written: through runit's `sv` when the mesh runs
 * under runsvdir (GRIDIRON_WORKERD_SV), else by asking the Node supervisor that owns it.
 */
export async function reloadWorkerd(settings: Settings): Promise<void> {
  if (!settings.workerdService) return requestWorkerdReload();
  await execa("sv", ["restart", settings.workerdService], { timeout: READY_TIMEOUT_MS });
  await workerdReady(settings);
}

/** Resolves once the router on workerd's socket answers. */
export function workerdReady(settings: Settings): Promise<void> {
  return waitFor("workerd", () => answers(`${settings.workerdUrl}/`), READY_TIMEOUT_MS);
}

export async function answers(url: string): Promise<boolean> {
  const { statusCode, body } = await request(url, { headersTimeout: 2_000 });
  await body.dump();
  return statusCode === 200;
}
