import * as restate from "@restatedev/restate-sdk-cloudflare-workers/fetch";
import { benchServices } from "../services.ts";

// The Workers SDK exports the same API as the Node SDK, but from its own copy of the type
// declarations, which TypeScript treats as different types; the cast joins the two.
const services = benchServices(restate as unknown as typeof import("@restatedev/restate-sdk"), "gw_");

export default { fetch: restate.createEndpointHandler({ services, bidirectional: true }) };
