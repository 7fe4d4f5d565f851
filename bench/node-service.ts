import { createServer } from "node:http2";
import * as restate from "@restatedev/restate-sdk";
import { counterObject, pingService } from "./deploy-services.ts";

/**
 * One service of `npm run bench:density` or `bench:deploy` on a Node SDK HTTP/2 endpoint of its own, as a Restate
 * user without Gridiron runs it: `node bench/node-service.ts PORT counter|ping NAME [VERSION]`. It tells its
 * parent over IPC once it listens, so the parent registers it as soon as Restate can discover it.
 */
const [port, kind, name = "", version = ""] = process.argv.slice(2);
const service = kind === "counter" ? counterObject(restate, name) : pingService(restate, name, version);
createServer(restate.createEndpointHandler({ services: [service] })).listen(Number(port), "127.0.0.1", () =>
  process.send?.("listening"),
);
