import * as restate from "@restatedev/restate-sdk";
import * as clients from "@restatedev/restate-sdk-clients";
import { adminHeaders, requireAdmin } from "./admin-token.ts";
import type { Build } from "./bundle.ts";
import { crashableStep } from "./crash-switch.ts";
import { asTerminalError, UserError } from "./errors.ts";
import { claim, type Owners, type RoutedBuild, release, type TakenOver } from "./ownership.ts";
import type { Settings } from "./settings.ts";
import { requestHandover } from "./supervisor-ipc.ts";
import { serviceName, writeRoutes } from "./workerd/config.ts";
import { refreshRoutes } from "./workerd/router-client.ts";

/** The one key of the `routes` object: what every node's workerd serves. */
export const ROUTES_KEY = "local";

/** A node asking what to serve gives up after this long, and asks again (or another peer). */
const ROUTES_CALL_TIMEOUT_MS = 10_000;

type RoutesState = { builds: RoutedBuild[]; owners: Owners; removedSinceRelease: number };
type Ctx = restate.ObjectContext<RoutesState>;

export interface AddRoute {
  build: RoutedBuild;
  /** Services another bundle owns that this build's bundle takes over (ownership.ts). */
  takeOver: string[];
}

export interface RoutesView {
  builds: { name: string; buildId: string; services: string[] }[];
  owners: Owners;
}

/**
 * `routes` owns the workerd config and which bundle owns which service name. Being a single-key
 * virtual object, Restate runs its exclusive handlers one at a time, so concurrent activations of
 * different bundles queue here: every config it writes holds every live build, and of two
 * bundles claiming one service name only the first gets it. Internal to the control plane: only
 * the deployer and cluster nodes' agents, which pass the admin token, or an admin may call it.
 */
export function routesObject(settings: Settings, adminToken: string) {
  const internal = (ctx: Pick<restate.ObjectSharedContext, "request">) =>
    requireAdmin(ctx, adminToken, "routes is internal to Gridiron's control plane: a call to it");

  /** A journaled step, after which the crash switch may end the process (crash-switch.ts). */
  const step = (ctx: Ctx, name: string, action: () => Promise<void>) =>
    crashableStep(ctx, settings.dataDir, name, action);

  // On one node, this object serves the routes itself; in a cluster every node's agent serves
  // what it stores here (cluster/agent.ts).
  const apply = async (ctx: Ctx, next: RoutedBuild[]) => {
    if (!settings.cluster) {
      await step(ctx, "write routes file", () => writeRoutes(settings.bundlesDir, next));
      await step(ctx, "refresh workerd's routes", () => refreshRoutes(settings, next.length));
    }
    ctx.set("builds", next);
  };

  const stateOf = async (ctx: restate.ObjectSharedContext<RoutesState>) => ({
    // Builds routed before services were recorded declare none.
    builds: ((await ctx.get("builds")) ?? []).map((b) => ({ ...b, services: b.services ?? [] })),
    owners: (await ctx.get("owners")) ?? {},
  });

  return restate.object({
    name: "routes",
    handlers: {
      /**
       * Claims the services `build` declares for its bundle (409 naming the owner if another
       * bundle owns one), then makes workerd serve it at /{name}/{buildId}, keeping every other
       * live build.
       */
      add: restate.handlers.object.exclusive(
        { ingressPrivate: true },
        async (ctx: Ctx, { build, takeOver }: AddRoute): Promise<{ takenOver: TakenOver[] }> => {
          internal(ctx);
          const { builds, owners } = await stateOf(ctx);
          const claimed = claim(owners, builds, build, takeOver);
          if ("error" in claimed) throw new UserError(claimed.error, 409);
          const routed = builds.find((b) => serviceName(b) === serviceName(build));
          if (!routed) await apply(ctx, [...builds, build]);
          // A build routed before manifests were recorded gets its proof's manifest now.
          else if (!routed.manifest)
            await apply(
              ctx,
              builds.map((b) => (b === routed ? build : b)),
            );
          ctx.set("owners", claimed.owners);
          return { takenOver: claimed.takenOver };
        },
      ),

      /** Stops serving one build and releases the services only it held; the others keep being served. */
      remove: restate.handlers.object.exclusive(
        { ingressPrivate: true },
        async (ctx: Ctx, build: Pick<Build, "name" | "buildId">) => {
          internal(ctx);
          const { builds, owners } = await stateOf(ctx);
          const removed = builds.find((b) => serviceName(b) === serviceName(build));
          if (!removed) return;
          const remaining = builds.filter((b) => b !== removed);
          await apply(ctx, remaining);
          ctx.set("owners", release(owners, remaining, removed));
          // A removed build stays compiled until its workerd ends (the Worker Loader never unloads).
          // A fresh workerd frees it, but compiles every live build again, so it takes over once
          // every few removals.
          if (settings.cluster) return;
          const held = ((await ctx.get("removedSinceRelease")) ?? 0) + 1;
          if (held < settings.releaseAfter) return ctx.set("removedSinceRelease", held);
          await step(ctx, "release removed builds' memory", requestHandover);
          ctx.set("removedSinceRelease", 0);
        },
      ),

      /** What is routed and who owns which service; answers while add or remove runs. */
      view: restate.handlers.object.shared(
        async (ctx: restate.ObjectSharedContext<RoutesState>): Promise<RoutesView> => {
          internal(ctx);
          const { builds, owners } = await stateOf(ctx);
          return { builds: builds.map(({ name, buildId, services }) => ({ name, buildId, services })), owners };
        },
      ),

      /** Every routed build, whole: what each cluster node's agent makes its workerd serve. */
      served: restate.handlers.object.shared(
        async (ctx: restate.ObjectSharedContext<RoutesState>): Promise<RoutedBuild[]> => {
          internal(ctx);
          return (await stateOf(ctx)).builds;
        },
      ),
    },
    // The shared handlers are reachable through the ingress, for the agents of nodes whose own
    // restate-server is not up yet; they never wait on the key. The exclusive ones are the
    // deployer's alone: Restate refuses them from the ingress, so an anonymous flood cannot queue
    // in front of an activation. Every handler checks the admin token first, as tenants' code can
    // still call any of them through Restate.
    options: { asTerminalError },
  });
}

export type RoutesObject = ReturnType<typeof routesObject>;

/** The builds the `routes` object routes, asked through an ingress (any node's) with the admin token. */
export async function routedBuilds(ingressUrl: string, adminToken: string): Promise<RoutedBuild[]> {
  return await clients
    .connect({ url: ingressUrl, headers: adminHeaders(adminToken) })
    .objectClient<RoutesObject>({ name: "routes" }, ROUTES_KEY)
    .served(clients.rpc.opts({ timeout: ROUTES_CALL_TIMEOUT_MS }));
}
