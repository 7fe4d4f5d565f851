import * as restate from "@restatedev/restate-sdk";
import { z } from "zod";
import { buildKey, ROUTES } from "../contracts.ts";
import { adminOnly } from "../credentials/admin-token.ts";
import { type Build, BundleName } from "../domain/bundle.ts";
import { UserError } from "../domain/errors.ts";
import { claim, type Owners, type RoutedBuild, release, type TakenOver } from "../domain/ownership.ts";
import {
  type CellLayout,
  type CellRequest,
  type CellState,
  NO_EXCEPTIONS,
  place,
  quarantine,
} from "../domain/placement.ts";
import { type RouteChange, type Routes, withoutRemoved, withRouted } from "../domain/route-changes.ts";
import { cellOf } from "../node/workerd/cells.ts";
import { asTerminalError } from "./error-policy.ts";

type RoutesState = { builds: RoutedBuild[]; owners: Owners; cells: CellState; revision: number };
type Ctx = restate.ObjectContext<RoutesState>;

export interface AddRoute {
  build: RoutedBuild;
  /** Services another bundle owns that this build's bundle takes over (ownership.ts). */
  takeOver: string[];
  /** A cell of the bundle's own, or back among the others (placement.ts); absent: as before. */
  cell?: CellRequest;
}

/** A bundle that hung cell `cell` alone, and what the routers answer its calls there. */
const QuarantineRequest = z.strictObject({
  bundle: BundleName,
  cell: z.int().nonnegative(),
  reason: z.string().min(1).max(2000),
});
export type Quarantine = z.infer<typeof QuarantineRequest>;

export interface RoutesView {
  builds: { name: string; buildId: string; services: string[]; cell: number; refused?: string }[];
  owners: Owners;
  cells: CellState;
}

/**
 * `routes` records what every node should serve and which bundle owns which service name: desired
 * state only. Each node's agent (node-agent.ts) makes its workerd serve what is recorded here.
 * Being a single-key virtual object, Restate runs its exclusive handlers one at a time, so
 * concurrent activations of different bundles queue here: every record holds every live build,
 * and of two bundles claiming one service name only the first gets it. Internal to the control
 * plane: only the deployer and the node agents, which pass the admin token, or an admin may call it.
 */
