import { connect } from "node:net";
import * as clients from "@restatedev/restate-sdk-clients";
import type { ClusterNode } from "../cluster/members.ts";
import { deployerClient } from "../contracts.ts";
import { readAdminToken } from "../credentials/admin-token.ts";
import type { StatusView } from "../domain/lifecycle.ts";
import { alwaysRunningCells, cellUrl, quarantineCell } from "../node/workerd/cells.ts";
import { AdminClient } from "../restate/admin-client.ts";
import type { Settings } from "../settings.ts";
import { answers } from "../wait.ts";
import { inert } from "./inert.ts";

/**
 * Whether each process answers, whatever supervises them (npm start, or runit, where the ops port
 * is a process of its own).
 */
export async function serviceRows(
  settings: Pick<
    Settings,
    | "adminSocket"
    | "adminToken"
    | "adminTokenPath"
    | "adminUrl"
    | "cells"
    | "ports"
    | "opsUrl"
    | "ingressUrl"
    | "workerdUrl"
    | "deployerUrl"
  >,
): Promise<Record<string, string>[]> {
  const restateUp = await new AdminClient({ socketPath: settings.adminSocket }).healthy();
  // No token in the data dir: no mesh ever started there, so its front cannot be up either.
  const token = await readAdminToken(settings).catch(() => undefined);
  const frontUp = token ? await new AdminClient({ url: settings.adminUrl, token }).healthy() : false;
  const probe = (cell: number) =>
    fetch(`${cellUrl(settings, cell)}/`, { signal: AbortSignal.timeout(2_000) })
      .then((response) => response.json() as Promise<{ builds: number }>)
      .catch(() => undefined);
  const cells = await Promise.all(alwaysRunningCells(settings).map(probe));
  const cellsUp = cells.filter((answer) => answer !== undefined);
  // The quarantine cell runs only once a bundle is placed there (cells.ts): not running is no fault.
  const quarantine = quarantineCell(settings);
  const quarantined = quarantine === undefined ? undefined : await probe(quarantine);
  const builds = [...cellsUp, ...(quarantined ? [quarantined] : [])].reduce((sum, answer) => sum + answer.builds, 0);
  const quarantineNote = quarantine === undefined ? "" : `, quarantine cell ${quarantined ? "up" : "idle"}`;
  const deployerListens = await listens(settings.ports.deployer);
  const opsUp = await answers(`${settings.opsUrl}/livez`);
  return [
    {
      service: "restate",
      state: restateUp ? "up" : "down",
      detail: `ingress ${settings.ingressUrl}, admin API on ${settings.adminSocket}`,
    },
    { service: "admin", state: frontUp ? "up" : "down", detail: `${settings.adminUrl} (admin token required)` },
    {
      service: "workerd",
      state: cellsUp.length === cells.length ? "up" : cellsUp.length ? "degraded" : "down",
      detail: `${cellsUp.length} of ${cells.length} cell(s) from ${settings.workerdUrl}${quarantineNote}${cellsUp.length ? `, ${builds} live build(s)` : ""}`,
    },
    { service: "deployer", state: deployerListens ? "up" : "down", detail: settings.deployerUrl },
    { service: "ops", state: opsUp ? "up" : "down", detail: `${settings.opsUrl} (/metrics, /livez, /readyz)` },
  ];
}

function listens(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, timeout: 2_000 });
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
}

/** Every bundle ever activated and each of its builds, as rows for `npx just status`. */
export async function statusRows(
  settings: Pick<Settings, "adminSocket" | "ingressUrl">,
): Promise<Record<string, string>[]> {
  const names = await new AdminClient({ socketPath: settings.adminSocket }).bundles();
  const ingress = clients.connect({ url: settings.ingressUrl });
  const rows: Record<string, string>[] = [];
  for (const name of names) {
    rows.push(...buildRows(await deployerClient(ingress, name).status()));
  }
  return rows;
}

/** One row per build of a bundle's status. */
export function buildRows(status: StatusView): Record<string, string>[] {
  return status.builds.map((build) => ({
    bundle: status.name,
    version: build.version,
    build: build.buildId,
    // Refused: it hung its cell alone, and the routers refuse its calls (`status` says why).
    state: build.refused ? `${build.state},refused` : build.state,
    deployment: build.deploymentId ?? "",
    cell: build.cell === undefined ? "" : String(build.cell),
    pinned: String(build.pinned),
    paused: String(build.paused),
    // A drifted build is still the active one by its record.
    since: build.times[build.state === "drifted" ? "active" : build.state] ?? "",
    ...(build.nodes ? { nodes: build.nodes.join(",") } : {}),
  }));
}

/**
 * A line on a bundle's rollout in progress, if it has one: which build takes what share of new
 * calls, since when, and the automatic analysis's next step.
 */
export function rolloutSummary(status: StatusView): string {
  const rollout = status.rollout;
  if (!rollout) return "";
  const auto = rollout.auto
    ? `; next: ${rollout.auto.next.percent === "promote" ? "promote" : `${rollout.auto.next.percent}%`} at ${rollout.auto.next.at}${rollout.auto.waiting ? ` (waiting: ${rollout.auto.waiting})` : ""}`
    : "; promote or abort by hand";
  const draining = rollout.splits.filter((s) => s.state !== "active");
  const older = draining.length
    ? `; ${draining.map((s) => `${s.percent}% split ${s.state} (${s.pinned} pinned)`).join(", ")}`
    : "";
  return `${status.name}: canary ${rollout.canary} takes ${rollout.percent}% of new calls, ${rollout.stable} ${100 - rollout.percent}%, since ${rollout.stepAt}${auto}${older}\n`;
}

/** One row per node of a cluster: Restate's view of it, and what its workerd serves. */
export function nodeRows(nodes: ClusterNode[]): Record<string, string>[] {
  return nodes.map((node) => ({
    node: node.name,
    address: node.address,
    alive: node.alive ? "yes" : "no",
    "partitions led": String(node.partitionsLed),
    "builds served": !node.answers ? "no answer" : node.caughtUp ? String(node.builds.length) : "catching up",
  }));
}

/**
 * Plain aligned columns; a table library would be more code to configure than this. Cells hold
 * what builds and users wrote (messages, errors), so each is made inert first: one line, no
 * escape sequences, and measured as shown.
 */
export function formatTable(rows: Record<string, string>[]): string {
  const first = rows[0];
  if (!first) return "no bundles deployed yet (try `npx just deploy-demo`)\n";
  const columns = Object.keys(first);
  const cells = rows.map((r) => columns.map((c) => inert(r[c] ?? "")));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] ?? "").length)));
  const line = (row: string[]) => `${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ")}`.trimEnd();
  return `${[line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join("\n")}\n`;
}
