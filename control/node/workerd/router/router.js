// @ts-check
// The one worker on Gridiron's workerd socket. Requests for /{name}/{buildId}/... go to that
// build unchanged (the Restate SDK matches its paths by suffix); requests for a rollout's split,
// /{name}/split~{stable}~{canary}~{percent}/..., go to one of its two builds (split.js). A build is compiled through the
// Worker Loader on its first request, from the files in the bundles dir, so a deploy never
// restarts workerd. Only requests Restate signed reach a build (identity.js), and only builds
// listed in the routes file (on the ROUTES disk) are served. The control paths (protocol.js):
// the node agent (control/node/node-agent.ts) rewrites the routes file and POSTs ROUTES_PATH to make
// the router re-read it.
// WARM_PATH compiles every live build: the deployer's proof calls it on a proof workerd (a fresh
// live workerd that takes over a cell compiles each build on its first call instead);
// WARM_PATH/{name}/{buildId} compiles that one build, which the node agent just routed.
// DRAIN_PATH, on the old one just before its SIGTERM, makes it hold each new request for HOLD_MS,
// so the connections Restate is using are busy, not idle, when it starts draining.

import { identityProblem, refuse } from "./identity.js";
import { CONTROL_PREFIX, DRAIN_PATH, LOAD_FAILED, ROUTES_FILE, ROUTES_PATH, WARM_PATH } from "./protocol.js";
import { openSecrets } from "./secrets.js";
import { withAttribution } from "./sink.js";
import { affinityOf, parseSplit, toCanary } from "./split.js";

/** @import { Build, EgressProps, Env, RoutedBuild, RouterContext, ServedBuild, WorkerCode, WorkerModule } from "./types.ts" */
/** @import { ModuleType } from "../../../domain/bundle.ts" */

const HOLD_MS = 100;
/** How long a held build's request waits to be let through before it is answered 503 (under Restate's inactivity timeout). */
const HELD_WAIT_MS = 30_000;
const HELD_POLL_MS = 200;

let draining = false;

// Shared by every request in this isolate, so only plain data: workerd forbids one request to
// use I/O (a response body, a pending fetch) that another started, and a request that finds
// something missing reads it itself.

/** @type {Map<string, ServedBuild> | undefined} id "name/buildId" -> build record, as the routes file lists them. */
let routes;
/**
 * id -> the code the Worker Loader is to compile, read from the bundles dir ahead of its callback
 * and given up once the loader took it.
 * @type {Map<string, WorkerCode>}
 */
const code = new Map();
/** ids whose code the Worker Loader took: it keeps them compiled, so their code is not read again. @type {Set<string>} */
const compiled = new Set();

/**
 * A split's request as its build sees it: under the build's own path, as a request for that build
 * alone would be (its lines and outcome are the build's, sink.js, what a rollout's analysis judges
 * by). The SDK matches its paths by suffix, so the build answers it the same.
 * @param {Request} request
 * @param {string} id
 * @param {string} prefix
 */
function underBuild(request, id, prefix) {
  const url = new URL(request.url);
  url.pathname = `/${id}${url.pathname.slice(prefix.length)}`;
  return new Request(url, request);
}

/** @param {Env} env */
async function readRoutes(env) {
  const response = await env.ROUTES.fetch(`http://routes/${ROUTES_FILE}`);
  if (response.status === 404) return new Map();
  if (!response.ok) throw new Error(`cannot read ${ROUTES_FILE}: ${response.status}`);
  const { builds } = /** @type {{ builds: ServedBuild[] }} */ (await response.json());
  // A cell serves the builds placed in it (a build routed before cells were: cell 0); a proof's
  // workerd has no cell and serves the one build its routes file lists.
  const mine = env.CELL === undefined ? builds : builds.filter((build) => String(build.cell ?? 0) === env.CELL);
  return new Map(mine.map((build) => [`${build.name}/${build.buildId}`, build]));
}

/** How each kind of module reaches the Worker Loader. @type {Record<ModuleType, (response: Response) => Promise<WorkerModule>>} */
const CONTENT = {
  esModule: async (response) => ({ js: await response.text() }),
  commonJsModule: async (response) => ({ cjs: await response.text() }),
  text: async (response) => ({ text: await response.text() }),
  json: async (response) => ({ json: await response.json() }),
  wasm: async (response) => ({ wasm: await response.arrayBuffer() }),
  data: async (response) => ({ data: await response.arrayBuffer() }),
};

/**
 * @param {Env} env
 * @param {string} id
 * @param {Build} build
 * @returns {Promise<WorkerCode>}
 */
