import { loadSettings, settingDocs } from "./settings.ts";

// Each command imports what it needs when it runs: the supervisor, the deployer and the admin front
// are long-lived processes, and loading each other's modules too cost each ~90-140 MB.

const HELP = `Usage: node control/main.ts <command>

Commands:
  start      run the mesh in the foreground: restate-server, its fronts, workerd and the deployer,
             restarted when they die, all stopped on Ctrl-C (this is what \`npm start\` runs)
  status     print whether each service is up, on a cluster node every node, then every bundle
             and its builds (what \`npx just status\` runs)
  command C  print the shell command that starts component C (restate, admin, workerd, deployer or ops);
             the runit run scripts exec it
  deployer   serve only the deployer's Restate endpoint (the supervisor runs it as a thread of its own)
  fronts     serve only Gridiron's fronts of Restate's admin API (admin token required) and of its
             ingress (the supervisor serves them itself)
  ops        serve only the ops port: /metrics, /livez, /readyz, and run the node agent, which serves
             the deployer's routes (the supervisor does both itself)
  help       show this text

Environment (defaults in brackets):
${settingDocs()
  .map(({ name, shownDefault, description }) => `  ${name} [${shownDefault.replaceAll("`", "")}]\n      ${description}`)
  .join("\n")}
`;

async function main(command: string | undefined): Promise<void> {
  switch (command) {
    case "start": {
      const { runMesh } = await import("./node/supervisor.ts");
      return runMesh(loadSettings());
    }
    case "deployer": {
      // Under runit: a process of its own (the supervisor runs it as a thread, deployer-thread.ts).
      const { serveDeployer } = await import("./objects/endpoint.ts");
      const deployer = await serveDeployer(loadSettings());
      const stop = () => void deployer.stop().finally(() => process.exit(0));
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
      return;
    }
    case "fronts": {
      // Under runit: a process of its own (the supervisor serves them itself).
      const { serveAdminFront } = await import("./restate/admin-front.ts");
      const { serveIngressFront } = await import("./restate/ingress-front.ts");
      const settings = loadSettings();
      await Promise.all([serveAdminFront(settings), serveIngressFront(settings)]);
      const stop = () => process.exit(0);
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
      return;
    }
    case "ops": {
      const { serveOps } = await import("./ops/server.ts");
      const { NodeAgent, serveAgentSocket } = await import("./node/node-agent.ts");
      const { readAdminToken } = await import("./credentials/admin-token.ts");
      const settings = loadSettings();
      // Under runit there is no supervisor, so this process runs the node agent. Nor is there a
      // shared socket for a fresh workerd to take over: removed builds' memory is freed only when
      // runit restarts workerd. runit runs its one cell always.
      const token = await readAdminToken(settings);
      const cell = { release: async () => {}, runs: () => true, start: async () => {} };
      await serveAgentSocket(new NodeAgent(settings, token, cell, console.log), settings.agentSocket);
      await serveOps(settings, "ops", token);
      console.log(`ops port at http://${settings.bind}:${settings.ports.ops}: /metrics, /livez, /readyz`);
      const stop = () => process.exit(0);
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
      return;
    }
    case "command": {
      // For runit run scripts: `eval "exec $(node control/main.ts command workerd)"`.
      const { Component, componentSpecs, prepareDataDir, shellCommand } = await import("./node/components.ts");
      const component = Component.safeParse(process.argv[3]);
      if (!component.success) throw new Error("usage: command restate|admin|workerd|deployer|ops");
      // Under runit each process is a service of its own and nobody runs a cell's handovers:
      // one cell, one workerd service, and every process is told so (workerd/cells.ts).
      const oneCell = { GRIDIRON_CELLS: "1" };
      const settings = loadSettings({ ...process.env, ...oneCell });
      // stdout is the command line here, so notes go to stderr.
      await prepareDataDir(settings, (line) => console.error(line));
      const spec = componentSpecs(settings)[component.data];
      process.stdout.write(`${shellCommand({ ...spec, env: { ...spec.env, ...oneCell } })}\n`);
      return;
    }
    case "status": {
      const { formatTable, nodeRows, serviceRows, statusRows } = await import("./cli/status.ts");
      const { withLocalMesh } = await import("./mesh-file.ts");
      const settings = loadSettings(await withLocalMesh(process.env));
      const services = await serviceRows(settings);
      process.stdout.write(`${formatTable(services)}\n`);
      if (services[0]?.state !== "up") {
        throw new Error(`no mesh runs with data dir ${settings.dataDir}: start one with \`npm start\``);
      }
      if (settings.cluster) {
        const { clusterNodes } = await import("./cluster/members.ts");
        process.stdout.write(`${formatTable(nodeRows(await clusterNodes(settings)))}\n`);
      }
      process.stdout.write(formatTable(await statusRows(settings)));
      return;
    }
    case "help":
    case "--help":
    case "-h":
    case undefined:
      process.stdout.write(HELP);
      return;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
      process.exitCode = 2;
  }
}

main(process.argv[2]).catch((error: unknown) => {
  console.error(`[gridiron] ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
