import { createHash } from "node:crypto";
import { z } from "zod";

/**
 * Which cell (workerd/cells.ts) a bundle's new build goes to. The rule, pure and stable across
 * restarts and nodes:
 * - a quarantined bundle (the watchdog had to kill its invocations) goes to the quarantine cell;
 * - a dedicated bundle goes to the cell it was given (of the cells nobody has for itself, the one
 *   holding the fewest other bundles' builds, the last on a tie), which no other bundle's new
 *   build gets; at least one cell stays for the other bundles;
 * - any other bundle goes to one of the remaining cells by a hash of its name (SHA-256, first 4
 *   bytes, modulo their number), so it lands in the same cell every time.
 * A routed build keeps its cell until it is pruned: only new builds follow a changed rule.
 */

/** What an activation may ask: a cell of the bundle's own, or back among the others (which also lifts a quarantine). */
export const CellRequest = z.enum(["dedicated", "shared"]);
export type CellRequest = z.infer<typeof CellRequest>;

/** The `routes` object's record of the exceptions to the hash. */
export interface CellState {
  /** Bundle -> the cell it has for itself. */
  dedicated: Record<string, number>;
  /** Bundles whose next builds go to the quarantine cell. */
  quarantined: string[];
}

export const NO_EXCEPTIONS: CellState = { dedicated: {}, quarantined: [] };

/** How many cells take bundles (GRIDIRON_CELLS), and the quarantine cell, if there is one. */
export interface CellLayout {
  cells: number;
  quarantineCell: number | undefined;
}

export type Placed = { cell: number; state: CellState } | { error: string };

/** A live build's bundle and cell. */
export interface Occupant {
  name: string;
  cell: number;
}

/**
 * The cell for `bundle`'s next build, and the exceptions after `request` (if any) is applied;
 * `live` is where every live build is.
 */
export function place(
  bundle: string,
  state: CellState,
  layout: CellLayout,
  request?: CellRequest,
  live: Occupant[] = [],
): Placed {
  // Asking for a cell, either kind, is an operator's decision: it lifts a quarantine.
  let next = request === undefined ? state : { ...state, quarantined: state.quarantined.filter((b) => b !== bundle) };
  if (request === "shared") next = lift(next, bundle);
  if (request === "dedicated" && next.dedicated[bundle] === undefined) {
    const dedicated = dedicate(next, bundle, layout, live);
    if ("error" in dedicated) return dedicated;
    next = dedicated;
  }
  if (next.quarantined.includes(bundle) && layout.quarantineCell !== undefined) {
    return { cell: layout.quarantineCell, state: next };
  }
  const own = next.dedicated[bundle];
  if (own !== undefined && own < layout.cells) return { cell: own, state: next };
  const shared = sharedCells(next, layout, bundle);
  return { cell: shared[hashOf(bundle) % shared.length] as number, state: next };
}

/** The state with `bundle` quarantined: its next build goes to the quarantine cell. */
export function quarantine(state: CellState, bundle: string): CellState {
  return state.quarantined.includes(bundle) ? state : { ...state, quarantined: [...state.quarantined, bundle] };
}

/** The bundle whose build a deployment at `uri` is: its path is `/{name}/{buildId}`. */
export function bundleOfUri(uri: string): string | undefined {
  return URL.parse(uri)?.pathname.split("/")[1] || undefined;
}

/** `bundle` neither dedicated nor quarantined. */
function lift(state: CellState, bundle: string): CellState {
  const { [bundle]: _lifted, ...dedicated } = state.dedicated;
  return { dedicated, quarantined: state.quarantined.filter((b) => b !== bundle) };
}

/** Gives `bundle` a cell nobody has for itself, the emptiest of others' builds, keeping one for everyone else. */
function dedicate(
  state: CellState,
  bundle: string,
  layout: CellLayout,
  live: Occupant[],
): CellState | { error: string } {
  const free = sharedCells(state, layout);
  const others = (cell: number) => live.filter((b) => b.cell === cell && b.name !== bundle).length;
  const cell = free.reduce<number | undefined>(
    (best, candidate) => (best === undefined || others(candidate) <= others(best) ? candidate : best),
    undefined,
  );
  if (free.length < 2 || cell === undefined) {
    const taken = Object.keys(state.dedicated);
    return {
      error: `no cell left to dedicate to ${bundle}: ${layout.cells} cell(s)${taken.length ? `, dedicated to ${taken.join(", ")}` : ""}, and one must stay for the other bundles; raise GRIDIRON_CELLS, or deploy a dedicated bundle with --cell shared`,
    };
  }
  return { ...state, dedicated: { ...state.dedicated, [bundle]: cell } };
}

/** The cells no bundle (other than `except`) has for itself; never empty. */
function sharedCells(state: CellState, layout: CellLayout, except?: string): number[] {
  const taken = new Set(
    Object.entries(state.dedicated)
      .filter(([bundle]) => bundle !== except)
      .map(([, cell]) => cell),
  );
  const shared = Array.from({ length: layout.cells }, (_, cell) => cell).filter((cell) => !taken.has(cell));
  return shared.length ? shared : [0];
}

function hashOf(bundle: string): number {
  return createHash("sha256").update(bundle).digest().readUInt32BE(0);
}
