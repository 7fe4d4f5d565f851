import * as restate from "@restatedev/restate-sdk";
import { adminHeaders, adminOnly } from "../credentials/admin-token.ts";
import { lockedHandler } from "../domain/locked-handlers.ts";

/**
 * Refuse before queueing. Restate runs a virtual object's exclusive handlers one call per key at
 * a time and queues every call to them, anonymous or not, before the handler can look at its
 * token: 3,000 refused calls held an admin's deploy up for seconds. So admin calls come in
 * through a gate, a shared handler (it runs at once, whatever holds the key), which checks the
 * token and only then calls the exclusive handler `lockedHandler(handler)` of the same object
 * and key, with the token. That one is `ingressPrivate`, so Restate refuses it from the ingress;
 * tenants' code can still call it through Restate, so it checks the token too (`adminOnly`).
 */
export function adminGate<I, O>(adminToken: string, handler: string, what?: string) {
  const hooks = [adminOnly(adminToken, what)];
  return restate.handlers.object.shared({ hooks }, async (ctx: restate.ObjectSharedContext, input: I): Promise<O> => {
    const output = await ctx.genericCall({
      service: ctx.request().target.service,
      method: lockedHandler(handler),
      key: ctx.key,
      parameter: restate.serde.json.serialize(input),
      headers: adminHeaders(adminToken),
    });
    return restate.serde.json.deserialize(output) as O;
  });
}