export function routesObject(adminToken: string, layout: CellLayout) {
  const stateOf = async (ctx: restate.ObjectSharedContext<RoutesState>) => ({
    // Builds routed before services were recorded declare none.
    builds: ((await ctx.get("builds")) ?? []).map((b) => ({ ...b, services: b.services ?? [] })),
    owners: (await ctx.get("owners")) ?? {},
    cells: (await ctx.get("cells")) ?? NO_EXCEPTIONS,
    revision: (await ctx.get("revision")) ?? 0,
  });
  /** Stores the routed builds as one more revision (route-changes.ts), and returns that revision. */
  const setBuilds = (ctx: Ctx, builds: RoutedBuild[], revision: number) => {
    ctx.set("builds", builds);
    ctx.set("revision", revision + 1);
    return revision + 1;
  };

  return restate.object({
    name: ROUTES,
    handlers: {
      /**
       * Claims the services `build` declares for its bundle (409 naming the owner if another
       * bundle owns one), places it in a cell (placement.ts; a build already routed keeps its
       * own), then records it as served at /{name}/{buildId} in that cell beside every other live
       * build. The deployer then hands this node's agent the change and waits until the nodes serve it.
       */
      add: restate.handlers.object.exclusive(
        { ingressPrivate: true },
        async (
          ctx: Ctx,
          { build, takeOver, cell }: AddRoute,
        ): Promise<{ takenOver: TakenOver[]; cell: number; change: RouteChange }> => {
          const { builds, owners, cells, revision } = await stateOf(ctx);
          const claimed = claim(owners, builds, build, takeOver);
          if ("error" in claimed) throw new UserError(claimed.error, 409);
          const live = builds.map((b) => ({ name: b.name, cell: cellOf(b) }));
          const placed = place(build.name, cells, layout, cell, live);
          if ("error" in placed) throw new UserError(placed.error, 409);
          const routed = builds.find((b) => buildKey(b) === buildKey(build));
          const placedBuild = { ...build, cell: routed ? cellOf(routed) : placed.cell };
          // A build routed before manifests were recorded gets its proof's manifest now.
          const change: RouteChange =
            routed?.manifest === undefined
              ? { revision: setBuilds(ctx, withRouted(builds, placedBuild), revision), routed: placedBuild }
              : { revision };
          ctx.set("owners", claimed.owners);
          ctx.set("cells", placed.state);
          return { takenOver: claimed.takenOver, cell: placedBuild.cell, change };
        },
      ),

      /**
       * Quarantines a bundle whose build hung its cell alone (domain/culprit.ts): every node's
       * router refuses the calls of its builds in that cell from now on, and its next build goes
       * to the quarantine cell, until an activation asks for a cell (`cell`). The watchdogs call it.
       */
      quarantine: restate.handlers.object.exclusive(
        { input: restate.serde.schema(QuarantineRequest) },
        async (ctx: Ctx, { bundle, cell, reason }: Quarantine): Promise<CellState> => {
          const { builds, cells, revision } = await stateOf(ctx);
          const culprit = (b: RoutedBuild) => b.name === bundle && cellOf(b) === cell && !b.refused;
          setBuilds(
            ctx,
            builds.map((b) => (culprit(b) ? { ...b, refused: reason } : b)),
            revision,
          );
          const next = quarantine(cells, bundle);
          ctx.set("cells", next);
          return next;
        },
      ),

      /** Records one build as no longer served and releases the services only it held. */
      remove: restate.handlers.object.exclusive(
        { ingressPrivate: true },
        async (ctx: Ctx, build: Pick<Build, "name" | "buildId">): Promise<RouteChange> => {
          const { builds, owners, revision } = await stateOf(ctx);
          const removed = builds.find((b) => buildKey(b) === buildKey(build));
          if (!removed) return { revision };
          const remaining = withoutRemoved(builds, removed);
          ctx.set("owners", release(owners, remaining, removed));
          return {
            revision: setBuilds(ctx, remaining, revision),
            removed: { name: removed.name, buildId: removed.buildId },
          };
        },
      ),

      /** What is routed and who owns which service; answers while add or remove runs. */
      view: restate.handlers.object.shared(
        async (ctx: restate.ObjectSharedContext<RoutesState>): Promise<RoutesView> => {
          const { builds, owners, cells } = await stateOf(ctx);
          const view = builds.map((b) => ({
            name: b.name,
            buildId: b.buildId,
            services: b.services,
            cell: cellOf(b),
            ...(b.refused ? { refused: b.refused } : {}),
          }));
          return { builds: view, owners, cells };
        },
      ),

      /** Every routed build, whole, and the revision they are: what each node's agent makes its workerd serve. */
      served: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext<RoutesState>): Promise<Routes> => {
        const { builds, revision } = await stateOf(ctx);
        return { revision, builds };
      }),
    },
    // The shared handlers are reachable through the ingress, for the node agents (a cluster
    // node's own restate-server may not be up yet); they never wait on the key. `add` and `remove`
    // are the deployer's alone: Restate refuses them from the ingress, so an anonymous flood
    // cannot queue in front of an activation. `quarantine` comes through the ingress from the
    // supervisors' watchdogs; the ingress front refuses it without the token. Every handler needs
    // the admin token, as tenants' code can still call any of them through Restate.
    options: {
      asTerminalError,
      hooks: [adminOnly(adminToken, "routes is internal to Gridiron's control plane: a call to it")],
    },
  });
}

export type RoutesObject = ReturnType<typeof routesObject>;
