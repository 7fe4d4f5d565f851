import * as restate from "@restatedev/restate-sdk";

/**
 * A problem the caller must fix (a bad bundle, a refused name, a missing credential): retrying
 * cannot help. `status` is the HTTP-like code the caller sees.
 */
export class UserError extends Error {
  readonly status: number;

  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

/** A problem with the bundle the user pointed at. */
export class BundleError extends UserError {}

/**
 * The one error policy of Gridiron's Restate objects (their `asTerminalError` option): a
 * UserError thrown anywhere, in a handler or inside `ctx.run`, ends the call with a terminal
 * error carrying its status; anything else is retried by Restate.
 */
export function asTerminalError(error: unknown): restate.TerminalError | undefined {
  if (error instanceof UserError) return new restate.TerminalError(error.message, { errorCode: error.status });
  return undefined;
}
