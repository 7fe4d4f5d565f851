import * as restate from "@restatedev/restate-sdk-cloudflare-workers/fetch";

// One small service per bundle for `npm run bench:deploy`, which copies this build once per
// bundle and replaces the placeholder name, so each bundle registers a service of its own.
const ping = restate.service({
  name: "BENCH_SERVICE_NAME",
  handlers: { ping: async () => "pong" },
});

export default { fetch: restate.createEndpointHandler({ services: [ping] }) };
