import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import { identityPublicKeyBytes } from "../../credentials/request-identity.ts";
import { type SecretsPrivateKey, secretsPrivateKeys } from "../../credentials/secrets-key.ts";
import { type Build, DEFAULT_COMPATIBILITY_DATE } from "../../domain/bundle.ts";
import type { Settings } from "../../settings.ts";
import { CapnpEnum, workerdConfigFile } from "./capnp-text.ts";
import { cellAddress, cellConfigPath, cellIds, cellOf } from "./cells.ts";
import { ROUTES_FILE } from "./router/protocol.js";

/** workerd's config as typed data, and the files (config, routes file) that make it serve builds. */

const ROUTER = "router";
const BUNDLES = "bundles";
const ROUTES = "routes";
const COLLECTOR = "collector";
/** The router's modules (in router/), main first, by the names they import each other under. */
const ROUTER_MODULES = [
  "router.js",
  "identity.js",
  "base64url.js",
  "protocol.js",
  "secrets.js",
  "split.js",
  "sink.js",
  "logs.js",
];
/** The modules the live router loads into each build to attribute its lines (router/sink.js), by the names they import each other under. */
const ATTRIBUTION_MODULES = ["attribute.js", "install.js", "logs.js"];

/**
 * The part of workerd's config schema (workerd.capnp) Gridiron uses, as typed data. Types, not
 * interfaces, so each is a CapnpValue (an interface has no index signature).
 */
export type WorkerdConfig = {
  v8Flags: string[];
  services: Service[];
  sockets: Socket[];
};
type Service = { name: string } & (
  | { worker: Worker }
  | { disk: { path: string; writable: boolean } }
  | { external: { address: string; http: Record<string, never> } }
);
type Worker = {
  compatibilityDate: string;
  modules: { name: string; esModule: string }[];
  bindings: Binding[];
};
type Binding = { name: string } & (
  | { text: string }
  | { workerLoader: { id: string } }
  | { service: { name: string } }
  | { cryptoKey: { pkcs8: string; algorithm: { json: string }; extractable: boolean; usages: CapnpEnum[] } }
);
type Socket = {
  name: string;
  address: string;
  http: Record<string, never>;
  service: { name: string };
};

/**
 * The router's code, Restate's request identity public key (raw, base64url) it checks against,
 * and the private keys it opens bundles' secrets with, the current one first.
 */
export interface Router {
  modules: { name: string; esModule: string }[];
  /** The modules that attribute lines inside a build: name -> source. */
  attributionModules: Record<string, string>;
  identityKey: string;
  secretsKeys: SecretsPrivateKey[];
}

/**
 * Who answers a build's discovery: the build itself (only in a proof, which reads its manifest),
 * or the router, from the manifest the proof recorded (every live workerd: see manifest.ts).
 */
export type Discovery = "build" | "recorded";

/**
 * With attribution on, builds are loaded behind it (router/sink.js): on the live workerd their
 * batches go to the unix socket of the node's log collector (control/logs/); a proof loads them
 * the same way, so what it proves is what will serve, and drops the batches.
 */
export type Attribution = { collectorSocket: string } | "dropped";

/**
 * Where a workerd listens, where its routes file is, who answers discovery, which cell it is (a
 * cell's router serves only the builds the routes file places in it; a proof's serves its one),
 * and whether builds are loaded with attribution.
 */
export interface Placement {
  routesDir: string;
  address: string;
  discovery: Discovery;
  attribution?: Attribution;
  cell?: number;
}

/**
 * A fixed config: the router reads the bundles dir (read-only) and compiles each build that the
 * routes file in `routesDir` lists through the Worker Loader on first use, so deploys change
 * files, never this config. The live workerd's routes file is in the bundles dir; a proof's is in
 * a dir of its own and lists only the build being proved.
 */
export function loaderConfig(
  bundlesDir: string,
  placement: Placement,
  router: Router,
  v8Flags: string[],
): WorkerdConfig {
  return {
    v8Flags,
    services: [
      {
        name: ROUTER,
        worker: {
          compatibilityDate: DEFAULT_COMPATIBILITY_DATE,
          modules: router.modules,
          bindings: [
            { name: "RESTATE_IDENTITY_KEY", text: router.identityKey },
            { name: "DISCOVERY", text: placement.discovery },
            ...(placement.cell === undefined ? [] : [{ name: "CELL", text: String(placement.cell) }]),
            { name: "LOADER", workerLoader: { id: "builds" } },
            { name: "BUNDLES", service: { name: BUNDLES } },
            { name: "ROUTES", service: { name: ROUTES } },
            ...secretsKeyBindings(router.secretsKeys),
            ...(placement.attribution ? attributionBindings(router, placement.attribution) : []),
          ],
        },
      },
      { name: BUNDLES, disk: { path: bundlesDir, writable: false } },
      { name: ROUTES, disk: { path: placement.routesDir, writable: false } },
      // The node's log collector: an HTTP server on a unix socket in the data dir, served by the
      // node's ops process (logs/collector.ts).
      ...(typeof placement.attribution === "object"
        ? [{ name: COLLECTOR, external: { address: `unix:${placement.attribution.collectorSocket}`, http: {} } }]
        : []),
    ],
    sockets: [
      { name: "http", address: placement.address, http: {}, service: { name: ROUTER } },
      // A port of this workerd's own (it reports which on its control fd), so a supervisor can
      // tell a new workerd sharing the http socket with an old one from the old one.
      { name: "probe", address: "127.0.0.1:0", http: {}, service: { name: ROUTER } },
    ],
  };
}

