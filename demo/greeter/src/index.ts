import * as restate from "@restatedev/restate-sdk-cloudflare-workers/fetch";

declare const GREETING: string;

const greetingFor = (name?: string) =>
  `${GREETING}, ${name || "World"}! Greetings from a workerd isolate behind Restate.`;

/** The bundle's secrets and vars: the Worker Loader hands them to the SDK as the first extra arg. */
const envOf = (ctx: restate.Context) => (ctx.request().extraArgs[0] ?? {}) as { SIGNING_KEY?: string };

/** Hex HMAC-SHA256 of `text` with `key`: a secret used without ever being shown. */
async function hmac(key: string, text: string): Promise<string> {
  const encoder = new TextEncoder();
  const imported = await crypto.subtle.importKey("raw", encoder.encode(key), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const signature = await crypto.subtle.sign("HMAC", imported, encoder.encode(text));
  return [...new Uint8Array(signature)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const greeter = restate.service({
  name: "greeter",
  handlers: {
    greet: async (_ctx: restate.Context, name?: string) => greetingFor(name),
    /** The greeting, signed with the bundle's secret SIGNING_KEY (`gridiron secret put`). */
    signed: async (ctx: restate.Context, name?: string) => {
      const key = envOf(ctx).SIGNING_KEY;
      if (!key)
        throw new restate.TerminalError(
          "greeter has no SIGNING_KEY: `npx gridiron secret put SIGNING_KEY --bundle greeter`",
          { errorCode: 412 },
        );
      const greeting = greetingFor(name);
      return { greeting, signature: await hmac(key, greeting) };
    },
  },
});

export default { fetch: restate.createEndpointHandler({ services: [greeter], bidirectional: true }) };
