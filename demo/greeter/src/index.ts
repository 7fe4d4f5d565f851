import * as restate from "@restatedev/restate-sdk-cloudflare-workers/fetch";

declare const GREETING: string;

const greeter = restate.service({
  name: "greeter",
  handlers: {
    greet: async (_ctx: restate.Context, name?: string) =>
      `${GREETING}, ${name || "World"}! Greetings from a workerd isolate behind Restate.`,
  },
});

export default { fetch: restate.createEndpointHandler({ services: [greeter], bidirectional: true }) };
