import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { loadSettings } from "../settings.ts";
import { dashboardApp } from "./app.ts";

/**
 * The dashboard's guards, without a mesh: every refusal here comes before any call to Restate
 * (nothing listens at the settings' ports and sockets, so a call that got through would fail
 * differently).
 */
const TOKEN = "the-admin-token-for-this-test";
let app: ReturnType<typeof dashboardApp>;
const here = "http://ops.test";

const form = (fields: Record<string, string>, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded", origin: here, ...headers },
  body: new URLSearchParams(fields).toString(),
});
const post = (path: string, init: RequestInit) => app.request(`${here}${path}`, init);

beforeAll(async () => {
  app = dashboardApp(
    loadSettings({ GRIDIRON_DATA_DIR: join(await mkdtemp(join(tmpdir(), "gridiron-dash-")), "d") }),
    TOKEN,
  );
});

describe("actions", () => {
  test("without a session are refused with 401", async () => {
    const response = await post("/actions/rollback", form({ bundle: "greeter" }));
    expect(response.status).toBe(401);
    expect(await response.text()).toContain("sign in with the admin token first");
  });

  test("from another origin are refused before anything else, a session cookie or not", async () => {
    const response = await post("/actions/rollback", form({ bundle: "greeter" }, { origin: "http://elsewhere.test" }));
    expect(response.status).toBe(403);
  });

  test("with a forged session cookie are refused", async () => {
    const response = await post("/actions/rollback", form({ bundle: "greeter" }, { cookie: "gridiron_admin=admin" }));
    expect(response.status).toBe(401);
  });
});

describe("signing in", () => {
  test("with a wrong token sets no session and says so on the page", async () => {
    const response = await post("/login", form({ token: "not-the-token" }));
    expect(response.status).toBe(303);
    const cookies = response.headers.getSetCookie();
    expect(cookies.some((c) => c.startsWith("gridiron_admin="))).toBe(false);
    expect(cookies.some((c) => c.startsWith("gridiron_flash=that%20is%20not%20the%20admin%20token"))).toBe(true);
  });

  test("with the token sets an HttpOnly, SameSite=Strict session, and an unknown action is then 404", async () => {
    const response = await post("/login", form({ token: TOKEN }));
    const session = response.headers.getSetCookie().find((c) => c.startsWith("gridiron_admin="));
    expect(session).toMatch(/HttpOnly/);
    expect(session).toMatch(/SameSite=Strict/);
    const cookie = (session as string).split(";")[0] as string;
    expect((await post("/actions/shutdown", form({ bundle: "greeter" }, { cookie }))).status).toBe(404);
    expect((await post("/actions/rollback", form({ bundle: "../x" }, { cookie }))).status).toBe(400);
  });
});
