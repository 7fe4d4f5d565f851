import type * as Restate from "@restatedev/restate-sdk";

/**
 * The benchmark's handlers, written once and served twice: by Gridiron (workerd, through the
 * Workers SDK) and by the Node SDK's HTTP/2 endpoint. Both SDKs export the same API; `prefix`
 * keeps the two sets of service names apart in one restate-server.
 */
export function benchServices(restate: typeof Restate, prefix: string) {
  const greeter = restate.service({
    name: `${prefix}greeter`,
    handlers: {
      greet: async (_ctx: Restate.Context, name?: string) => `Hello, ${name || "World"}!`,
    },
  });

  const counter = restate.object({
    name: `${prefix}counter`,
    handlers: {
      add: async (ctx: Restate.ObjectContext) => {
        const count = ((await ctx.get<number>("count")) ?? 0) + 1;
        ctx.set("count", count);
        return count;
      },
    },
  });

  const steps = restate.service({
    name: `${prefix}steps`,
    handlers: {
      /** `n` journaled steps in a row, like a small workflow. */
      run: async (ctx: Restate.Context, n: number) => {
        let total = 0;
        for (let i = 0; i < n; i++) total += await ctx.run(`step ${i}`, () => i);
        return total;
      },
    },
  });

  const front = restate.service({
    name: `${prefix}front`,
    handlers: {
      /** A call chain: this service calls the greeter and returns its answer. */
      greet: async (ctx: Restate.Context, name?: string) => ctx.serviceClient(greeter).greet(name),
    },
  });

  return [greeter, counter, steps, front];
}
