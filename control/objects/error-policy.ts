import * as restate from "@restatedev/restate-sdk";
import { UserError } from "../domain/errors.ts";

/**
 * The one error policy of Gridiron's Restate objects (their `asTerminalError` option): a
 * UserError thrown anywhere, in a handler or inside `ctx.run`, ends the call with a terminal
 * error carrying its status; anything else is retried by Restate. Apart from domain/errors.ts so
 * that processes that only throw UserErrors (the supervisor) do not load the SDK.
 */
export function asTerminalError(error: unknown): restate.TerminalError | undefined {
  if (error instanceof UserError) return new restate.TerminalError(error.message, { errorCode: error.status });
  return undefined;
}
