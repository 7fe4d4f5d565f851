import { BUNDLES, CLUSTER, DEPLOYER, ROUTES } from "../contracts.ts";
import type { Build } from "./bundle.ts";
import type { RecordedManifest } from "./manifest.ts";

/**
 * Which bundle owns which Restate service name, as pure rules over the `routes` object's state.
 * Restate routes a call by service name alone, to the latest deployment declaring it, so a bundle
 * that declared another's service (or the control plane's) would take over its calls and state.
 * A name belongs to one bundle: the first whose routed build declares it, until no routed build of
 * that bundle declares it any more, or another bundle takes it over explicitly.
 */

/** The control plane's own services; any name starting with `gridiron` is kept for it too. */
const CONTROL_PLANE_SERVICES = [DEPLOYER, ROUTES, BUNDLES, CLUSTER];
const RESERVED_PREFIX = "gridiron";

/** A build that workerd serves, with the services its manifest declares. */
export interface RoutedBuild extends Build {
  services: string[];
  /** The manifest its proof read, which the live router shows Restate (absent in older routes). */
  manifest?: RecordedManifest;
  /** The cell that serves it on every node (placement.ts); absent for builds routed before cells: 0. */
  cell?: number;
  /**
   * Why the routers refuse its calls (503), if they do: the build hung its cell alone, and its
   * bundle is quarantined (culprit.ts). Until it is pruned.
   */
  refused?: string;
}

/** Service name -> the bundle that owns it. */
export type Owners = Record<string, string>;

export interface TakenOver {
  service: string;
  from: string;
}

export type Claim = { owners: Owners; takenOver: TakenOver[] } | { error: string };

export function reservedProblem(service: string): string | undefined {
  const lower = service.toLowerCase();
  if (CONTROL_PLANE_SERVICES.includes(lower) || lower.startsWith(RESERVED_PREFIX)) {
    return `service "${service}" is reserved for Gridiron's control plane; give the service another name`;
  }
  return undefined;
}

/**
 * Claims every service `build` declares for its bundle. A service another bundle owns is refused,
 * naming the owner, unless `takeOver` lists it; reserved names are always refused.
 */
export function claim(owners: Owners, routed: RoutedBuild[], build: RoutedBuild, takeOver: string[]): Claim {
  const next = { ...owners };
  const takenOver: TakenOver[] = [];
  for (const service of build.services) {
    const reserved = reservedProblem(service);
    if (reserved) return { error: reserved };
    const owner = next[service];
    if (owner && owner !== build.name) {
      if (!takeOver.includes(service)) return { error: ownedMessage(service, owner, routed, build.name) };
      takenOver.push({ service, from: owner });
    }
    next[service] = build.name;
  }
  return { owners: next, takenOver };
}

function ownedMessage(service: string, owner: string, routed: RoutedBuild[], claimant: string): string {
  const ownerBuild = routed.findLast((b) => b.name === owner && b.services.includes(service));
  const where = ownerBuild ? `bundle ${owner}, build ${ownerBuild.buildId}` : `bundle ${owner}`;
  return `service "${service}" belongs to ${where}; to move it to bundle ${claimant}, activate with "takeOver": ["${service}"]`;
}

/**
 * Owners once `removed` is no longer routed: a service its bundle owned stays with that bundle while
 * another of its routed builds declares it, else goes back to the bundle with the most recently
 * routed build declaring it (the one it was taken from), else is free.
 */
export function release(owners: Owners, remaining: RoutedBuild[], removed: RoutedBuild): Owners {
  const next = { ...owners };
  for (const service of removed.services) {
    if (next[service] !== removed.name) continue;
    if (remaining.some((b) => b.name === removed.name && b.services.includes(service))) continue;
    const fallback = remaining.findLast((b) => b.services.includes(service));
    if (fallback) next[service] = fallback.name;
    else delete next[service];
  }
  return next;
}
