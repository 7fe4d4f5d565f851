import type { Build } from "../../bundle.ts";
import type { RoutedBuild } from "../../ownership.ts";

/**
 * Types for the router code that runs inside workerd (router.js, identity.js, checked by tsc with
 * `// @ts-check`): the bindings config.ts gives it, as far as the router uses them.
 */

export interface Fetcher {
  fetch(input: string | Request): Promise<Response>;
}

/** What the Worker Loader compiles: one entry per module, keyed by the kind of its content. */
export type WorkerModule =
  | { js: string }
  | { cjs: string }
  | { text: string }
  | { json: unknown }
  | { wasm: ArrayBuffer }
  | { data: ArrayBuffer };

export interface WorkerCode {
  compatibilityDate: string;
  compatibilityFlags: string[];
  mainModule: string;
  modules: Record<string, WorkerModule>;
  /** What the build's handlers get as `env`. */
  env?: Record<string, unknown>;
}

export interface Env {
  /** Restate's request identity public key, raw bytes in base64url. */
  RESTATE_IDENTITY_KEY: string;
  /** Who answers discovery (config.ts's Discovery). */
  DISCOVERY: "build" | "recorded";
  LOADER: { get(id: string, load: () => Promise<WorkerCode>): { getEntrypoint(): Fetcher } };
  /** The bundles dir, read-only: `{name}/{buildId}/{module}`. */
  BUNDLES: Fetcher;
  /** The dir holding the routes file, read-only. */
  ROUTES: Fetcher;
  /** The private key bundles' secrets are sealed to (not extractable), and its id (secrets.ts). */
  SECRETS_KEY: CryptoKey;
  SECRETS_KEY_ID: string;
}

export type { Build, RoutedBuild };
