import { z } from "zod";

/**
 * How Restate talks to a build, as its endpoint manifest declares. BIDI_STREAM keeps one HTTP
 * exchange open for the whole invocation; REQUEST_RESPONSE ends the exchange at every step that
 * needs an answer from Restate, which then calls again with the journal so far.
 */
export const ProtocolMode = z.enum(["BIDI_STREAM", "REQUEST_RESPONSE"]);
export type ProtocolMode = z.infer<typeof ProtocolMode>;
