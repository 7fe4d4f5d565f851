import { resolve } from "node:path";
import type { Settings } from "../../settings.ts";
import { CONFIG_EXTENSION } from "./process.ts";

/**
 * A node's cells: one workerd process each, so a build that spins or allocates without bound
 * stalls or takes down only its own cell (workerd runs every build of a process on one event loop
 * and enforces no CPU or memory limit). Cells 0..GRIDIRON_CELLS-1 take the bundles (placement.ts);
 * one more, the quarantine cell, takes bundles whose invocations the watchdog had to kill.
 * Cell `i` listens on loopback address 127.0.0.{i+1} at GRIDIRON_WORKERD_PORT, so cell 0 is where
 * the single workerd always was, and every node serves a cell at the same node-local address.
 */

/** What addressing a cell needs of the settings. */
export type CellSettings = Pick<Settings, "cells" | "ports">;

/** How many workerd processes a node runs: the cells, and the quarantine cell unless there is only one. */
export function cellCount(settings: Pick<Settings, "cells">): number {
  return settings.cells === 1 ? 1 : settings.cells + 1;
}

/** The quarantine cell, or undefined on a node of one cell (nowhere to move a bundle to). */
export function quarantineCell(settings: Pick<Settings, "cells">): number | undefined {
  return settings.cells === 1 ? undefined : settings.cells;
}

/** Every cell a node runs, in order. */
export function cellIds(settings: Pick<Settings, "cells">): number[] {
  return Array.from({ length: cellCount(settings) }, (_, cell) => cell);
}

/**
 * The cells whose workerd always runs: all but the quarantine cell, whose workerd starts only once
 * a bundle is placed there (node-agent.ts), so that a node pays for it only when it is used.
 */
export function alwaysRunningCells(settings: Pick<Settings, "cells">): number[] {
  return cellIds(settings).filter((cell) => cell !== quarantineCell(settings));
}

/** The loopback address cell `cell` listens on (up to 65,534 cells: 127.0.x.y). */
export function cellHost(cell: number): string {
  const n = cell + 1;
  return `127.0.${Math.floor(n / 256)}.${n % 256}`;
}

export function cellAddress(settings: CellSettings, cell: number): string {
  return `${cellHost(cell)}:${settings.ports.workerd}`;
}

/** Where Restate (and the node agent) reach cell `cell`: builds are registered under it. */
export function cellUrl(settings: CellSettings, cell: number): string {
  return `http://${cellAddress(settings, cell)}`;
}

/** Cell `cell`'s workerd config; cell 0's is where the single workerd's always was. */
export function cellConfigPath(settings: Pick<Settings, "workerdConfigPath">, cell: number): string {
  return cell === 0
    ? settings.workerdConfigPath
    : resolve(settings.workerdConfigPath, "..", `config-cell${cell}${CONFIG_EXTENSION}`);
}

/** The supervisor's name for cell `cell`'s process (in its log and the restart metric). */
export function cellProcessName(cell: number): string {
  return cell === 0 ? "workerd" : `workerd-${cell}`;
}

/** The cell a routed build is placed in; builds routed before cells existed are in cell 0. */
export function cellOf(build: { cell?: number | undefined }): number {
  return build.cell ?? 0;
}
