import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import getPort from "get-port";
import { afterAll, beforeAll, expect, test } from "vitest";
import { BATCH_PATH, MAX_LINE_CHARS } from "../node/workerd/router/logs.js";
import { type OpsServer, serveOps } from "../ops/server.ts";
import { loadSettings, type Settings } from "../settings.ts";
import type { SinkBatch } from "./records.ts";

/** The node side end to end, without workerd: a batch posted on the collector's socket reaches a live tail on the ops port. */
const TOKEN = "the-admin-token-for-this-test";
let dir: string;
let settings: Settings;
let ops: OpsServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "gridiron-collector-"));
  settings = loadSettings({ GRIDIRON_DATA_DIR: join(dir, "d"), GRIDIRON_OPS_PORT: String(await getPort()) });
  ops = await serveOps(settings, "ops", TOKEN);
});

afterAll(async () => {
  await ops?.close();
  await rm(dir, { recursive: true, force: true });
});

const post = (body: string, path = `${BATCH_PATH}/greeter/1.0.0-abc`) =>
  new Promise<number>((resolve, reject) => {
    const req = request({ socketPath: settings.logs.socket, path, method: "POST" }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end(body);
  });

const batch = (text: string): SinkBatch => ({
  records: [
    {
      target: "greeter/greet",
      invocationId: "inv_1",
      start: Date.now(),
      durationMs: 3,
      outcome: "ok",
      counted: true,
      lines: [{ time: Date.now(), level: "log", text }],
    },
  ],
  dropped: 0,
});

test("the collector refuses what is not a batch, or a batch that names no bundle and build", async () => {
  expect(await post("not json")).toBe(400);
  expect(await post(JSON.stringify({ records: [{ target: "x" }], dropped: 0 }))).toBe(400);
  expect(await post(JSON.stringify(batch("no build")), `${BATCH_PATH}/greeter`)).toBe(404);
  expect(await post(JSON.stringify(batch("no build")), BATCH_PATH)).toBe(404);
});

test("a batch with a field out of its bounds is refused whole: none of its lines is kept", async () => {
  const tooLong = batch("x".repeat(MAX_LINE_CHARS + 65));
  const first = tooLong.records[0] as SinkBatch["records"][number];
  first.invocationId = "inv_refused";
  first.lines.unshift({ time: Date.now(), level: "log", text: "a line within bounds" });
  expect(await post(JSON.stringify(tooLong))).toBe(400);
  const kept = await fetch(`${settings.opsUrl}/logs/greeter?invocation=inv_refused`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(kept.status).toBe(200);
  expect(((await kept.json()) as { records: unknown[] }).records).toEqual([]);
});

test("a live tail idle longer than the ops port's request timeout still gets the next line; a query finds it", async () => {
  const controller = new AbortController();
  const response = await fetch(`${settings.opsUrl}/logs/greeter/tail?search=wanted`, {
    headers: { authorization: `Bearer ${TOKEN}` },
    signal: controller.signal,
  });
  expect(response.status).toBe(200);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const read = async () => decoder.decode((await reader.read()).value);
  expect(await read()).toBe('{"dropped":0}\n');
  await new Promise((resolve) => setTimeout(resolve, 11_000));
  expect(await post(JSON.stringify(batch("not this one")))).toBe(204);
  expect(await post(JSON.stringify(batch("wanted line")))).toBe(204);
  const next = JSON.parse(await read());
  expect(next).toMatchObject({ bundle: "greeter", build: "1.0.0-abc", invocationId: "inv_1", text: "wanted line" });
  controller.abort();
  const kept = await fetch(`${settings.opsUrl}/logs/greeter?invocation=inv_1`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(((await kept.json()) as { records: unknown[] }).records).toHaveLength(2);
}, 30_000);
