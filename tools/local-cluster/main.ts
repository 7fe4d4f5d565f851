#!/usr/bin/env node
import { Command } from "commander";
import { addNode, down, killNode, localCluster, nodes, startNode, tokenPath, up, waitReady } from "./local.ts";

const log = (line: string) => console.error(line);
const cluster = localCluster();

const program = new Command("cluster")
  .description(
    "A local Gridiron cluster of three nodes (more can be added), each in a network namespace of its own (needs root)",
  )
  .addHelpText(
    "after",
    `
Settings: GRIDIRON_LOCAL_CLUSTER_DIR [.gridiron-cluster], GRIDIRON_LOCAL_CLUSTER_PREFIX [grd]
(names of the namespaces and links), GRIDIRON_LOCAL_CLUSTER_SUBNET [10.77.0] (the nodes' /24).`,
  );

program
  .command("up")
  .description("create the network, start n1, n2 and n3, and wait until every node is ready")
  .action(async () => {
    const started = await up(cluster, log);
    for (const node of started)
      console.log(`${node.name}  ingress ${node.ingress}  admin ${node.admin}  ops ${node.ops}`);
    console.log(`\nThe admin token is in ${tokenPath(cluster)}. To use node n1:
  export GRIDIRON_INGRESS_URL=${started[0]?.ingress} GRIDIRON_ADMIN_URL=${started[0]?.admin}
  export GRIDIRON_ADMIN_TOKEN=$(cat ${tokenPath(cluster)})`);
  });

program
  .command("add")
  .description(
    "add the next node (n4, n5, ...) to the running cluster: restart each node in turn with it among its peers, then start it",
  )
  .action(async () => {
    const node = await addNode(cluster, log);
    console.log(`${node.name}  ingress ${node.ingress}  admin ${node.admin}  ops ${node.ops}`);
  });

program
  .command("nodes")
  .description("print every node as JSON: name, address, ingress, admin, ops, alive")
  .action(async () => console.log(JSON.stringify(await nodes(cluster), null, 2)));

program
  .command("kill")
  .argument("<node>", "n1, n2, n3 or an added node")
  .description("SIGKILL every process of NODE")
  .action(async (node: string) => {
    await killNode(cluster, node);
    log(`[cluster] killed every process of ${node}`);
  });

program
  .command("start")
  .argument("<node>", "n1, n2, n3 or an added node")
  .description("start NODE again and wait until it is ready")
  .action(async (node: string) => {
    await startNode(cluster, node, log);
    await waitReady(cluster, node, log);
  });

program
  .command("down")
  .description("stop every node and remove the namespaces, the bridge and the cluster's data")
  .action(async () => {
    await down(cluster);
    log("[cluster] removed");
  });

program.parseAsync().catch((error: unknown) => {
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
