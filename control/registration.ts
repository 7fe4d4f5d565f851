import { setTimeout as sleep } from "node:timers/promises";
import * as restate from "@restatedev/restate-sdk";
import { request } from "undici";
import { z } from "zod";
import { type AdminClient, AdminError } from "./admin-client.ts";

/** Making a routed build known to Restate: wait until it answers discovery, then register it. */

const DISCOVERY_TIMEOUT_MS = 15_000;
const MANIFEST_TYPES =
  "application/vnd.restate.endpointmanifest.v4+json, application/vnd.restate.endpointmanifest.v3+json";

/**
 * How Restate will talk to the build, as its manifest declares: BIDI_STREAM keeps one HTTP
 * exchange open for the whole invocation; REQUEST_RESPONSE ends the exchange at every step that
 * needs an answer from Restate, which then calls again with the journal so far.
 */
const Manifest = z.object({ protocolMode: z.enum(["BIDI_STREAM", "REQUEST_RESPONSE"]) });
export type ProtocolMode = z.infer<typeof Manifest>["protocolMode"];

/**
 * Waits until the build answers Restate discovery with an endpoint manifest, and returns the
 * protocol mode it declares. `headers` sign the request the way Restate does, since workerd's
 * router refuses unsigned ones.
 */
export async function waitForDiscovery(uri: string, headers: Record<string, string>): Promise<ProtocolMode> {
  const deadline = Date.now() + DISCOVERY_TIMEOUT_MS;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const response = await request(`${uri}/discover`, {
        headers: { ...headers, accept: MANIFEST_TYPES },
        headersTimeout: 5_000,
      });
      const body = await response.body.text();
      const type = String(response.headers["content-type"] ?? "");
      if (response.statusCode === 200 && type.includes("endpointmanifest")) {
        return Manifest.parse(JSON.parse(body)).protocolMode;
      }
      if (response.statusCode === 200) {
        // Something answers, but not the Restate SDK: waiting will not change that.
        throw new restate.TerminalError(
          `the build is not a Restate endpoint: ${uri}/discover answered ${type || "no content type"} instead of an endpoint manifest; serve it with createEndpointHandler from @restatedev/restate-sdk-cloudflare-workers/fetch`,
          { errorCode: 400 },
        );
      }
      last = `HTTP ${response.statusCode}: ${body.slice(0, 500)}`;
    } catch (error) {
      if (error instanceof restate.TerminalError) throw error;
      last = (error as Error).message;
    }
    await sleep(200);
  }
  throw new restate.TerminalError(
    `the build did not answer Restate discovery at ${uri}/discover within ${DISCOVERY_TIMEOUT_MS / 1000} s (${last})`,
    { errorCode: 502 },
  );
}

export interface RegisterOptions {
  force: boolean;
  breaking: boolean;
}

export async function register(admin: AdminClient, uri: string, options: RegisterOptions) {
  try {
    // A build's uri names its exact content, so forcing over an earlier registration of the same
    // uri can only re-register the same code; it also makes it the latest again.
    return await admin.registerDeployment({ uri, http11: true, ...options });
  } catch (error) {
    if (error instanceof AdminError && error.status >= 400 && error.status < 500) {
      throw new restate.TerminalError(error.message, { errorCode: error.status });
    }
    throw error;
  }
}
