// @ts-check
// What the tail worker (tail.js) and the node's log collector (control/logs/) agree on. Loaded
// into workerd beside tail.js and imported by Node, so each fact has one source.

/** A line longer than this is cut, and the cut is marked with how much was left out. */
export const MAX_LINE_CHARS = 4096;
/** The Restate SDK's invoke path ends .../invoke/{service}/{handler}. */
export const INVOKE_SEGMENT = "invoke";
/**
 * The Restate SDK logs this when a build's endpoint is created. Gridiron's router checks Restate's
 * signature on every request before a build sees it (identity.js), so the warning is dropped.
 */
export const SIGNATURE_WARNING = "Accepting requests without validating request signatures";
/** The Restate SDK logs this (at WARN) when a handler throws, terminal or not: the attempt failed. */
export const ATTEMPT_ERROR_LINE = "Error when processing a Restate context operation.";
/** Where the tail worker posts its batches on the collector's socket. */
export const BATCH_PATH = "/batch";
