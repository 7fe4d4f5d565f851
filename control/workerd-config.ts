import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Config, serializeConfig, type Worker_Binding, type Worker_Module } from "miniflare";
import { type Build, DEFAULT_COMPATIBILITY_DATE } from "./bundle.ts";
import { buildDir } from "./bundle-store.ts";
import { identityPublicKeyBytes } from "./request-identity.ts";
import type { Settings } from "./settings.ts";

/** A live build with its module contents read from the bundles dir. */
export interface LoadedBuild extends Build {
  moduleContents: Map<string, Uint8Array>;
}

/** The JSON file beside the builds that lists the live ones; the loader router reads it. */
export const ROUTES_FILE = "routes.json";

const ROUTER = "router";
const BUNDLES = "bundles";
const ROUTES = "routes";
const STATIC_ROUTER = new URL("./router-static.js", import.meta.url);
const LOADER_ROUTER = new URL("./router-loader.js", import.meta.url);
const ROUTER_IDENTITY = new URL("./router-identity.js", import.meta.url);

/** A router's code, and Restate's request identity public key (raw, base64url) it checks against. */
export interface Router {
  main: string;
  identity: string;
  identityKey: string;
}

function routerWorker(router: Router, bindings: Worker_Binding[]) {
  return {
    compatibilityDate: DEFAULT_COMPATIBILITY_DATE,
    modules: [
      { name: "router.js", esModule: router.main },
      { name: "identity.js", esModule: router.identity },
    ],
    bindings: [{ name: "RESTATE_IDENTITY_KEY", text: router.identityKey }, ...bindings],
  };
}

export function serviceName(build: Pick<Build, "name" | "buildId">): string {
  return `${build.name}/${build.buildId}`;
}

/**
 * Every build compiled at start: one service per build, and a router on the socket with a
 * service binding per build, named like the service. A new build needs a restart.
 */
export function staticConfig(builds: LoadedBuild[], address: string, router: Router): Config {
  return {
    services: [
      {
        name: ROUTER,
        worker: routerWorker(
          router,
          builds.map((build) => ({ name: serviceName(build), service: { name: serviceName(build) } })),
        ),
      },
      ...builds.map((build) => ({
        name: serviceName(build),
        worker: {
          compatibilityDate: build.compatibilityDate,
          compatibilityFlags: build.compatibilityFlags,
          modules: orderModules(build).map((module) => toWorkerdModule(module.name, module.type, build)),
        },
      })),
    ],
    sockets: [{ name: "http", address, http: {}, service: { name: ROUTER } }],
  };
}

/**
 * A fixed config: the router reads the bundles dir (read-only) and compiles each build that
 * `routes.json` in `routesDir` lists through the Worker Loader on first use, so deploys change
 * files, never this config. The live workerd's routes.json is in the bundles dir; a proof's is in
 * a dir of its own and lists only the build being proved.
 */
export function loaderConfig(dirs: { bundles: string; routes: string }, address: string, router: Router): Config {
  return {
    services: [
      {
        name: ROUTER,
        worker: routerWorker(router, [
          { name: "LOADER", workerLoader: { id: "builds" } },
          { name: "BUNDLES", service: { name: BUNDLES } },
          { name: "ROUTES", service: { name: ROUTES } },
        ]),
      },
      { name: BUNDLES, disk: { path: dirs.bundles, writable: false } },
      { name: ROUTES, disk: { path: dirs.routes, writable: false } },
    ],
    sockets: [
      { name: "http", address, http: {}, service: { name: ROUTER } },
      // A port of this workerd's own, so a supervisor can tell when a new workerd sharing the
      // http socket with an old one is ready (--socket-addr probe=... picks it).
      { name: "probe", address: "127.0.0.1:0", http: {}, service: { name: ROUTER } },
    ],
  };
}

/** workerd takes the first module as the main one. */
function orderModules(build: Build) {
  return [...build.modules].sort((a, b) => Number(b.name === build.mainModule) - Number(a.name === build.mainModule));
}

function toWorkerdModule(name: string, type: Build["modules"][number]["type"], build: LoadedBuild): Worker_Module {
  const bytes = build.moduleContents.get(name);
  if (!bytes) throw new Error(`module ${name} of ${serviceName(build)} was not loaded`);
  const text = () => new TextDecoder().decode(bytes);
  switch (type) {
    case "esModule":
      return { name, esModule: text() };
    case "commonJsModule":
      return { name, commonJsModule: text() };
    case "text":
      return { name, text: text() };
    case "json":
      return { name, json: text() };
    case "wasm":
      return { name, wasm: bytes };
    case "data":
      return { name, data: bytes };
  }
}

export async function loadBuild(dir: string, build: Build): Promise<LoadedBuild> {
  const moduleContents = new Map<string, Uint8Array>();
  for (const module of build.modules) moduleContents.set(module.name, await readFile(join(dir, module.name)));
  return { ...build, moduleContents };
}

/** The router for `mode`, checking requests against this mesh's request identity key. */
export async function readRouter(settings: Settings, mode: Settings["workerdReload"]): Promise<Router> {
  return {
    main: await readFile(mode === "loader" ? LOADER_ROUTER : STATIC_ROUTER, "utf8"),
    identity: await readFile(ROUTER_IDENTITY, "utf8"),
    identityKey: (await identityPublicKeyBytes(settings)).toString("base64url"),
  };
}

/** Writes beside the target and renames, so a reader never sees a half-written file. */
async function writeAtomically(path: string, content: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.next`, content);
  await rename(`${path}.next`, path);
}

export function writeWorkerdConfig(path: string, config: Config): Promise<void> {
  return writeAtomically(path, serializeConfig(config));
}

export function writeRoutes(bundlesDir: string, builds: Build[]): Promise<void> {
  return writeAtomically(join(bundlesDir, ROUTES_FILE), `${JSON.stringify({ builds }, null, 2)}\n`);
}

export async function readRoutes(bundlesDir: string): Promise<Build[]> {
  const text = await readFile(join(bundlesDir, ROUTES_FILE), "utf8").catch(() => undefined);
  return text ? (JSON.parse(text) as { builds: Build[] }).builds : [];
}

/**
 * Makes the files on disk serve `builds`: routes.json always, and in restart mode a config that
 * compiles every build (which takes effect on workerd's next start).
 */
export async function writeLiveConfig(settings: Settings, builds: Build[]): Promise<void> {
  await writeRoutes(settings.bundlesDir, builds);
  const address = `${settings.internalBind}:${settings.ports.workerd}`;
  if (settings.workerdReload === "loader") {
    const router = await readRouter(settings, "loader");
    const dirs = { bundles: settings.bundlesDir, routes: settings.bundlesDir };
    await writeWorkerdConfig(settings.workerdConfigPath, loaderConfig(dirs, address, router));
    return;
  }
  const loaded = await Promise.all(builds.map((build) => loadBuild(buildDir(settings.bundlesDir, build), build)));
  const router = await readRouter(settings, "restart");
  await writeWorkerdConfig(settings.workerdConfigPath, staticConfig(loaded, address, router));
}