async function readBuild(env, id, build) {
  /** @type {Record<string, WorkerModule>} */
  const modules = {};
  for (const module of build.modules) {
    const response = await env.BUNDLES.fetch(`http://bundles/${id}/${module.name}`);
    if (!response.ok) throw new Error(`module ${module.name} of ${id} is missing: ${response.status}`);
    modules[module.name] = await CONTENT[module.type](response);
  }
  return {
    compatibilityDate: build.compatibilityDate,
    compatibilityFlags: build.compatibilityFlags,
    mainModule: build.mainModule,
    modules,
    // The loader caches a build by id, and vars and secrets' revisions are part of the build id:
    // a change is a new build. Secrets are opened here, the only place their key is.
    ...(build.vars || build.secrets ? { env: { ...build.vars, ...(await secretsOf(env, build)) } } : {}),
  };
}

/**
 * @param {Env} env
 * @param {Build} build
 */
async function secretsOf(env, build) {
  if (!build.secrets) return {};
  /** @type {string[]} */
  const kids = JSON.parse(env.SECRETS_KEY_IDS);
  const keys = new Map(kids.map((kid, i) => [kid, env[`SECRETS_KEY_${i}`]]));
  return await openSecrets(build.name, build.secrets, keys);
}

export { LogSink } from "./sink.js";

export default {
  /**
   * @param {Request} request
   * @param {Env} env
   * @param {RouterContext} ctx
   */
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    if (pathname.startsWith(CONTROL_PREFIX)) return control(request, env, ctx, pathname);
    let live = routes;
    try {
      live ??= await liveBuilds(env);
    } catch (error) {
      return new Response(`${error}\n`, { status: 500 });
    }
    if (pathname === "/") return Response.json({ builds: live.size });

    const [, name, segment = ""] = pathname.split("/");
    const problem = await identityProblem(request, env, `/${name}/${segment}`, pathname);
    if (problem) return refuse(problem);
    const buildId = buildIdFor(segment, request, pathname);
    const id = `${name}/${buildId}`;
    const build = await unlessHeld(id, live.get(id));
    if (!build) return new Response(`no build "${id}" is live on this workerd\n`, { status: 404 });
    // Its code hung this cell alone (culprit.ts), or it is still held. A 503 runs none of it;
    // Restate retries the call with its backoff, and pauses it in the end.
    if (build.refused || build.held) return new Response(`${build.refused ?? build.held}\n`, { status: 503 });
    const answered = env.DISCOVERY === "recorded" ? answeredByRouter(build, pathname) : undefined;
    if (answered) return answered;
    if (draining) await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
    return serve(env, ctx, id, build, buildId === segment ? request : underBuild(request, id, `/${name}/${segment}`));
  },
};

/**
 * What a build with an egress allowlist fetches through (its globalOutbound, see outboundOf): a
 * request to a host the list names goes on from here, to the public internet as the router's
 * own would; any other throws in the build, saying why.
 */
export const EgressGate = {
  /**
   * @param {Request} request
   * @param {unknown} _env
   * @param {{ props: EgressProps }} ctx
   */
  async fetch(request, _env, ctx) {
    const { bundle, allow } = ctx.props;
    const host = new URL(request.url).hostname;
    const allowed = allow.some((pattern) =>
      pattern.startsWith("*.") ? host.endsWith(pattern.slice(1)) : host === pattern,
    );
    if (!allowed) {
      throw new Error(
        `egress refused: bundle ${bundle} may fetch only ${allow.join(", ")}, not ${host} (its egress setting)`,
      );
    }
    return fetch(request);
  },
};

/**
 * Where a build's fetch() may go: absent, as the router's (the public internet); "none", nowhere
 * (workerd throws "This worker is not permitted to access the internet…"); an allowlist, through
 * the gate above.
 * @param {Build} build
 * @param {RouterContext} ctx
 * @returns {Pick<WorkerCode, "globalOutbound">}
 */
function outboundOf(build, ctx) {
  if (!build.egress) return {};
  if (build.egress === "none") return { globalOutbound: null };
  return { globalOutbound: ctx.exports.EgressGate({ props: { bundle: build.name, allow: build.egress.allow } }) };
}

/**
 * What a live router answers itself rather than let the build answer: discovery, from the manifest
 * the proof recorded (manifest.ts), so restate-server never sees a second face of the build; and a
 * call to a service the build did not declare. Paths are read by the same suffix rules as the
 * Restate SDK's, which is what would answer otherwise.
 * @param {RoutedBuild} build
 * @param {string} pathname
 * @returns {Response | undefined}
 */
function answeredByRouter(build, pathname) {
  const fragments = pathname.split("/");
  if (fragments.length >= 3 && fragments.at(-3) === "invoke") {
    const service = fragments.at(-2) ?? "";
    if (build.services.includes(service)) return undefined;
    return new Response(`build ${build.name}/${build.buildId} does not declare service "${service}"\n`, {
      status: 404,
    });
  }
  if (fragments.at(-1) !== "discover") return undefined;
  if (!build.manifest) {
    return new Response(`no manifest was recorded for ${build.name}/${build.buildId}; activate it again\n`, {
      status: 409,
    });
  }
  return new Response(build.manifest.body, { headers: { "content-type": build.manifest.contentType } });
}

