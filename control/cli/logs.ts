import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { type Command, Option } from "commander";
import type { ClusterNode } from "../cluster/members.ts";
import type { LogRecord } from "../logs/records.ts";
import type { StreamItem } from "../logs/routes.ts";
import { type Connection, requireToken } from "./connection.ts";
import { inert } from "./inert.ts";

/**
 * `gridiron tail BUNDLE` (new lines as they come, like `wrangler tail`) and `gridiron logs BUNDLE`
 * (the lines each node kept), both from the nodes' ops ports (logs/routes.ts), with the admin
 * token. On a cluster every node is asked, and each line says which node served it.
 */

interface Helpers {
  connect(): Promise<Connection>;
  json(): boolean;
  /** A cluster's nodes, or undefined for a mesh of one node. */
  nodes(connection: Connection): Promise<ClusterNode[] | undefined>;
}

interface FilterOptions {
  build?: string;
  invocation?: string;
  status?: "ok" | "error";
  search?: string;
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `10m` -> ten minutes ago, as epoch milliseconds. */
function sinceOf(duration: string, now = Date.now()): number {
  const match = /^(\d+)([smhd])$/.exec(duration);
  if (!match) throw new Error(`--since ${duration}: give a number and a unit, like 30s, 10m, 2h or 1d`);
  return now - Number(match[1]) * (UNITS[match[2] ?? "s"] ?? 1_000);
}

/** One line for a terminal: time, node, build, call, invocation, level, text, all made inert. */
export function pretty(record: LogRecord): string {
  const where = [
    new Date(record.time).toISOString(),
    ...(record.node ? [`[${record.node}]`] : []),
    record.build,
    record.target ?? "-",
    record.invocationId ?? "-",
    record.level.toUpperCase(),
  ];
  return inert(`${where.join(" ")} ${record.text}`);
}

export function logCommands(program: Command, { connect, json, nodes }: Helpers): void {
  const filters = (command: Command) =>
    command
      .option("--build <id>", "only this build's lines")
      .option("--invocation <id>", "only this invocation's lines (inv_...)")
      .addOption(new Option("--status <status>", "only attempts that went ok, or did not").choices(["ok", "error"]))
      .option("--search <text>", "only lines containing this text (any case)");

  filters(program.command("tail"))
    .description("stream a bundle's lines live, from every node, until Ctrl-C")
    .argument("<bundle>", "the bundle")
    .addOption(new Option("--format <format>", "pretty, or json (one object a line)").choices(["pretty", "json"]))
    .action(async (bundle: string, options: FilterOptions & { format?: string }) => {
      const connection = await connect();
      const sources = await opsUrls(connection, nodes);
      const asJson = (options.format ?? (json() ? "json" : "pretty")) === "json";
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      process.stderr.write(`tailing ${inert(bundle)} on ${sources.length} node(s); Ctrl-C to stop\n`);
      const path = `/logs/${encodeURIComponent(bundle)}/tail?${query(options)}`;
      await eachNode(sources, (url) =>
        follow(`${url}${path}`, connection, stop.signal, (item) => {
          if ("dropped" in item) {
            if (item.dropped) process.stderr.write(`(${item.dropped} lines dropped: this reader was too slow)\n`);
            return;
          }
          process.stdout.write(`${asJson ? JSON.stringify(item) : pretty(item)}\n`);
        }),
      );
    });

  filters(program.command("logs"))
    .description("a bundle's recent lines, as every node kept them (oldest first)")
    .argument("<bundle>", "the bundle")
    .option("--since <duration>", "only lines of the last 30s, 10m, 2h, 1d")
    .action(async (bundle: string, options: FilterOptions & { since?: string }) => {
      const connection = await connect();
      const since = options.since ? String(sinceOf(options.since)) : undefined;
      const sources = await opsUrls(connection, nodes);
      const path = `/logs/${encodeURIComponent(bundle)}?${query({ ...options, since })}`;
      const parts = await eachNode(sources, async (url) => {
        const response = await get(`${url}${path}`, connection);
        return ((await response.json()) as { records: LogRecord[] }).records;
      });
      const records = parts.flat().sort((a, b) => a.time - b.time);
      if (json()) process.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
      else for (const record of records) process.stdout.write(`${pretty(record)}\n`);
    });
}

/** Every node's ops port on a cluster (the same port on each node's address), else this mesh's. */
async function opsUrls(connection: Connection, nodes: Helpers["nodes"]): Promise<string[]> {
  const cluster = await nodes(connection);
  if (!cluster) return [connection.opsUrl];
  const port = new URL(connection.opsUrl).port;
  return cluster.map((node) => `http://${node.address}:${port}`);
}

/**
 * Runs `read` on every node. On a cluster a node that fails is named on stderr and the others
 * still answer; only when every node fails is it an error.
 */
async function eachNode<T>(urls: string[], read: (url: string) => Promise<T>): Promise<T[]> {
  const results = await Promise.allSettled(urls.map(read));
  const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  if (failures.length === urls.length) throw failures[0];
  for (const [i, result] of results.entries()) {
    if (result.status === "rejected") {
      process.stderr.write(`(${inert(urls[i] ?? "")} did not answer: ${inert(String(result.reason))})\n`);
    }
  }
  return results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
}

function query(options: FilterOptions & { since?: string | undefined }): string {
  const params = new URLSearchParams();
  for (const key of ["build", "invocation", "status", "search", "since"] as const) {
    const value = options[key];
    if (value !== undefined) params.set(key, value);
  }
  return params.toString();
}

async function get(url: string, connection: Connection, signal?: AbortSignal): Promise<Response> {
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${requireToken(connection)}` },
    ...(signal ? { signal } : {}),
  });
  if (!response.ok) throw new Error(`${url.split("?")[0]}: ${response.status} ${(await response.text()).trim()}`);
  return response;
}

/** Reads one node's live stream until `signal` aborts (Ctrl-C), which ends it without an error. */
export async function follow(
  url: string,
  connection: Connection,
  signal: AbortSignal,
  onItem: (item: StreamItem) => void,
) {
  try {
    const response = await get(url, connection, signal);
    if (!response.body) return;
    // fetch's stream type is the DOM's; node:stream/web's is the same object at run time.
    const lines = createInterface({ input: Readable.fromWeb(response.body as WebReadableStream) });
    for await (const line of lines) if (line) onItem(JSON.parse(line) as StreamItem);
  } catch (error) {
    if (signal.aborted) return;
    throw error;
  }
}
