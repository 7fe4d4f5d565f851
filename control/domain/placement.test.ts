import { describe, expect, test } from "vitest";
import { bundleOfUri, type CellState, NO_EXCEPTIONS, place, quarantine } from "./placement.ts";

const layout = { cells: 4, quarantineCell: 4 };

function cellOf(placed: ReturnType<typeof place>): number {
  if ("error" in placed) throw new Error(placed.error);
  return placed.cell;
}

describe("place", () => {
  test("a bundle lands in the same cell every time, and bundles spread over the cells", () => {
    const names = Array.from({ length: 40 }, (_, i) => `bundle-${i}`);
    const cells = names.map((name) => cellOf(place(name, NO_EXCEPTIONS, layout)));
    expect(names.map((name) => cellOf(place(name, NO_EXCEPTIONS, layout)))).toEqual(cells);
    expect(new Set(cells)).toEqual(new Set([0, 1, 2, 3]));
  });

  test("a dedicated bundle gets a cell no other bundle's new build gets, and keeps it", () => {
    const placed = place("hog", NO_EXCEPTIONS, layout, "dedicated");
    if ("error" in placed) throw new Error(placed.error);
    expect(placed.state.dedicated).toEqual({ hog: 3 });
    expect(cellOf(place("hog", placed.state, layout))).toBe(3);
    for (let i = 0; i < 40; i++) expect(cellOf(place(`bundle-${i}`, placed.state, layout))).not.toBe(3);
  });

  test("a dedicated bundle gets the cell holding the fewest other bundles' builds", () => {
    const live = [
      { name: "a", cell: 0 },
      { name: "b", cell: 1 },
      { name: "c", cell: 3 },
      { name: "hog", cell: 2 },
      { name: "d", cell: 2 },
    ];
    const placed = place("hog", NO_EXCEPTIONS, layout, "dedicated", live);
    expect(placed).toMatchObject({ cell: 3, state: { dedicated: { hog: 3 } } });
  });

  test("one cell always stays for the other bundles", () => {
    let state: CellState = NO_EXCEPTIONS;
    for (const bundle of ["a", "b", "c"]) {
      const placed = place(bundle, state, layout, "dedicated");
      if ("error" in placed) throw new Error(placed.error);
      state = placed.state;
    }
    const refused = place("d", state, layout, "dedicated");
    expect(refused).toEqual({ error: expect.stringMatching(/no cell left to dedicate to d: .*raise GRIDIRON_CELLS/) });
    expect(cellOf(place("d", state, layout))).toBe(0);
  });

  test("a quarantined bundle goes to the quarantine cell until an activation asks for a cell", () => {
    const state = quarantine(NO_EXCEPTIONS, "spinner");
    expect(cellOf(place("spinner", state, layout))).toBe(4);
    const shared = place("spinner", state, layout, "shared");
    if ("error" in shared) throw new Error(shared.error);
    expect(shared.state.quarantined).toEqual([]);
    expect(shared.cell).toBe(cellOf(place("spinner", NO_EXCEPTIONS, layout)));
  });

  test("with one cell there is no quarantine cell: a quarantined bundle stays", () => {
    expect(
      cellOf(place("spinner", quarantine(NO_EXCEPTIONS, "spinner"), { cells: 1, quarantineCell: undefined })),
    ).toBe(0);
  });
});

test("bundleOfUri reads the bundle from a build's deployment uri", () => {
  expect(bundleOfUri("http://127.0.0.2:9080/counter/1.0.0-abc")).toBe("counter");
  expect(bundleOfUri("not a uri")).toBeUndefined();
});
