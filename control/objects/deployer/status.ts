import { askNodes, servingNodes } from "../../cluster/nodes.ts";
import { type InvocationCounts, liveBuilds, statusView } from "../../domain/lifecycle.ts";
import { liveSplits, rolloutView } from "../../domain/rollout.ts";
import { recordsOf, routes, type SharedCtx, splitsOf, type Uses } from "./context.ts";
import { driftOfBuild } from "./serve.ts";

/** The bundle's builds, their invocations and drift, its rollout, and on a cluster which nodes serve it. */
export const status = async (d: Uses<"admin" | "internal", "cluster" | "ports">, ctx: SharedCtx) => {
  const records = await recordsOf(ctx);
  const splits = liveSplits(await splitsOf(ctx));
  const rollout = (await ctx.get("rollout")) ?? undefined;
  const counts = await ctx.run("count invocations", async () => {
    const entries: [string, InvocationCounts][] = [];
    for (const r of [...liveBuilds(records), ...splits.map((s) => ({ ...s, buildId: s.segment }))]) {
      const { pinned, paused } = await d.admin.observeDeployment(r.deploymentId);
      entries.push([r.buildId, { pinned, paused }]);
    }
    return Object.fromEntries(entries);
  });
  const pinned = Object.fromEntries(Object.entries(counts).map(([id, c]) => [id, c.pinned]));
  const active = records.find((r) => r.state === "active");
  const latest = splits.find((s) => s.segment === rollout?.split)?.deploymentId;
  const drift = active ? await driftOfBuild(d, ctx, active, latest ?? active.deploymentId) : undefined;
  const serving = d.settings.cluster
    ? servingNodes(await ctx.run("ask every node", () => askNodes(d.settings)), ctx.key)
    : undefined;
  const refused = Object.fromEntries(
    (await routes(ctx).view(d.internal())).builds.flatMap((b) =>
      b.name === ctx.key && b.refused ? [[b.buildId, b.refused]] : [],
    ),
  );
  return statusView(ctx.key, records, counts, drift, serving, rolloutView(rollout, splits, pinned), refused);
};
