import * as restate from "@restatedev/restate-sdk";
import { type Build, buildDir } from "./bundle-store.ts";
import type { Settings } from "./settings.ts";
import { loadBuild, serviceName, writeWorkerdConfig } from "./workerd-config.ts";
import { reloadWorkerd } from "./workerd-reload.ts";

/** The one key of the `routes` object: there is one workerd per Gridiron node. */
export const ROUTES_KEY = "local";

type RoutesState = { builds: Build[] };

/**
 * `routes` owns the workerd config. Being a single-key virtual object, Restate runs its handlers
 * one at a time, so concurrent activations of different bundles queue here and every config it
 * writes holds every live build.
 */
export function routesObject(settings: Settings) {
  const write = async (builds: Build[]) => {
    const loaded = await Promise.all(builds.map((build) => loadBuild(buildDir(settings.bundlesDir, build), build)));
    await writeWorkerdConfig(settings.workerdConfigPath, loaded, `${settings.bind}:${settings.ports.workerd}`);
  };

  return restate.object({
    name: "routes",
    handlers: {
      /** Makes workerd serve `build` at /{name}/{buildId}, keeping every other live build. */
      add: async (ctx: restate.ObjectContext<RoutesState>, build: Build) => {
        const builds = (await ctx.get("builds")) ?? [];
        if (builds.some((b) => serviceName(b) === serviceName(build))) return;
        const next = [...builds, build];
        await ctx.run("write workerd config", () => write(next));
        await ctx.run("reload workerd", () => reloadWorkerd(settings));
        ctx.set("builds", next);
      },
    },
    // Only the deployer may change routes: it validates what it passes here.
    options: { ingressPrivate: true },
  });
}

export type RoutesObject = ReturnType<typeof routesObject>;
