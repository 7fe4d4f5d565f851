/**
 * Which bundle hangs a cell, as pure rules over what its watchdog sees: when the watchdog kills the
 * cell's workerd (it stopped answering or grew past its memory limit), and when it has stayed calm.
 * Nothing outside tells which build's code held workerd's one event loop: an invocation stuck
 * behind the culprit looks like it, and a culprit can hide behind a timer whose callback spins
 * while its journal says it waits on Restate. So the watchdog finds the culprit by elimination:
 * - one kill may be a fluke; a second within `quietMs` starts a hunt, every bundle of the cell a
 *   suspect;
 * - the router refuses the calls of half the suspects (they are *held*) while the others run;
 * - a kill while some run: the culprit is among those that ran; a calm `quietMs`: it is among the
 *   held (or it stopped: once nobody is held and it stays calm, the hunt ends without a culprit);
 * - a kill while one suspect alone runs: that bundle is the culprit (the caller quarantines it).
 * The culprit is found after about log2(bundles in the cell) kills and calm spells; bundles that are
 * not suspects are never held, and nothing here kills an invocation.
 */

export interface Hunt {
  /** The bundles one of which hangs the cell, sorted. */
  suspects: string[];
  /** The suspects whose calls the cell refuses meanwhile. */
  held: string[];
  /** When the last kill or step of the hunt was. */
  sinceMs: number;
}

/** What a cell's watchdog remembers between kills. */
export interface CellWatch {
  lastKillMs?: number;
  hunt?: Hunt;
}

export type Finding =
  /** Nothing to change. */
  | { kind: "none" }
  /** Refuse exactly these bundles' calls in the cell from now on (empty: refuse none). */
  | { kind: "hold"; held: string[] }
  /** This bundle hung the cell while the only suspect running: quarantine it. */
  | { kind: "culprit"; bundle: string };

export interface Step {
  watch: CellWatch;
  finding: Finding;
}

/**
 * The cell's workerd was just killed; `bundles` are the bundles with a build serving in it (none
 * refused for good). Called before the kill takes effect, so a hold applies to the workerd that
 * comes next.
 */
export function atKill(watch: CellWatch, bundles: string[], nowMs: number, quietMs: number): Step {
  const present = [...new Set(bundles)].sort();
  const hunt = watch.hunt;
  if (!hunt) {
    const twice = watch.lastKillMs !== undefined && nowMs - watch.lastKillMs < quietMs;
    return twice ? narrow(present, nowMs) : { watch: { lastKillMs: nowMs }, finding: { kind: "none" } };
  }
  const ran = hunt.suspects.filter((bundle) => !hunt.held.includes(bundle) && present.includes(bundle));
  // None of the suspects ran (they were all pruned, say): the culprit is one of the others.
  return narrow(ran.length ? ran : present, nowMs);
}

/** Called on every calm poll of the cell: after `quietMs` without a kill, the culprit is among the held. */
export function atCalm(watch: CellWatch, nowMs: number, quietMs: number): Step {
  const hunt = watch.hunt;
  if (!hunt || nowMs - hunt.sinceMs < quietMs) return { watch, finding: { kind: "none" } };
  if (!hunt.held.length) return { watch: {}, finding: { kind: "hold", held: [] } };
  // The held run again, half of them at a time; a lone one runs by itself until it hangs the cell.
  const held = halfOf(hunt.held);
  return { watch: { hunt: { suspects: hunt.held, held, sinceMs: nowMs } }, finding: { kind: "hold", held } };
}

/** At a kill while `ran` were the suspects running: one is the culprit; more are split in two. */
function narrow(ran: string[], nowMs: number): Step {
  const [alone] = ran;
  if (ran.length === 1 && alone !== undefined) return { watch: {}, finding: { kind: "culprit", bundle: alone } };
  const held = halfOf(ran);
  return { watch: { hunt: { suspects: ran, held, sinceMs: nowMs } }, finding: { kind: "hold", held } };
}

/** The second half of the suspects (the smaller, for an odd number); none of one. */
function halfOf(suspects: string[]): string[] {
  return suspects.length < 2 ? [] : suspects.slice(Math.ceil(suspects.length / 2));
}
