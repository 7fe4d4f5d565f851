import { z } from "zod";
import { buildKey } from "../contracts.ts";
import type { Build } from "./bundle.ts";
import type { RoutedBuild } from "./ownership.ts";

/**
 * Pure: the `routes` object's builds as a node follows them. Every change the object makes counts
 * a revision up, so the deployer can hand a node's agent the one change it just made rather than
 * have it read every routed build back through Restate's ingress (a call and a state read, tens of
 * ms). The agent applies it only on top of the revision right before; anything else it reads.
 */

/** Every routed build, as of a revision of the `routes` object. */
export interface Routes {
  revision: number;
  builds: RoutedBuild[];
}

/** One change the `routes` object made, and the revision it made; neither build when it changed nothing. */
export const RouteChange = z.strictObject({
  revision: z.number().int().nonnegative(),
  /** The build as routed now: added, or recorded again. */
  routed: z
    .custom<RoutedBuild>((value) => typeof value === "object" && value !== null && "buildId" in value)
    .optional(),
  /** The build no longer routed. */
  removed: z.strictObject({ name: z.string(), buildId: z.string() }).optional(),
});
export type RouteChange = z.infer<typeof RouteChange>;

/** The builds after `routed` is routed: in its place if it was routed before, else last. */
export function withRouted(builds: RoutedBuild[], routed: RoutedBuild): RoutedBuild[] {
  const known = builds.some((b) => buildKey(b) === buildKey(routed));
  return known ? builds.map((b) => (buildKey(b) === buildKey(routed) ? routed : b)) : [...builds, routed];
}

/** The builds after `removed` is no longer routed. */
export function withoutRemoved(builds: RoutedBuild[], removed: Pick<Build, "name" | "buildId">): RoutedBuild[] {
  return builds.filter((b) => buildKey(b) !== buildKey(removed));
}

/**
 * What a node following `served` follows after `change`: `served` itself when it is as new or
 * newer (it holds the change, or what came of it since); `served` with the change when that is
 * the very next revision; undefined when it missed a change in between (or knows none): it must
 * read the routes.
 */
export function afterChange(served: Routes | undefined, change: RouteChange): Routes | undefined {
  if (!served) return undefined;
  if (change.revision <= served.revision) return served;
  if (change.revision !== served.revision + 1) return undefined;
  if (change.routed) return { revision: change.revision, builds: withRouted(served.builds, change.routed) };
  if (change.removed) return { revision: change.revision, builds: withoutRemoved(served.builds, change.removed) };
  return undefined;
}
