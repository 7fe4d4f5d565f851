import { CONTROL_PLANE } from "../contracts.ts";

/** A handler of the control plane, as a request to Restate's ingress names it. */
export interface ControlPlaneTarget {
  service: string;
  handler: string;
}

/** The ways Restate 1.7's ingress names a call: `/restate/call|send/...`, with or without a scope. */
const VERBS = new Set(["call", "send"]);

/**
 * The control plane's handler a request to Restate's ingress would invoke, read from its path as
 * Restate 1.7 reads it (crates/ingress-http's path parsing): `/{service}/{key}/{handler}[/send]`
 * (no key for a service), `/restate/call|send/{service}/...` and
 * `/restate/scope/{scope}/call|send/{service}/...`; service and handler names are compared as
 * they are, since Restate does not decode them. Undefined for a call to any other service, and for
 * what invokes nothing (attach, output, awakeables, health). Reading more paths as calls than
 * Restate does costs nothing: the front only asks those for the token.
 */
export function controlPlaneTarget(path: string): ControlPlaneTarget | undefined {
  const segments = path.split("?", 1)[0]?.split("/").slice(1) ?? [];
  const named = serviceAt(segments);
  if (named === undefined) return undefined;
  const service = segments[named] as string;
  const shape = CONTROL_PLANE.get(service);
  if (!shape) return undefined;
  return { service, handler: segments[named + (shape.keyed ? 2 : 1)] ?? "" };
}

/** Where in the path the service's name is. */
function serviceAt(segments: string[]): number | undefined {
  if (segments[0] !== "restate") return 0;
  if (VERBS.has(segments[1] ?? "")) return 2;
  if (segments[1] === "scope" && VERBS.has(segments[3] ?? "")) return 4;
  return undefined;
}

/** Whether anyone may call `target` without the admin token. */
export function isPublic(target: ControlPlaneTarget): boolean {
  return CONTROL_PLANE.get(target.service)?.public.includes(target.handler) ?? false;
}
