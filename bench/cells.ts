import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NO_EXCEPTIONS, place } from "../control/domain/placement.ts";
import { quarantineCell } from "../control/node/workerd/cells.ts";
import { loadSettings } from "../control/settings.ts";
import { buildWorker } from "../test/mesh.ts";
import { BENCH_CONNECTIONS, BENCH_SECONDS } from "./load.ts";
import {
  alternate,
  closedLoop,
  cpuPerThousand,
  type Load,
  latencies,
  ratioLine,
  ratios,
  rps,
  runOf,
  type Side,
  sideBySide,
  together,
  warmUp,
} from "./side-by-side.ts";

/**
 * What cells cost the common case (issue 29): one service's per-call throughput on a mesh with
 * the cells a user gets (GRIDIRON_CELLS from the cores, at least 2) and on one with a single cell,
 * both up at once and loaded in turn (side-by-side.ts). Then two services at once, each bundle in
 * a cell of its own on the cells side (in the one workerd on the other), at the same total
 * concurrency: what a second workerd gives when both are busy.
 */

/** Slices each side's `seconds` is cut into. */
const SLICES = 5;
/** The cells a user's mesh gets on this machine (settings.ts). */
const CELLS = loadSettings({}).cells;
const CONFIGS = [
  { name: `${CELLS} cells`, env: { GRIDIRON_CELLS: String(CELLS) } },
  { name: "1 cell", env: { GRIDIRON_CELLS: "1" } },
] as const;
/** The bundle the one-service phase calls (gr_greeter), as in bench:attribution. */
const FIRST = "bench-rr";

export interface CellsSources {
  /** bench/worker built in request-response mode with service prefix `gr_`. */
  bench: string;
  /** The same with service prefix `gs_`. */
  second: string;
}

export async function cellsTable(sources: CellsSources, seconds: number, connections: number): Promise<string> {
  console.error(`[bench] ${CONFIGS[0].name} and ${CONFIGS[1].name}: starting a mesh each`);
  const second = inAnotherCell(FIRST);
  const prepare = async (side: Side) => {
    await side.ingress.call(`deployer/${FIRST}/activate`, { source: sources.bench, version: "1.0.0" });
    await side.ingress.call(`deployer/${second}/activate`, { source: sources.second, version: "1.0.0" });
    await checkPlacement(side, [FIRST, second]);
  };
  return sideBySide(CONFIGS, prepare, async (sides) => {
    const call = (side: Side, prefix: string, s: number, c: number) =>
      closedLoop(side, `${prefix}greeter/greet`, '"bench"', s, c);
    const one: Load = (side, s) => call(side, "gr_", s, connections);
    // The same total concurrency as one service, split over the two.
    const half = Math.max(1, Math.round(connections / 2));
    const two: Load = async (side, s) => together(await Promise.all(["gr_", "gs_"].map((p) => call(side, p, s, half))));
    const slices = { slices: SLICES, seconds: seconds / SLICES };
    await warmUp(sides, two);
    await alternate(sides, "one", slices, one);
    await alternate(sides, "two", slices, two);
    return table(sides, seconds, connections);
  });
}

/** A bundle name the placement rule puts in another cell than `first`'s on the cells side. */
function inAnotherCell(first: string): string {
  const layout = { cells: CELLS, quarantineCell: quarantineCell({ cells: CELLS }) };
  const cellOf = (name: string) => {
    const placed = place(name, NO_EXCEPTIONS, layout);
    return "cell" in placed ? placed.cell : -1;
  };
  for (let i = 2; ; i++) {
    if (cellOf(`${first}-${i}`) !== cellOf(first)) return `${first}-${i}`;
  }
}

/** With several cells, the bundles' builds must be in different cells, or the second phase means nothing. */
async function checkPlacement(side: Side, bundles: string[]): Promise<void> {
  if (side.config.env.GRIDIRON_CELLS === "1") return;
  const cells = new Set<number | undefined>();
  for (const bundle of bundles) {
    const status = await side.ingress.call<{ builds: { cell?: number }[] }>(`deployer/${bundle}/status`);
    cells.add(status.builds[0]?.cell);
  }
  if (cells.size !== bundles.length) throw new Error(`${bundles.join(" and ")} share a cell on ${side.config.name}`);
}

function table(sides: [Side, Side], seconds: number, connections: number): string {
  const line = (side: Side) => {
    const [one, two] = [runOf(side, "one"), runOf(side, "two")];
    return `| ${side.config.name} | ${rps(one).toFixed(0)} | ${latencies(one)} | ${cpuPerThousand(one)} | ${rps(two).toFixed(0)} | ${latencies(two)} | ${cpuPerThousand(two)} | ${one.errors} / ${two.errors} |`;
  };
  const [cells, single] = sides;
  const twoRatios = ratios(runOf(cells, "two"), runOf(single, "two"));
  return [
    `Cells (GRIDIRON_CELLS), greeter (stateless, request-response): one service, then two services at once (each bundle in its own cell on the cells side; ${Math.round(connections / 2)} connections each); both meshes up, loaded in turn in ${SLICES} slices of ${(seconds / SLICES).toFixed(1)} s each, ${connections} connections in all; p50 / p99 are the medians of the slices' (of the slower service with two):`,
    "",
    "| cells | req/s, one service | p50 / p99 ms | CPU s per 1k calls: workerd + supervisor | req/s, two services at once | p50 / p99 ms | CPU s per 1k calls | errors one / two |",
    "|---|---|---|---|---|---|---|---|",
    line(cells),
    line(single),
    "",
    ratioLine(
      `${cells.config.name}/${single.config.name} per-call throughput, one service`,
      runOf(cells, "one"),
      runOf(single, "one"),
    ),
    `${cells.config.name}/${single.config.name} throughput, two services at once: ${twoRatios.total.toFixed(3)}x, slice medians ${twoRatios.medians.toFixed(3)}x`,
  ].join("\n");
}

/**
 * `npm run bench:cells`: this comparison alone (BENCH_SECONDS, BENCH_CONNECTIONS as in run.ts),
 * building the two bundles it serves.
 */
async function main(): Promise<void> {
  const buildsDir = await mkdtemp(join(tmpdir(), "gridiron-bench-cells-"));
  try {
    const rr = (prefix: string) => ({ PREFIX: JSON.stringify(prefix), BIDIRECTIONAL: "false" });
    const [bench, second] = await Promise.all([
      buildWorker("bench/worker", join(buildsDir, "gr"), rr("gr_")),
      buildWorker("bench/worker", join(buildsDir, "gs"), rr("gs_")),
    ]);
    console.log(await cellsTable({ bench, second }, BENCH_SECONDS, BENCH_CONNECTIONS));
  } finally {
    await rm(buildsDir, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