/**
 * The build a request to the deployment at `segment` goes to: the build it names, or for a split
 * (split.js) the stable or canary build by the request's key or invocation. A split's discovery
 * is the canary's: both builds have the same shape (the deployer checked), and the canary's
 * handler options are the ones that stay once it is promoted.
 * @param {string} segment
 * @param {Request} request
 * @param {string} pathname
 */
function buildIdFor(segment, request, pathname) {
  const split = parseSplit(segment);
  if (!split) return segment;
  if (pathname.endsWith("/discover")) return split.canary;
  return toCanary(split, affinityOf(request.headers)) ? split.canary : split.stable;
}

/**
 * The build, once it is no longer held (the node agent re-wrote the routes file and told this
 * router), or as it is after HELD_WAIT_MS. A held call waits here rather than fail at once, so
 * Restate's backoff does not grow while the watchdog looks for the culprit, and it runs as soon as
 * its bundle is cleared. Polls the shared routes: one request may not wait on another's promise.
 * @param {string} id
 * @param {ServedBuild | undefined} build
 */
async function unlessHeld(id, build) {
  const deadline = Date.now() + HELD_WAIT_MS;
  let current = build;
  while (current?.held && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, HELD_POLL_MS));
    current = routes?.get(id);
  }
  return current;
}

/** @param {Env} env */
async function liveBuilds(env) {
  routes ??= await readRoutes(env);
  return routes;
}

/**
 * The deployer's and supervisor's calls, signed with the same key as Restate's.
 * @param {Request} request
 * @param {Env} env
 * @param {RouterContext} ctx
 * @param {string} pathname
 */
async function control(request, env, ctx, pathname) {
  if (request.method !== "POST") return new Response("POST only\n", { status: 405 });
  const problem = await identityProblem(request, env, "");
  if (problem) return refuse(problem);
  switch (pathname) {
    case ROUTES_PATH: {
      const live = await readRoutes(env);
      routes = live;
      // A removed build stays compiled (the Worker Loader never unloads), but its code can go.
      for (const id of code.keys()) if (!live.has(id)) code.delete(id);
      return Response.json({ builds: live.size });
    }
    case WARM_PATH:
      routes = await readRoutes(env);
      return warmed(env, ctx, routes, [...routes.keys()]);
    case DRAIN_PATH:
      draining = true;
      return Response.json({ draining });
    default:
      // One build the node agent just routed, compiled before its first call needs it.
      if (pathname.startsWith(`${WARM_PATH}/`)) {
        return warmed(env, ctx, await liveBuilds(env), [pathname.slice(WARM_PATH.length + 1)]);
      }
      return new Response("unknown control path\n", { status: 404 });
  }
}

/**
 * Compiles the builds `ids` of `live` (not the held or refused, whose code must not run), each by
 * a request under its own path, so what it logs while loading is attributed to it.
 * @param {Env} env
 * @param {RouterContext} ctx
 * @param {Map<string, ServedBuild>} live
 * @param {string[]} ids
 */
async function warmed(env, ctx, live, ids) {
  for (const id of ids) {
    const build = live.get(id);
    if (!build) return new Response(`no build "${id}" is live on this workerd\n`, { status: 404 });
    if (build.refused || build.held) continue;
    try {
      await serve(env, ctx, id, build, new Request(`http://warm/${id}/`));
    } catch (error) {
      // A build that does not load: its error is what the deployer reports to the user.
      const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
      return new Response(`${id} does not load: ${detail}\n`, { status: LOAD_FAILED });
    }
  }
  return Response.json({ builds: live.size });
}

/**
 * @param {Env} env
 * @param {RouterContext} ctx
 * @param {string} id
 * @param {Build} build
 * @param {Request} request
 */
async function serve(env, ctx, id, build, request) {
  // Read in this request, ahead of the loader's callback, which may run for another request.
  if (!compiled.has(id) && !code.has(id)) code.set(id, await readBuild(env, id, build));
  return env.LOADER.get(id, async () => {
    // Given up once taken: the loader keeps the build compiled (it never unloads one), and keeping
    // its code here as well cost about 1.3 MB a build (docs/benchmarks.md). Should the loader ask
    // again, the code is read again.
    const loaded = code.get(id) ?? (await readBuild(env, id, build));
    code.delete(id);
    compiled.add(id);
    // The egress gate and the log sink are made where the build is loaded: they are capabilities,
    // not plain data to cache. On the live workerd, every request's lines and outcome are
    // attributed inside the build (sink.js).
    return { ...withAttribution(loaded, build, env, ctx), ...outboundOf(build, ctx) };
  })
    .getEntrypoint()
    .fetch(request);
}
