// @ts-check
// What the attribution inside builds (attribute.js), the router's log sink (sink.js) and the node's
// log collector (control/logs/) agree on. Loaded into workerd (into the router, and into each
// build beside attribute.js) and imported by Node, so each fact has one source.

/** A line longer than this is cut, and the cut is marked with how much was left out. */
export const MAX_LINE_CHARS = 4096;
/** Lines a build's isolate holds for its next flush at most; beyond, they are dropped and counted. */
export const MAX_PENDING_LINES = 20_000;
/** Characters of lines a build's isolate holds for its next flush at most, so one batch stays well under the collector's limit. */
export const MAX_PENDING_CHARS = 8 * 1024 * 1024;
/** The Restate SDK's invoke path ends .../invoke/{service}/{handler}. */
export const INVOKE_SEGMENT = "invoke";
/**
 * The Restate SDK logs this when a build's endpoint is created. Gridiron's router checks Restate's
 * signature on every request before a build sees it (identity.js), so the warning is dropped.
 */
export const SIGNATURE_WARNING = "Accepting requests without validating request signatures";
/** The Restate SDK logs this (at WARN) when a handler throws, terminal or not: the attempt failed. */
export const ATTEMPT_ERROR_LINE = "Error when processing a Restate context operation.";
/** Where the router's sink posts a build's batch on the collector's socket: BATCH_PATH/{bundle}/{buildId}. */
export const BATCH_PATH = "/batch";
/** The name a build's env holds the router's log sink under; the build's own code never sees it. */
export const SINK_BINDING = "GRIDIRON_LOG_SINK";
