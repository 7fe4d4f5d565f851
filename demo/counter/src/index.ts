import * as restate from "@restatedev/restate-sdk-cloudflare-workers/fetch";

declare const STEP: number;

type AddRequest = { by?: number; delayMs?: number } | number | undefined;

const counter = restate.object({
  name: "counter",
  handlers: {
    /** Adds `by` (default STEP) to this key's count, after an optional durable sleep. */
    add: async (ctx: restate.ObjectContext, request?: AddRequest) => {
      const { by = STEP, delayMs = 0 } = typeof request === "number" ? { by: request } : (request ?? {});
      if (delayMs > 0) await ctx.sleep(delayMs);
      const count = ((await ctx.get<number>("count")) ?? 0) + by;
      ctx.set("count", count);
      return count;
    },
    get: restate.handlers.object.shared(
      async (ctx: restate.ObjectSharedContext) => (await ctx.get<number>("count")) ?? 0,
    ),
  },
});

export default { fetch: restate.createEndpointHandler({ services: [counter], bidirectional: true }) };
