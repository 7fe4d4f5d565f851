import type { Http2Server, Http2Session } from "node:http2";

/**
 * The HTTP/2 sessions a thread serves, destroyed before the thread ends. Node aborts the whole
 * process, the supervisor with it, when a thread ends while one of its HTTP/2 sessions is
 * receiving (`Assertion failed: onread->IsFunction()`, nodejs/node#38418): seen in a crash test
 * with Restate's sessions to the deployer's thread. A destroyed session is what a crash leaves
 * Restate with, so it retries the calls as it would after one.
 */
const sessions = new Set<Http2Session>();

/** Keeps `server`'s sessions while they are open. */
export function trackSessions(server: Http2Server): void {
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
}

/**
 * Has this thread destroy its sessions however it ends by its own hand: `process.exit` (a stop, a
 * kill it was asked for, a crash point) or an uncaught error. A thread terminated from outside runs
 * none of its code, which is why SupervisedThread.kill asks first.
 */
export function cutSessionsOnEnd(): void {
  process.once("exit", cut);
  process.on("uncaughtExceptionMonitor", cut);
}

function cut(): void {
  for (const session of sessions) session.destroy();
}
