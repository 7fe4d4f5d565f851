#!/usr/bin/env node
import { Command } from "commander";
import { commands } from "./commands.ts";
import { describe } from "./failure.ts";
import { inertLines } from "./inert.ts";

const EXAMPLES = `
Examples:
  $ gridiron deploy demo/greeter --message "friendlier greeting"
  $ gridiron dev path/to/my-service
  $ gridiron status greeter
  $ gridiron builds greeter --json
  $ gridiron rollback greeter
  $ gridiron prune greeter --yes
  $ gridiron nodes
  $ gridiron tail greeter --status error
  $ gridiron logs greeter --since 10m --invocation inv_1234

The mesh is found from --ingress-url/--admin-url, else GRIDIRON_INGRESS_URL/GRIDIRON_ADMIN_URL,
else the local mesh's settings (GRIDIRON_INGRESS_PORT, GRIDIRON_ADMIN_PORT, GRIDIRON_DATA_DIR),
else what a running \`npm start\` recorded in its mesh file (GRIDIRON_MESH_FILE). The admin token
comes from --token, else GRIDIRON_ADMIN_TOKEN, else the mesh's data dir's admin-token file.
\`gridiron mesh\` shows which mesh that is.`;

const program = new Command("gridiron")
  .description("Deploy and operate Restate services on a Gridiron mesh")
  .option("--ingress-url <url>", "Restate's ingress of the mesh")
  .option("--admin-url <url>", "Gridiron's admin API front of the mesh")
  .option("--ops-url <url>", "the ops port of a node of the mesh (for tail and logs)")
  .option("--token <token>", "the admin token")
  .option("--json", "print the result as JSON on stdout, and no progress")
  .showHelpAfterError()
  .addHelpText("after", EXAMPLES);
commands(program);

program.parseAsync().catch((error: unknown) => {
  // Line by line, as wrangler and workerd wrote it; the text may come from a build, so it is made inert.
  console.error(`error: ${inertLines(describe(error))}`);
  process.exit(1);
});
