/**
 * The names of the exclusive handlers admin gates hand their calls to (admin-gate.ts). Apart from
 * the gate itself, so the CLI and the dashboard can read them without loading the Restate SDK.
 */

const LOCKED = "Locked";

/** The exclusive handler, out of the ingress's reach, that the admin gate named `handler` calls. */
export const lockedHandler = (handler: string) => `${handler}${LOCKED}`;

/** The gate whose locked handler `handler` is, if it is one (the inverse of `lockedHandler`). */
export const gateOf = (handler: string) => (handler.endsWith(LOCKED) ? handler.slice(0, -LOCKED.length) : undefined);
