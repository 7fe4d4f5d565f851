import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Config, serializeConfig, type Worker_Module } from "miniflare";
import { DEFAULT_COMPATIBILITY_DATE } from "./bundle.ts";
import type { Build } from "./bundle-store.ts";

/** A live build with its module contents read from the bundles dir. */
export interface LoadedBuild extends Build {
  moduleContents: Map<string, Uint8Array>;
}

const ROUTER = "router";
const ROUTER_SOURCE = new URL("./router.js", import.meta.url);

export function serviceName(build: Pick<Build, "name" | "buildId">): string {
  return `${build.name}/${build.buildId}`;
}

/**
 * The workerd config for a set of live builds: one service per build, and a router on the
 * socket with a service binding per build, named like the service.
 */
export function workerdConfig(builds: LoadedBuild[], address: string, router: string): Config {
  return {
    services: [
      {
        name: ROUTER,
        worker: {
          compatibilityDate: DEFAULT_COMPATIBILITY_DATE,
          modules: [{ name: "router.js", esModule: router }],
          bindings: builds.map((build) => ({ name: serviceName(build), service: { name: serviceName(build) } })),
        },
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

/** Writes the binary config atomically, so workerd never starts from a half-written file. */
export async function writeWorkerdConfig(path: string, builds: LoadedBuild[], address: string): Promise<void> {
  const config = serializeConfig(workerdConfig(builds, address, await readFile(ROUTER_SOURCE, "utf8")));
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.next`, config);
  await rename(`${path}.next`, path);
}
