import { expect, test } from "vitest";
import { cellConfigPath, cellCount, cellHost, cellIds, cellUrl, quarantineCell } from "./cells.ts";

test("cells: GRIDIRON_CELLS of them plus a quarantine cell, none beside a single one", () => {
  expect(cellIds({ cells: 2 })).toEqual([0, 1, 2]);
  expect(quarantineCell({ cells: 2 })).toBe(2);
  expect(cellCount({ cells: 1 })).toBe(1);
  expect(quarantineCell({ cells: 1 })).toBeUndefined();
});

test("cell 0 is where the single workerd always was; each other cell a loopback address of its own", () => {
  const settings = { cells: 2, ports: { workerd: 9080 } } as Parameters<typeof cellUrl>[0];
  expect(cellUrl(settings, 0)).toBe("http://127.0.0.1:9080");
  expect(cellUrl(settings, 1)).toBe("http://127.0.0.2:9080");
  expect(cellHost(255)).toBe("127.0.1.0");
  expect(cellConfigPath({ workerdConfigPath: "/d/workerd/config.capnp" }, 0)).toBe("/d/workerd/config.capnp");
  expect(cellConfigPath({ workerdConfigPath: "/d/workerd/config.capnp" }, 2)).toBe("/d/workerd/config-cell2.capnp");
});
