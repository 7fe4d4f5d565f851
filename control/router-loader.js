// The one worker on Gridiron's workerd socket when builds are loaded at run time (the default).
// Requests for /{name}/{buildId}/... go to that build unchanged (the Restate SDK matches its paths
// by suffix). A build is compiled through the Worker Loader on its first request, from the files
// in the bundles dir, so a deploy never restarts workerd. Only requests Restate signed reach a
// build (identity.js), and only builds listed in routes.json (on the ROUTES disk) are
// served; the deployer rewrites that file and POSTs /_gridiron/routes to make the router re-read it.
// POST /_gridiron/warm also compiles every live build and answers 422 with the error of one that
// does not load: a supervisor calls it on a fresh workerd before that one takes over from the old,
// so no request waits for a compile, and the deployer's proof calls it on a throwaway workerd. POST
// /_gridiron/drain, on the old one just before its SIGTERM, makes it hold each new request for
// HOLD_MS, so the connections Restate is using are busy, not idle, when it starts draining.

import { identityProblem, refuse } from "./identity.js";

const CONTROL_PREFIX = "/_gridiron/";
const ROUTES_PATH = "/_gridiron/routes";
const WARM_PATH = "/_gridiron/warm";
const DRAIN_PATH = "/_gridiron/drain";
const HOLD_MS = 100;

let draining = false;

// Shared by every request in this isolate, so only plain data: workerd forbids one request to
// use I/O (a response body, a pending fetch) that another started, and a request that finds
// something missing reads it itself.

/** id "name/buildId" -> build record, as routes.json lists them. */
let routes;
/** id -> the WorkerCode the Worker Loader compiles, once read from the bundles dir. */
const code = new Map();

async function readRoutes(env) {
  const response = await env.ROUTES.fetch("http://routes/routes.json");
  if (response.status === 404) return new Map();
  if (!response.ok) throw new Error(`cannot read routes.json: ${response.status}`);
  const { builds } = await response.json();
  return new Map(builds.map((build) => [`${build.name}/${build.buildId}`, build]));
}

const CONTENT = {
  esModule: async (response) => ({ js: await response.text() }),
  commonJsModule: async (response) => ({ cjs: await response.text() }),
  text: async (response) => ({ text: await response.text() }),
  json: async (response) => ({ json: await response.json() }),
  wasm: async (response) => ({ wasm: await response.arrayBuffer() }),
  data: async (response) => ({ data: await response.arrayBuffer() }),
};

async function readBuild(env, id, build) {
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
  };
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname.startsWith(CONTROL_PREFIX)) return control(request, env, pathname);
    let live;
    try {
      live = await liveBuilds(env);
    } catch (error) {
      return new Response(`${error}\n`, { status: 500 });
    }
    if (pathname === "/") return Response.json({ builds: live.size });

    const [, name, buildId] = pathname.split("/");
    const problem = await identityProblem(request, env, `/${name}/${buildId}`);
    if (problem) return refuse(problem);
    const id = `${name}/${buildId}`;
    const build = live.get(id);
    if (!build) return new Response(`no build "${id}" is live on this workerd\n`, { status: 404 });
    if (draining) await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
    return serve(env, id, build, request);
  },
};

async function liveBuilds(env) {
  routes ??= await readRoutes(env);
  return routes;
}

/** The deployer's and supervisor's calls, signed with the same key as Restate's. */
async function control(request, env, pathname) {
  if (request.method !== "POST") return new Response("POST only\n", { status: 405 });
  const problem = await identityProblem(request, env, "");
  if (problem) return refuse(problem);
  switch (pathname) {
    case ROUTES_PATH: {
      routes = await readRoutes(env);
      // A removed build stays compiled (the Worker Loader never unloads), but its code can go.
      for (const id of code.keys()) if (!routes.has(id)) code.delete(id);
      return Response.json({ builds: routes.size });
    }
    case WARM_PATH: {
      routes = await readRoutes(env);
      for (const [id, build] of routes) {
        try {
          await serve(env, id, build, new Request("http://warm/"));
        } catch (error) {
          // A build that does not load: its error is what the deployer reports to the user.
          return new Response(`${id} does not load: ${error?.stack ?? error}\n`, { status: 422 });
        }
      }
      return Response.json({ builds: routes.size });
    }
    case DRAIN_PATH:
      draining = true;
      return Response.json({ draining });
    default:
      return new Response("unknown control path\n", { status: 404 });
  }
}

async function serve(env, id, build, request) {
  if (!code.has(id)) code.set(id, await readBuild(env, id, build));
  return env.LOADER.get(id, async () => code.get(id))
    .getEntrypoint()
    .fetch(request);
}
