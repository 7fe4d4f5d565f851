import type { Connection } from "./connection.ts";

/** Ends a tail of a bundle's log lines. */
export type StopTail = () => void;

/**
 * Where `gridiron dev` gets the bundle's log lines as they come: it calls this once it knows the
 * bundle's name, and the returned function when it stops. The mesh does not stream a bundle's logs
 * yet (workerd's lines go to the mesh's own output, all bundles together), so for now this says
 * where they are; a per-bundle log stream plugs in here.
 */
export async function tailBundleLogs(
  _connection: Connection,
  bundle: string,
  note: (line: string) => void,
): Promise<StopTail> {
  note(`${bundle}'s log lines are in the mesh's own output (the terminal running \`npm start\`)`);
  return () => {};
}
