import { announceReady, stopAsked } from "../node/supervisor-ipc.ts";
import { loadSettings } from "../settings.ts";
import { serveDeployer } from "./endpoint.ts";

// The deployer as a thread of the supervisor (node/supervised-thread.ts; under runit it is a
// process of its own, main.ts). The thread has a copy of the supervisor's environment, so it reads
// the same settings. A failure here ends the thread alone, and the supervisor starts it again.
const deployer = await serveDeployer(loadSettings());
announceReady();
await stopAsked();
await deployer.stop();
// Ends this thread, not the supervisor: the server and Restate's connections to it go with it.
process.exit(0);
