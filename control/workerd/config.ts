import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Config, serializeConfig, Worker_Binding_CryptoKey_Usage } from "miniflare";
import type { Build } from "../bundle.ts";
import { DEFAULT_COMPATIBILITY_DATE } from "../bundle.ts";
import { identityPublicKeyBytes } from "../request-identity.ts";
import { type SecretsPrivateKey, secretsPrivateKeys } from "../secrets-key.ts";
import type { Settings } from "../settings.ts";
import { ROUTES_FILE } from "./router/protocol.js";

/** workerd's config as typed data, and the files (config, routes file) that make it serve builds. */

const ROUTER = "router";
const BUNDLES = "bundles";
const ROUTES = "routes";
/** The router's modules (in router/), main first, by the names they import each other under. */
const ROUTER_MODULES = ["router.js", "identity.js", "protocol.js", "secrets.js", "split.js"];

/**
 * The router's code, Restate's request identity public key (raw, base64url) it checks against,
 * and the private keys it opens bundles' secrets with, the current one first.
 */
export interface Router {
  modules: { name: string; esModule: string }[];
  identityKey: string;
  secretsKeys: SecretsPrivateKey[];
}

/**
 * Who answers a build's discovery: the build itself (only in a proof, which reads its manifest),
 * or the router, from the manifest the proof recorded (every live workerd: see manifest.ts).
 */
export type Discovery = "build" | "recorded";

/** Where a workerd listens, where its routes file is, and who answers discovery. */
export interface Placement {
  routesDir: string;
  address: string;
  discovery: Discovery;
}

export function serviceName(build: Pick<Build, "name" | "buildId">): string {
  return `${build.name}/${build.buildId}`;
}

/**
 * A fixed config: the router reads the bundles dir (read-only) and compiles each build that the
 * routes file in `routesDir` lists through the Worker Loader on first use, so deploys change
 * files, never this config. The live workerd's routes file is in the bundles dir; a proof's is in
 * a dir of its own and lists only the build being proved.
 */
export function loaderConfig(bundlesDir: string, placement: Placement, router: Router): Config {
  return {
    services: [
      {
        name: ROUTER,
        worker: {
          compatibilityDate: DEFAULT_COMPATIBILITY_DATE,
          modules: router.modules,
          bindings: [
            { name: "RESTATE_IDENTITY_KEY", text: router.identityKey },
            { name: "DISCOVERY", text: placement.discovery },
            { name: "LOADER", workerLoader: { id: "builds" } },
            { name: "BUNDLES", service: { name: BUNDLES } },
            { name: "ROUTES", service: { name: ROUTES } },
            ...secretsKeyBindings(router.secretsKeys),
          ],
        },
      },
      { name: BUNDLES, disk: { path: bundlesDir, writable: false } },
      { name: ROUTES, disk: { path: placement.routesDir, writable: false } },
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
 * SECRETS_KEY_IDS lists the keys' ids; SECRETS_KEY_{i} is the key with the i-th id. Not
 * extractable: the router can unwrap with them, but no code can read them back.
 */
function secretsKeyBindings(keys: SecretsPrivateKey[]) {
  return [
    { name: "SECRETS_KEY_IDS", text: JSON.stringify(keys.map((key) => key.kid)) },
    ...keys.map((key, i) => ({
      name: `SECRETS_KEY_${i}`,
      cryptoKey: {
        pkcs8: key.pem,
        algorithm: { json: JSON.stringify({ name: "RSA-OAEP", hash: "SHA-256" }) },
        extractable: false,
        usages: [Worker_Binding_CryptoKey_Usage.UNWRAP_KEY],
      },
    })),
  ];
}

/** The router, checking requests against this mesh's request identity key. */
export async function readRouter(settings: Settings): Promise<Router> {
  const read = async (name: string) => ({
    name,
    esModule: await readFile(new URL(`./router/${name}`, import.meta.url), "utf8"),
  });
  return {
    modules: await Promise.all(ROUTER_MODULES.map(read)),
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

/** Writes a config for a router placed as `placement` says. */
export async function writeWorkerdConfig(settings: Settings, path: string, placement: Placement): Promise<void> {
  const config = loaderConfig(settings.bundlesDir, placement, await readRouter(settings));
  await writeAtomically(path, serializeConfig(config));
}

export function writeRoutes(dir: string, builds: Build[]): Promise<void> {
  return writeAtomically(join(dir, ROUTES_FILE), `${JSON.stringify({ builds }, null, 2)}\n`);
}

/**
 * The live workerd's config, written at every start so a changed port or key takes effect. Its
 * routes file is in the bundles dir; the node agent rewrites only that (writeRoutes) and tells the
 * router.
 */
export function writeLiveConfig(settings: Settings): Promise<void> {
  const address = `${settings.internalBind}:${settings.ports.workerd}`;
  return writeWorkerdConfig(settings, settings.workerdConfigPath, {
    routesDir: settings.bundlesDir,
    address,
    discovery: "recorded",
  });
}
