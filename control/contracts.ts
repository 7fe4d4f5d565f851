import type { Ingress } from "@restatedev/restate-sdk-clients";
import type { ClusterService } from "./cluster/service.ts";
import type { BundlesObject } from "./cluster/store.ts";
import type { Build } from "./domain/bundle.ts";
import type { DeployerObject } from "./objects/deployer.ts";
import type { RoutesObject } from "./objects/routes.ts";

/**
 * What the control plane's parts agree on: the names Restate knows its objects and services by,
 * their keys, a build's key, the typed clients of the objects, and the names of the deployer's
 * journaled steps (which the journal reader and the crash tests name too). Types only are
 * imported, so the CLI and the dashboard load no Restate SDK through here.
 */

/** The virtual object that deploys bundles, keyed by bundle name (objects/deployer.ts). */
export const DEPLOYER = "deployer";
/** The virtual object that records what every node serves (objects/routes.ts). */
export const ROUTES = "routes";
/** The one key of `routes`: what every node's workerd serves. */
export const ROUTES_KEY = "local";
/** The virtual object that stores bundle files on a cluster, keyed by `buildKey` (cluster/store.ts). */
export const BUNDLES = "bundles";
/** The service that answers for the cluster's membership (cluster/service.ts). */
export const CLUSTER = "cluster";

/**
 * The control plane's services and objects, each with the handlers anyone may call through the
 * ingress: every other handler of theirs needs the admin token, and Gridiron's ingress front
 * refuses a call to one without it before Restate sees it (restate/ingress-front.ts). The
 * handlers check the token themselves too; this list only decides what the front lets through.
 */
export const CONTROL_PLANE: ReadonlyMap<string, { keyed: boolean; public: readonly string[] }> = new Map([
  [DEPLOYER, { keyed: true, public: ["status", "secrets", "secretsKey"] }],
  [ROUTES, { keyed: true, public: [] }],
  [BUNDLES, { keyed: true, public: [] }],
  [CLUSTER, { keyed: false, public: ["nodes"] }],
]);

type BuildRef = Pick<Build, "name" | "buildId">;

/**
 * A build's one key, `name@buildId`: the `bundles` object's key, what node agents report they
 * serve, and how messages name a build. Neither part can hold `@` (bundle.ts).
 */
export function buildKey(build: BuildRef): string {
  return `${build.name}@${build.buildId}`;
}

/** The build a `buildKey` names, or undefined when `key` is not one. */
export function parseBuildKey(key: string): BuildRef | undefined {
  const at = key.indexOf("@");
  if (at <= 0 || at === key.length - 1) return undefined;
  return { name: key.slice(0, at), buildId: key.slice(at + 1) };
}

/**
 * Where a build lives, `name/buildId`: the path workerd serves it at (so the uri Restate registers)
 * and its dir under the bundles dir. A path, not a key: `buildKey` names builds everywhere else.
 */
export function buildPath(build: BuildRef): string {
  return `${build.name}/${build.buildId}`;
}

/** The deployer of `bundle`, called through an ingress. */
export function deployerClient(ingress: Ingress, bundle: string) {
  return ingress.objectClient<DeployerObject>({ name: DEPLOYER }, bundle);
}

/** The deployer of `bundle`, sent to (not awaited) through an ingress. */
export function deployerSendClient(ingress: Ingress, bundle: string) {
  return ingress.objectSendClient<DeployerObject>({ name: DEPLOYER }, bundle);
}

/** The `routes` object, called through an ingress. */
export function routesClient(ingress: Ingress) {
  return ingress.objectClient<RoutesObject>({ name: ROUTES }, ROUTES_KEY);
}

/** The stored files of `build`, called through an ingress. */
export function bundlesClient(ingress: Ingress, build: BuildRef) {
  return ingress.objectClient<BundlesObject>({ name: BUNDLES }, buildKey(build));
}

/** The `cluster` service, called through an ingress. */
export function clusterClient(ingress: Ingress) {
  return ingress.serviceClient<ClusterService>({ name: CLUSTER });
}

/** The deployer's journaled steps after which a crash test may end the process (crash-switch.ts). */
export const Step = {
  copyBundle: "copy bundle",
  proveBuild: "prove build",
  routeBuild: "route build",
  unrouteBuild: "unroute build",
  waitForNodes: "wait for every node",
  register: "register with Restate",
  undoRegistration: "undo a registration unlike the proof",
  unregister: "unregister from Restate",
  unregisterSplit: "unregister split from Restate",
} as const;
export type StepName = (typeof Step)[keyof typeof Step];

/** The deployer's calls to `routes`, by `object/handler`, as the steps the README names them. */
export const CALL_STEPS: Record<string, string> = {
  [`${ROUTES}/add`]: Step.routeBuild,
  [`${ROUTES}/remove`]: Step.unrouteBuild,
  [`${ROUTES}/view`]: "look at routes",
};
