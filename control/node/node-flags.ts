/**
 * V8 flags for Gridiron's own long-lived Node processes (the supervisor, the deployer, and the admin
 * front and ops under runit). Their work is control, not a call's hot path, so memory comes first:
 * a 1 MB young generation (V8's default lets it grow to 3 x 16 MB), no optimizing compiler (its
 * code and feedback cost more than it saves here; Maglev still compiles hot functions), and one V8
 * worker thread. Measured on an idle one-node mesh with the demo deployed: docs/benchmarks.md.
 * `npm start` passes the same flags to the supervisor (package.json; a unit test keeps them equal).
 */
export const OWN_NODE_FLAGS = ["--max-semi-space-size=1", "--no-opt", "--v8-pool-size=1"];
