import type { Build } from "../../../domain/bundle.ts";
import type { RoutedBuild } from "../../../domain/ownership.ts";

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
  /** Where its fetch() goes: null, nowhere; absent, where the router's would (the public internet). */
  globalOutbound?: Fetcher | null;
}

/** What the egress gate knows of the build it stands in front of. */
export interface EgressProps {
  bundle: string;
  allow: string[];
}

/** The router's ExecutionContext, as far as it uses it: its own entrypoints, with props. */
export interface RouterContext {
  exports: {
    EgressGate(options: { props: EgressProps }): Fetcher;
    LogSink(options: { props: SinkProps }): Fetcher;
  };
}

export interface Env {
  /** Restate's request identity public key, raw bytes in base64url. */
  RESTATE_IDENTITY_KEY: string;
  /** Who answers discovery (config.ts's Discovery). */
  DISCOVERY: "build" | "recorded";
  /** The cell this workerd is (workerd/cells.ts), as text; absent in a proof. */
  CELL?: string;
  LOADER: { get(id: string, load: () => Promise<WorkerCode>): { getEntrypoint(): Fetcher } };
  /** The bundles dir, read-only: `{name}/{buildId}/{module}`. */
  BUNDLES: Fetcher;
  /** The dir holding the routes file, read-only. */
  ROUTES: Fetcher;
  /** The ids of the private keys bundles' secrets are sealed to (secrets.ts), as a JSON array. */
  SECRETS_KEY_IDS: string;
  /** SECRETS_KEY_{i}: the key whose id is the i-th of SECRETS_KEY_IDS (not extractable). */
  [key: `SECRETS_KEY_${number}`]: CryptoKey;
  /** The node's log collector (control/logs/collector.ts), on a unix socket; on the live workerd with attribution on. */
  COLLECTOR?: { fetch(url: string, init: RequestInit): Promise<Response> };
  /** With attribution on (live and in proofs): the modules that attribute lines inside a build (attribute.js and its imports), name -> source, as JSON. */
  ATTRIBUTION?: string;
}

/** Which build a log sink (sink.js) stands for: set by the router, so a build cannot write for another. */
export interface SinkProps {
  bundle: string;
  build: string;
}

/** What a build's isolate gives attribute.js: its request's ExecutionContext, as far as it is used. */
export interface BuildContext {
  waitUntil(promise: Promise<unknown>): void;
}

export type { Line, Outcome, SinkBatch, SinkRecord } from "../../../logs/records.ts";
/** A build as a node's routes file lists it (node-agent.ts): routed, and maybe held there for now. */
export interface ServedBuild extends RoutedBuild {
  /**
   * Why the router holds its calls: its cell keeps hanging and its bundle is a suspect while the
   * watchdog finds which one does it (domain/culprit.ts).
   */
  held?: string;
}

export type { Build, RoutedBuild };
