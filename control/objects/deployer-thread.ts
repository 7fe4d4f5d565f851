import { announceReady, endAsked } from "../node/supervisor-ipc.ts";
import { cutSessionsOnEnd } from "../node/thread-sessions.ts";
import { loadSettings } from "../settings.ts";
import { serveDeployer } from "./endpoint.ts";

// The deployer as a thread of the supervisor (node/supervised-thread.ts; under runit it is a
// process of its own, main.ts). The thread has a copy of the supervisor's environment, so it reads
// the same settings. A failure here ends the thread alone, and the supervisor starts it again.
cutSessionsOnEnd();
const deployer = await serveDeployer(loadSettings());
announceReady();
const ending = await endAsked();
if (ending === "stop") await deployer.stop();
// Ends this thread, not the supervisor; killed, with code 1 and nothing cleaned up, as a crash.
process.exit(ending === "stop" ? 0 : 1);
