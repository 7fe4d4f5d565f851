import { createRequire } from "node:module";
import { arch, platform } from "node:os";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

/**
 * The native binaries inside the npm packages. restate-server's package bin is a Node wrapper;
 * spawning the binary itself means a signal to the PID we hold reaches the real process.
 */
export const binaries = {
  restateServer: () => require.resolve(`@restatedev/restate-server-${platform()}-${arch()}/bin/restate-server`),
  workerd: () => require.resolve("workerd/bin/workerd"),
  restatectl: () => require.resolve(`@restatedev/restatectl-${platform()}-${arch()}/bin/restatectl`),
};

/** wrangler's CLI, a JavaScript file run with this Node (its package exports no bin path). */
export const wranglerCli = () => join(dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");
