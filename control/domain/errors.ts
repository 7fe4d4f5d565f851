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
