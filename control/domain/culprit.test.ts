import { describe, expect, test } from "vitest";
import { atCalm, atKill, type CellWatch, type Finding } from "./culprit.ts";

const QUIET = 20_000;

/** Plays a cell's history: at each kill, the bundles in it; "calm" is a calm spell of QUIET. */
function play(events: (string[] | "calm")[]): Finding[] {
  let watch: CellWatch = {};
  let now = 0;
  const findings: Finding[] = [];
  for (const event of events) {
    now += event === "calm" ? QUIET : 5_000;
    const step = event === "calm" ? atCalm(watch, now, QUIET) : atKill(watch, event, now, QUIET);
    watch = step.watch;
    findings.push(step.finding);
  }
  return findings;
}

describe("finding the bundle that hangs a cell", () => {
  test("a bundle alone in its cell is the culprit at the second kill, not the first", () => {
    expect(play([["hog"], ["hog"]])).toEqual([{ kind: "none" }, { kind: "culprit", bundle: "hog" }]);
  });

  test("two kills far apart are two flukes, not a hunt", () => {
    let watch: CellWatch = atKill({}, ["hog"], 0, QUIET).watch;
    const later = atKill(watch, ["hog"], QUIET + 1, QUIET);
    expect(later.finding).toEqual({ kind: "none" });
    watch = later.watch;
    expect(atKill(watch, ["hog"], QUIET + 2, QUIET).finding).toEqual({ kind: "culprit", bundle: "hog" });
  });

  test("a culprit among the running half is found at the next kill; the other half is held meanwhile", () => {
    const cell = ["counter", "greeter", "hog", "orders"];
    // Sorted: counter and greeter run, hog and orders are held; the culprit is counter, so the
    // cell hangs again, then again while counter runs as the one suspect left.
    expect(play([cell, cell, cell, cell])).toEqual([
      { kind: "none" },
      { kind: "hold", held: ["hog", "orders"] },
      { kind: "hold", held: ["greeter"] },
      { kind: "culprit", bundle: "counter" },
    ]);
  });

  test("a culprit among the held is found after a calm spell releases it", () => {
    const cell = ["counter", "greeter", "hog"];
    expect(play([cell, cell, "calm", cell])).toEqual([
      { kind: "none" },
      { kind: "hold", held: ["hog"] },
      // counter and greeter ran calm: the hog is the one suspect left, and runs alone as one.
      { kind: "hold", held: [] },
      { kind: "culprit", bundle: "hog" },
    ]);
  });

  test("the held half is split again when it is released", () => {
    const cell = ["a", "b", "c", "d", "e"];
    expect(play([cell, cell, "calm", cell, "calm", cell])).toEqual([
      { kind: "none" },
      { kind: "hold", held: ["d", "e"] },
      { kind: "hold", held: ["e"] },
      { kind: "culprit", bundle: "d" },
      { kind: "none" },
      { kind: "none" },
    ]);
  });

  test("a calm spell with nobody held ends the hunt without a culprit", () => {
    const cell = ["counter", "hog"];
    const findings = play([cell, cell, "calm", "calm", cell]);
    expect(findings).toEqual([
      { kind: "none" },
      { kind: "hold", held: ["hog"] },
      { kind: "hold", held: [] },
      { kind: "hold", held: [] },
      // A kill after the hunt ended starts counting again.
      { kind: "none" },
    ]);
  });

  test("suspects that left the cell are not held; if none ran, every bundle present is a suspect again", () => {
    let step = atKill({}, ["a", "b"], 0, QUIET);
    step = atKill(step.watch, ["a", "b"], 1, QUIET);
    expect(step.finding).toEqual({ kind: "hold", held: ["b"] });
    // a was pruned; c arrived: a kill now puts b and c under suspicion.
    step = atKill(step.watch, ["b", "c"], 2, QUIET);
    expect(step.finding).toEqual({ kind: "hold", held: ["c"] });
  });

  test("a calm poll before the spell is over changes nothing", () => {
    const step = atKill(atKill({}, ["a", "b"], 0, QUIET).watch, ["a", "b"], 1, QUIET);
    expect(atCalm(step.watch, QUIET, QUIET)).toEqual({ watch: step.watch, finding: { kind: "none" } });
  });
});
