import { Agent, request } from "undici";
import type { Settings } from "../control/settings.ts";

/**
 * The sum of a Prometheus counter from restate-server (its node port, a unix socket in Gridiron),
 * over the series matching `labels`.
 */
async function counter(settings: Settings, name: string, labels = ""): Promise<number> {
  const dispatcher = new Agent({ connect: { socketPath: settings.fabricSocket } });
  const { statusCode, body } = await request("http://restate-node/metrics", { dispatcher });
  const text = await body.text();
  if (statusCode !== 200) throw new Error(`restate-server metrics answered ${statusCode}`);
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/**
 * Invocation attempts that ended in failure and had to be retried, as restate-server counts them
 * (`restate_invoker_invocation_tasks_total{status="failed"}`). Compare two readings to count the
 * failures in between.
 */
export function failedAttempts(settings: Settings): Promise<number> {
  return counter(settings, "restate_invoker_invocation_tasks_total", 'status="failed"');
}

/**
 * HTTP requests restate-server has sent to deployments (`restate_invoker_client_requests_total`),
 * all of them or only those in one protocol mode.
 */
export function endpointRequests(settings: Settings, mode?: "bidi-stream" | "request-response"): Promise<number> {
  return counter(settings, "restate_invoker_client_requests_total", mode ? `type="Http/${mode}"` : "");
}
