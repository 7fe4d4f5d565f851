// @ts-check
// What the router and the code that drives it (router-client.ts, config.ts) agree on. This module
// is loaded into workerd beside router.js and imported by Node, so each fact has one source.

/** Requests under this prefix are the control plane's, not Restate's. */
export const CONTROL_PREFIX = "/_gridiron/";
/** POST: re-read the routes file; answers `{ builds }`, how many builds it lists. */
export const ROUTES_PATH = "/_gridiron/routes";
/**
 * POST: compile every listed build; answers `{ builds }`, or 422 with the error of one that does not
 * load. POST WARM_PATH/{name}/{buildId}: that listed build only (404 if it is not listed).
 */
export const WARM_PATH = "/_gridiron/warm";
/** POST: hold each new request a little, before this workerd is asked to exit. */
export const DRAIN_PATH = "/_gridiron/drain";
/** The JSON file, `{ builds: Build[] }`, that lists the builds a workerd serves. */
export const ROUTES_FILE = "routes.json";
/** The status a warm answers with when a build does not load. */
export const LOAD_FAILED = 422;
