import * as restate from "@restatedev/restate-sdk";
import { CLUSTER } from "../contracts.ts";
import { clusterNodes } from "./members.ts";

/** `cluster`: what `gridiron nodes` shows, asked of Restate and of every node's agent. */
export function clusterService(settings: Parameters<typeof clusterNodes>[0]) {
  return restate.service({
    name: CLUSTER,
    handlers: {
      nodes: async (ctx: restate.Context) => ctx.run("ask every node", () => clusterNodes(settings)),
    },
  });
}

export type ClusterService = ReturnType<typeof clusterService>;
