import type * as Restate from "@restatedev/restate-sdk";

/**
 * The services `npm run bench:density` and `npm run bench:deploy` deploy, written once and served twice: by Gridiron
 * (bench/deploy-worker, through the Workers SDK) and by one Node SDK process per service
 * (bench/node-service.ts). Both SDKs export the same API; the names keep the two sides apart in
 * one restate-server.
 */

/** The small service every live bundle or process serves; it answers with its version, so a caller knows which one served. */
export function pingService(restate: typeof Restate, name: string, version: string) {
  return restate.service({ name, handlers: { ping: async () => `pong ${version}` } });
}

/** The service taking the load: adds its input to a key's count, as demo/counter does. */
export function counterObject(restate: typeof Restate, name: string) {
  return restate.object({
    name,
    handlers: {
      add: async (ctx: Restate.ObjectContext, by: number) => {
        const count = ((await ctx.get<number>("count")) ?? 0) + by;
        ctx.set("count", count);
        return count;
      },
      get: restate.handlers.object.shared(
        async (ctx: Restate.ObjectSharedContext) => (await ctx.get<number>("count")) ?? 0,
      ),
    },
  });
}