/**
 * With attribution on, the router loads each build with the attribution modules beside its own
 * and passes its batches on to the collector, if there is one (router/sink.js).
 */
function attributionBindings(router: Router, attribution: Attribution): Binding[] {
  return [
    ...(attribution === "dropped" ? [] : [{ name: "COLLECTOR", service: { name: COLLECTOR } }]),
    { name: "ATTRIBUTION", text: JSON.stringify(router.attributionModules) },
  ];
}

/**
 * SECRETS_KEY_IDS lists the keys' ids; SECRETS_KEY_{i} is the key with the i-th id. Not
 * extractable: the router can unwrap with them, but no code can read them back.
 */
function secretsKeyBindings(keys: SecretsPrivateKey[]): Binding[] {
  return [
    { name: "SECRETS_KEY_IDS", text: JSON.stringify(keys.map((key) => key.kid)) },
    ...keys.map((key, i) => ({
      name: `SECRETS_KEY_${i}`,
      cryptoKey: {
        pkcs8: key.pem,
        algorithm: { json: JSON.stringify({ name: "RSA-OAEP", hash: "SHA-256" }) },
        extractable: false,
        usages: [new CapnpEnum("unwrapKey")],
      },
    })),
  ];
}

/** The router, checking requests against this mesh's request identity key. */
async function readRouter(
  settings: Pick<Settings, "identityKeyPath" | "secretsKeyPath" | "secretsPreviousKeyPath">,
): Promise<Router> {
  const read = async (name: string) => ({
    name,
    esModule: await readFile(new URL(`./router/${name}`, import.meta.url), "utf8"),
  });
  return {
    modules: await Promise.all(ROUTER_MODULES.map(read)),
    attributionModules: Object.fromEntries(
      (await Promise.all(ATTRIBUTION_MODULES.map(read))).map(({ name, esModule }) => [name, esModule]),
    ),
    identityKey: (await identityPublicKeyBytes(settings)).toString("base64url"),
    secretsKeys: await secretsPrivateKeys(settings),
  };
}

/**
 * Writes beside the target and renames, so a reader never sees a half-written file. Owner only:
 * the config holds the secrets key, the routes file sealed secrets.
 */
async function writeAtomically(path: string, content: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await rm(`${path}.next`, { force: true });
  await writeFile(`${path}.next`, content, { mode: 0o600 });
  await rename(`${path}.next`, path);
}

/** What writing a workerd config reads of the settings: where builds are, V8's heap, and the router's keys. */
export type ConfigSettings = Pick<Settings, "bundlesDir" | "workerdSemiSpaceMb" | "workerdFullGc"> &
  Parameters<typeof readRouter>[0];

/**
 * V8's flags for every isolate of a workerd. Under load V8 grows each isolate's young generation
 * to 3 x 16 MB and never gives it back: one service called for 10 s left workerd at 330-370 MB with
 * V8's default and about 200 MB with 1 MB, at about the same calls per second (docs/benchmarks.md).
 * A finished request's native memory (workerd's C++ objects behind its Request, Response and
 * streams) is freed only when a full collection finds its JS wrappers dead, and V8 does not count
 * it towards one; workerd's allocator keeps what it once held. With a young generation's worth of
 * allocation between full collections, 10 services under load held ~220 MB instead of 400-650 MB
 * at the same calls per second; a build keeping ~40 MB of live objects answered a quarter of its
 * calls per second, since each collection marks all of it: GRIDIRON_WORKERD_FULL_GC=false for such.
 */
export function workerdV8Flags(settings: Pick<Settings, "workerdSemiSpaceMb" | "workerdFullGc">): string[] {
  return [
    ...(settings.workerdSemiSpaceMb ? [`--max-semi-space-size=${settings.workerdSemiSpaceMb}`] : []),
    ...(settings.workerdFullGc ? ["--gc-global"] : []),
  ];
}

/** Writes a config for a router placed as `placement` says. */
export async function writeWorkerdConfig(settings: ConfigSettings, path: string, placement: Placement): Promise<void> {
  const config = loaderConfig(settings.bundlesDir, placement, await readRouter(settings), workerdV8Flags(settings));
  await writeAtomically(path, workerdConfigFile(config));
}

export function writeRoutes(dir: string, builds: Build[]): Promise<void> {
  return writeAtomically(join(dir, ROUTES_FILE), `${JSON.stringify({ builds }, null, 2)}\n`);
}

/** The cells the routes file in `dir` places a build in; none before the node agent first wrote it. */
export async function cellsInRoutes(dir: string): Promise<Set<number>> {
  const text = await readFile(join(dir, ROUTES_FILE), "utf8").catch(() => undefined);
  if (text === undefined) return new Set();
  const { builds } = z
    .object({ builds: z.array(z.object({ cell: z.number().int().optional() })) })
    .parse(JSON.parse(text));
  return new Set(builds.map(cellOf));
}

/**
 * Every cell's config, written at every start so a changed port, key or cell count takes effect.
 * They share one routes file in the bundles dir, each serving the builds placed in it; the node
 * agent rewrites only that (writeRoutes) and tells every cell's router.
 */
export async function writeLiveConfig(
  settings: ConfigSettings & Pick<Settings, "cells" | "ports" | "workerdConfigPath" | "logs">,
): Promise<void> {
  for (const cell of cellIds(settings)) {
    await writeWorkerdConfig(settings, cellConfigPath(settings, cell), {
      routesDir: settings.bundlesDir,
      address: cellAddress(settings, cell),
      discovery: "recorded",
      cell,
      ...(settings.logs.attribution ? { attribution: { collectorSocket: settings.logs.socket } } : {}),
    });
  }
}
