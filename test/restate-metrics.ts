import { request } from "undici";
import type { Settings } from "../control/settings.ts";

/**
 * Invocation attempts that ended in failure and had to be retried, as restate-server counts them
 * (its Prometheus counter `restate_invoker_invocation_tasks_total{status="failed"}`, on the
 * node port). Compare two readings to count the failures in between.
 */
export async function failedAttempts(settings: Settings): Promise<number> {
  const { statusCode, body } = await request(`http://127.0.0.1:${settings.ports.node}/metrics`);
  const text = await body.text();
  if (statusCode !== 200) throw new Error(`restate-server metrics answered ${statusCode}`);
  let failed = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("restate_invoker_invocation_tasks_total{") && line.includes('status="failed"')) {
      failed += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return failed;
}
