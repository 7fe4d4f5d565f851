#!/usr/bin/env node
import { HttpCallError } from "@restatedev/restate-sdk-clients";
import { Command } from "commander";
import { callFailure } from "../restate/ingress-error.ts";
import { commands } from "./commands.ts";
import { inert } from "./inert.ts";

const EXAMPLES = `
Examples:
  $ gridiron deploy demo/greeter --message "friendlier greeting"
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
  // One line: a load error from workerd carries its source position on a line of its own; the
  // rest of the message may come from a build, so it is made inert.
  console.error(`error: ${inert(describe(error).replace(/\s*\n\s*/g, " "))}`);
  process.exit(1);
});

/** The deployer's own terminal message when there is one, not a stack. */
function describe(error: unknown): string {
  if (error instanceof HttpCallError) return `${callFailure(error)} (HTTP ${error.status})`;
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: string; address?: string; port?: number } | undefined;
  if (cause?.code === "ECONNREFUSED") {
    const where = cause.address ? ` at ${cause.address}:${cause.port}` : "";
    return `no mesh${where}: nothing answers there; start one with \`npm start\`, or say where it is with GRIDIRON_INGRESS_URL and GRIDIRON_ADMIN_URL (see \`gridiron mesh\`)`;
  }
  return error.message;
}
