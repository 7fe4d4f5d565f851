import * as restate from "@restatedev/restate-sdk";
import type { Build } from "./bundle-store.ts";
import { crashableStep } from "./crash-switch.ts";
import type { Settings } from "./settings.ts";
import { serviceName, writeLiveConfig } from "./workerd-config.ts";
import { ConfigRejected, proveBuild } from "./workerd-probe.ts";
import { releaseRemovedBuilds, reloadWorkerd } from "./workerd-reload.ts";

/** The one key of the `routes` object: there is one workerd per Gridiron node. */
export const ROUTES_KEY = "local";

type RoutesState = { builds: Build[]; removedSinceRelease: number };

/**
 * `routes` owns the workerd config. Being a single-key virtual object, Restate runs its handlers
 * one at a time, so concurrent activations of different bundles queue here and every config it
 * writes holds every live build.
 */
export function routesObject(settings: Settings) {
  /** A build is only routed once a throwaway workerd has loaded it. */
  const prove = async (build: Build) => {
    try {
      await proveBuild(settings, build);
    } catch (error) {
      if (error instanceof ConfigRejected) throw new restate.TerminalError(error.message, { errorCode: 400 });
      throw error;
    }
  };

  /** A journaled step, after which the crash switch may end the process (crash-switch.ts). */
  const step = (ctx: restate.ObjectContext<RoutesState>, name: string, action: () => Promise<void>) =>
    crashableStep(ctx, settings.dataDir, name, action);

  const apply = async (ctx: restate.ObjectContext<RoutesState>, next: Build[]) => {
    await step(ctx, "write workerd config", () => writeLiveConfig(settings, next));
    await step(ctx, "reload workerd", () => reloadWorkerd(settings, next.length));
    ctx.set("builds", next);
  };

  return restate.object({
    name: "routes",
    handlers: {
      /** Makes workerd serve `build` at /{name}/{buildId}, keeping every other live build. */
      add: async (ctx: restate.ObjectContext<RoutesState>, build: Build) => {
        const builds = (await ctx.get("builds")) ?? [];
        if (builds.some((b) => serviceName(b) === serviceName(build))) return;
        await step(ctx, "prove the build loads", () => prove(build));
        await apply(ctx, [...builds, build]);
      },

      /** Stops serving one build; the others keep being served. */
      remove: async (ctx: restate.ObjectContext<RoutesState>, build: Pick<Build, "name" | "buildId">) => {
        const builds = (await ctx.get("builds")) ?? [];
        if (!builds.some((b) => serviceName(b) === serviceName(build))) return;
        await apply(
          ctx,
          builds.filter((b) => serviceName(b) !== serviceName(build)),
        );
        // Replacing workerd frees removed builds, but it compiles every live build again, so it
        // happens once every few removals.
        const held = ((await ctx.get("removedSinceRelease")) ?? 0) + 1;
        if (held < settings.releaseAfter) return ctx.set("removedSinceRelease", held);
        await step(ctx, "release removed builds' memory", () => releaseRemovedBuilds(settings));
        ctx.set("removedSinceRelease", 0);
      },
    },
    // Only the deployer may change routes: it validates what it passes here.
    options: { ingressPrivate: true },
  });
}

export type RoutesObject = ReturnType<typeof routesObject>;
