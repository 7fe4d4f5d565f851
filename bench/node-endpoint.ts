import { createServer } from "node:http2";
import * as restate from "@restatedev/restate-sdk";
import { benchServices } from "./services.ts";

/** The benchmark services on the Node SDK's HTTP/2 endpoint, the usual way to run Restate services. */
const port = Number(process.argv[2]);
createServer(restate.createEndpointHandler({ services: benchServices(restate, "node_") })).listen(
  port,
  "127.0.0.1",
  () => console.log(`listening on ${port}`),
);
