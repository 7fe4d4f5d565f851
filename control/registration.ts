import { request } from "undici";
import type { AdminClient } from "./admin-client.ts";
import { BundleError } from "./errors.ts";
import { type ProvedManifest, readManifest } from "./manifest.ts";
import { waitFor } from "./wait.ts";

/** Making a routed build known to Restate: wait until it answers discovery, then register it. */

const DISCOVERY_TIMEOUT_MS = 15_000;
const MANIFEST_TYPES =
  "application/vnd.restate.endpointmanifest.v4+json, application/vnd.restate.endpointmanifest.v3+json";

/**
 * Waits until the build answers Restate discovery with an endpoint manifest, and returns it.
 * `headers` sign the request the way Restate does, since workerd's router refuses unsigned ones.
 */
export async function waitForDiscovery(
  uri: string,
  headers: Record<string, string>,
  timeoutMs = DISCOVERY_TIMEOUT_MS,
): Promise<ProvedManifest> {
  let manifest: ProvedManifest | undefined;
  let last = "no answer";
  const discovered = async () => {
    const answer = await discover(uri, headers).catch((error: unknown) => {
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
      502,
    );
  }
  return manifest as ProvedManifest;
}

/** One discovery request: the manifest, or why there is none yet. */
async function discover(uri: string, headers: Record<string, string>): Promise<ProvedManifest | string> {
  const response = await request(`${uri}/discover`, {
    headers: { ...headers, accept: MANIFEST_TYPES },
    headersTimeout: 5_000,
  });
  const body = await response.body.text();
  const type = String(response.headers["content-type"] ?? "");
  if (response.statusCode !== 200) return `HTTP ${response.statusCode}: ${body.slice(0, 500)}`;
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
