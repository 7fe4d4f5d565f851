import * as restate from "@restatedev/restate-sdk-cloudflare-workers/fetch";
import { benchServices } from "../services.ts";

// The Workers SDK exports the same API as the Node SDK; only the endpoint differs.
const services = benchServices(restate as unknown as typeof import("@restatedev/restate-sdk"), "gw_");

export default { fetch: restate.createEndpointHandler({ services }) };
