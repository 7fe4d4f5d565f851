import * as restate from "@restatedev/restate-sdk-cloudflare-workers/fetch";
import { benchServices } from "../services.ts";

// Set per build with wrangler's --define: the bench builds this bundle twice, bidirectional (as
// the demos are) and in request-response mode (the Workers SDK's default).
declare const PREFIX: string;
declare const BIDIRECTIONAL: boolean;

// The Workers SDK exports the same API as the Node SDK, but from its own copy of the type
// declarations, which TypeScript treats as different types; the cast joins the two.
const services = benchServices(restate as unknown as typeof import("@restatedev/restate-sdk"), PREFIX);

export default { fetch: restate.createEndpointHandler({ services, bidirectional: BIDIRECTIONAL }) };
