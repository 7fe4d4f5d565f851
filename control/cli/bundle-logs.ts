import type { Connection } from "./connection.ts";
import { describe } from "./failure.ts";
import { follow, pretty } from "./logs.ts";

/** Ends a tail of a bundle's log lines. */
export type StopTail = () => void;

/**
 * Where `gridiron dev` gets the bundle's log lines as they come: it calls this once it knows the
 * bundle's name, and the returned function when it stops. The local node's live stream, as
 * `gridiron tail` reads it; if it ends (the ops port restarting), dev says so and goes on.
 */
export async function tailBundleLogs(
  connection: Connection,
  bundle: string,
  note: (line: string) => void,
): Promise<StopTail> {
  const stop = new AbortController();
  const url = `${connection.opsUrl}/logs/${encodeURIComponent(bundle)}/tail`;
  follow(url, connection, stop.signal, (item) => {
    if (!("dropped" in item)) note(pretty(item));
  }).catch((error: unknown) => note(`${bundle}'s log lines stopped: ${describe(error)}`));
  return () => stop.abort();
}
