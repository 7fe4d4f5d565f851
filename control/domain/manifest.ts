import { z } from "zod";
import { BundleError } from "./errors.ts";
import { ProtocolMode } from "./protocol-mode.ts";

/**
 * A build's endpoint manifest, as the proof read it. The live router answers restate-server's
 * discovery with this record instead of asking the build again, so Restate registers exactly the
 * services the ownership check saw: a build cannot show Restate another face than the proof's.
 */

/** A manifest as Restate is shown it: its content type and its JSON, parsed and written again. */
export interface RecordedManifest {
  contentType: string;
  body: string;
}

/** Far above any real manifest (the demo's are under 2 KiB), and it is kept in Restate's state. */
export const MAX_MANIFEST_BYTES = 256 * 1024;

const CONTENT_TYPE = /^application\/vnd\.restate\.endpointmanifest\.v\d+\+json$/;

/** What Gridiron reads of a manifest: its services, and how Restate will talk to the build. */
const Manifest = z.object({
  protocolMode: ProtocolMode,
  services: z.array(z.object({ name: z.string() })),
});
export type Manifest = z.infer<typeof Manifest>;

export interface ProvedManifest extends Manifest {
  recorded: RecordedManifest;
}

/**
 * Reads a discovery answer. The JSON is parsed once and written again, so a trick of the text
 * (a duplicated key, say) cannot mean one thing to Gridiron and another to restate-server.
 */
export function readManifest(body: string, contentType: string): ProvedManifest {
  if (!CONTENT_TYPE.test(contentType)) {
    throw new BundleError(`the build's discovery answered the content type "${contentType.slice(0, 100)}"`);
  }
  if (Buffer.byteLength(body) > MAX_MANIFEST_BYTES) {
    throw new BundleError(`the build's endpoint manifest is over ${MAX_MANIFEST_BYTES / 1024} KiB`);
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new BundleError("the build's endpoint manifest is not JSON");
  }
  const parsed = Manifest.safeParse(json);
  if (!parsed.success) {
    throw new BundleError(`the build's endpoint manifest is malformed: ${z.prettifyError(parsed.error)}`);
  }
  return { ...parsed.data, recorded: { contentType, body: JSON.stringify(json) } };
}

/** What a recorded manifest declares: its services, in its order, and how Restate will talk to the build. */
export function declaredBy(recorded: RecordedManifest): { services: string[]; protocolMode: ProtocolMode } {
  const { services, protocolMode } = readManifest(recorded.body, recorded.contentType);
  return { services: services.map((s) => s.name), protocolMode };
}

/** How the services Restate registered differ from those the proof read; undefined if not at all. */
export function registrationDifference(proved: string[], registered: string[]): string | undefined {
  const extra = registered.filter((s) => !proved.includes(s));
  const missing = proved.filter((s) => !registered.includes(s));
  if (!extra.length && !missing.length) return undefined;
  const list = (names: string[]) => names.map((n) => `"${n}"`).join(", ");
  return [
    extra.length ? `Restate registered ${list(extra)}, which the proof did not see` : "",
    missing.length ? `Restate did not register ${list(missing)}` : "",
  ]
    .filter(Boolean)
    .join("; ");
}
