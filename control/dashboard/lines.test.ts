import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, expect, test } from "vitest";
import { LogStore } from "../logs/store.ts";
import { loadSettings } from "../settings.ts";
import { dashboardApp } from "./app.ts";

/** A build's lines on the dashboard: only for a signed-in admin, escaped, linked by invocation. */
const TOKEN = "the-admin-token-for-this-test";
const here = "http://ops.test";
const from = { incoming: { socket: { remoteAddress: "192.0.2.9" } } };
let app: ReturnType<typeof dashboardApp>;
let cookie: string;

beforeAll(async () => {
  const logs = new LogStore();
  const line = (invocationId: string, text: string, outcome: "ok" | "error") => ({
    bundle: "greeter",
    build: "1.0.0-abc",
    target: "greeter/greet",
    invocationId,
    start: 1,
    durationMs: 1,
    outcome,
    counted: true,
    lines: [{ time: 1, level: "log", text }],
  });
  logs.add({
    attempts: [line("inv_one", "<script>alert(1)</script>", "ok"), line("inv_two", "it broke", "error")],
    dropped: {},
  });
  const settings = loadSettings({ GRIDIRON_DATA_DIR: join(await mkdtemp(join(tmpdir(), "gridiron-lines-")), "d") });
  app = dashboardApp(settings, TOKEN, logs);
  const login = await app.request(
    `${here}/login`,
    {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: here },
      body: new URLSearchParams({ token: TOKEN }).toString(),
    },
    from,
  );
  cookie = (login.headers.getSetCookie().find((c) => c.startsWith("gridiron_admin=")) ?? "").split(";")[0] ?? "";
});

const get = (path: string, headers: Record<string, string> = {}) => app.request(`${here}${path}`, { headers }, from);

test("without a session, a build's lines are refused", async () => {
  const response = await get("/builds/greeter/1.0.0-abc/lines");
  expect(response.status).toBe(401);
  expect(await response.text()).not.toContain("alert");
});

test("signed in: the lines, escaped, each invocation linked to its lines and to Restate's UI; filters narrow", async () => {
  const all = await (await get("/builds/greeter/1.0.0-abc/lines", { cookie })).text();
  expect(all).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
  expect(all).not.toContain("<script>alert");
  expect(all).toContain('href="lines?invocation=inv_one"');
  expect(all).toMatch(/href="http:\/\/[^"]+\/ui\/invocations\/inv_two"/);
  const errors = await (await get("/builds/greeter/1.0.0-abc/lines?status=error", { cookie })).text();
  expect(errors).toContain("it broke");
  expect(errors).not.toContain("alert");
  const one = await (await get("/builds/greeter/1.0.0-abc/lines?invocation=inv_two", { cookie })).text();
  expect(one).toContain("it broke");
  expect(one).toContain("inv_two in Restate's UI");
  expect((await get("/builds/greeter/1.0.0-abc/lines?status=maybe", { cookie })).status).toBe(400);
});
