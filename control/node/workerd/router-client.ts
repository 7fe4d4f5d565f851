import { request } from "undici";
import { z } from "zod";
import { buildPath } from "../../contracts.ts";
import { identityHeaders } from "../../credentials/request-identity.ts";
import type { Build } from "../../domain/bundle.ts";
import { BundleError } from "../../domain/errors.ts";
import type { Settings } from "../../settings.ts";
import { answers } from "../../wait.ts";
import { DRAIN_PATH, LOAD_FAILED, ROUTES_PATH, WARM_PATH } from "./router/protocol.js";

/**
 * The Node side of the router's control protocol (router/protocol.js): every call is signed with
 * the mesh's request identity key, as Restate signs its own.
 */

const ROUTES_TIMEOUT_MS = 60_000;

/** How long a live workerd may take to compile a new build ahead of its first call: its proof bounded that already. */
export const PROVED_WARM_TIMEOUT_MS = 30_000;

/** What signing a call needs of the settings. */
type KeyPath = Pick<Settings, "identityKeyPath">;

const BuildsAnswer = z.object({ builds: z.number() });

async function post(settings: KeyPath, baseUrl: string, path: string, timeoutMs: number) {
  const { statusCode, body } = await request(`${baseUrl}${path}`, {
    method: "POST",
    headers: await identityHeaders(settings, path),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  return { statusCode, text: await body.text() };
}

/**
 * Makes the router of the live workerd at `baseUrl` (a cell) re-read its routes file, and checks
 * it now serves `expected` builds.
 */
export async function refreshRoutes(settings: KeyPath, baseUrl: string, expected: number): Promise<void> {
  const { statusCode, text } = await post(settings, baseUrl, ROUTES_PATH, ROUTES_TIMEOUT_MS);
  if (statusCode !== 200) throw new Error(`workerd's router did not re-read its routes: ${statusCode} ${text}`);
  const { builds } = BuildsAnswer.parse(JSON.parse(text));
  if (builds !== expected) throw new Error(`workerd at ${baseUrl} serves ${builds} builds, expected ${expected}`);
}

/**
 * Compiles every build the router at `baseUrl` lists, or only `build`. A build that does not load is the bundle's
 * fault (BundleError, with workerd's message); any other failure is not.
 */
export async function warm(
  settings: KeyPath,
  baseUrl: string,
  timeoutMs: number,
  build?: Pick<Build, "name" | "buildId">,
): Promise<void> {
  const { statusCode, text } = await post(
    settings,
    baseUrl,
    build ? `${WARM_PATH}/${buildPath(build)}` : WARM_PATH,
    timeoutMs,
  );
  if (statusCode === LOAD_FAILED) throw new BundleError(`workerd cannot load the build: ${text.trim()}`);
  if (statusCode !== 200) throw new Error(`workerd at ${baseUrl} answered ${statusCode} to a warm-up: ${text}`);
}

/** Asks the router at `baseUrl` to hold new requests before its workerd exits; whether it did. */
export async function drain(settings: KeyPath, baseUrl: string): Promise<boolean> {
  return answers(`${baseUrl}${DRAIN_PATH}`, { method: "POST", headers: await identityHeaders(settings, DRAIN_PATH) });
}
