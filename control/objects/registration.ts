import { request } from "undici";
import { BundleError } from "../domain/errors.ts";
import { type ProvedManifest, readManifest } from "../domain/manifest.ts";
import type { AdminClient } from "../restate/admin-client.ts";
import { waitFor } from "../wait.ts";

/** Making a routed build known to Restate: wait until it answers discovery, then register it. */

const DISCOVERY_TIMEOUT_MS = 15_000;
const MANIFEST_TYPES =
  "application/vnd.restate.endpointmanifest.v4+json, application/vnd.restate.endpointmanifest.v3+json";

/** The longest one discovery request may take, headers and body: the next one is tried after. */
const ATTEMPT_TIMEOUT_MS = 5_000;

/** How waitForDiscovery waits: its total deadline, and the status of the BundleError when it passes. */
export interface DiscoveryOptions {
  timeoutMs?: number;
  status?: number;
}

/**
 * Waits until the build answers Restate discovery with an endpoint manifest, and returns it.
 * `headers` sign the request the way Restate does, since workerd's router refuses unsigned ones.
 * `timeoutMs` is a hard deadline on the whole wait, every request's body included: a build that
 * sends its headers and then trickles its manifest cannot hold it longer.
 */
export async function waitForDiscovery(
  uri: string,
  headers: Record<string, string>,
  { timeoutMs = DISCOVERY_TIMEOUT_MS, status = 502 }: DiscoveryOptions = {},
): Promise<ProvedManifest> {
  const deadline = Date.now() + timeoutMs;
  let manifest: ProvedManifest | undefined;
  let last = "no answer";
  const discovered = async () => {
    const attemptMs = Math.max(1, Math.min(ATTEMPT_TIMEOUT_MS, deadline - Date.now()));
    const answer = await discover(uri, headers, attemptMs).catch((error: unknown) => {
      if (error instanceof BundleError) throw error;
      return error instanceof Error ? error.message : String(error);
    });
    if (typeof answer === "string") last = answer;
    else manifest = answer;
    return manifest !== undefined;
  };
  try {
    await waitFor("discovery", discovered, timeoutMs, {
      pollMs: 200,
      isFinal: (error) => error instanceof BundleError,
    });
  } catch (error) {
    if (error instanceof BundleError) throw error;
    throw new BundleError(
      `the build did not answer Restate discovery at ${uri}/discover within ${timeoutMs / 1000} s (${last})`,
      status,
    );
  }
  return manifest as ProvedManifest;
}

/**
 * One discovery request, ended after `timeoutMs` wherever it is (undici's own timeouts only bound
 * the wait for headers and each gap between body chunks): the manifest, or why there is none yet.
 */
async function discover(
  uri: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<ProvedManifest | string> {
  const signal = AbortSignal.timeout(timeoutMs);
  let status: number | undefined;
  try {
    const response = await request(`${uri}/discover`, { headers: { ...headers, accept: MANIFEST_TYPES }, signal });
    status = response.statusCode;
    return manifestOf(uri, status, String(response.headers["content-type"] ?? ""), await response.body.text());
  } catch (error) {
    if (!signal.aborted) throw error;
    const within = `within ${timeoutMs / 1000} s`;
    return status === undefined ? `no answer ${within}` : `HTTP ${status} came, but not its whole body ${within}`;
  }
}

/** The manifest in a discovery answer, or why it holds none. */
function manifestOf(uri: string, status: number, type: string, body: string): ProvedManifest | string {
  if (status !== 200) return `HTTP ${status}: ${body.slice(0, 500)}`;
  if (type.includes("endpointmanifest")) return readManifest(body, type);
  // Something answers, but not the Restate SDK: waiting will not change that.
  throw new BundleError(
    `the build is not a Restate endpoint: ${uri}/discover answered ${type || "no content type"} instead of an endpoint manifest; serve it with createEndpointHandler from @restatedev/restate-sdk-cloudflare-workers/fetch`,
  );
}

export interface RegisterOptions {
  force: boolean;
  breaking: boolean;
}

/**
 * Registers a routed build with Restate over HTTP/1.1 (all workerd speaks). A build's uri names
 * its exact content, so forcing over an earlier registration of the same uri can only re-register
 * the same code; it also makes it the latest again. Restate's 4xx refusals are user errors.
 */
export function register(admin: AdminClient, uri: string, options: RegisterOptions) {
  return admin.registerDeployment({ uri, http11: true, ...options });
}
