import { join } from "node:path";

/** The module hook that serves Gridiron's sources with their types stripped ahead (stripped-modules.js). */
export const STRIPPED_MODULES_HOOK = "control/node/stripped-modules.js";
export const STRIPPED_MODULES_PATH = join(import.meta.dirname, "../..", STRIPPED_MODULES_HOOK);

/**
 * V8 flags for Gridiron's own long-lived Node processes. Their work is control, not a call's hot
 * path, so memory comes first: a 1 MB young generation (V8's default lets it grow to 3 x 16 MB),
 * no optimizing compiler (its code and feedback cost more than it saves here; Maglev still
 * compiles hot functions), and one V8 worker thread.
 */
export const OWN_V8_FLAGS = ["--max-semi-space-size=1", "--no-opt", "--v8-pool-size=1"];

/**
 * How Node starts each of Gridiron's own long-lived processes (the supervisor, the deployer, and the
 * admin front and ops under runit). Measured on an idle one-node mesh with the demo deployed:
 * docs/benchmarks.md. `npm start` passes the same to the supervisor (package.json; a unit test
 * keeps them equal).
 */
export const OWN_NODE_FLAGS = [`--import=${STRIPPED_MODULES_PATH}`, ...OWN_V8_FLAGS];
