import * as restate from "@restatedev/restate-sdk-cloudflare-workers/fetch";
import { counterObject, pingService } from "../deploy-services.ts";

// Set per build with wrangler's --define: the counter taking the load, or the small service every
// other bundle serves. The benches copy the ping build once per bundle and version and replace
// the placeholders, so each bundle registers a service of its own and each version says which it is.
declare const COUNTER: boolean;

// The Workers SDK exports the same API as the Node SDK, but from its own copy of the type
// declarations, which TypeScript treats as different types; the cast joins the two.
const sdk = restate as unknown as typeof import("@restatedev/restate-sdk");
const service = COUNTER ? counterObject(sdk, "counter") : pingService(sdk, "BENCH_SERVICE_NAME", "BENCH_VERSION");

// Bidirectional, as the demos are and as the Node SDK serves over HTTP/2.
export default { fetch: restate.createEndpointHandler({ services: [service], bidirectional: true }) };
