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
/** What @hono/node-server hands the app: the request's socket, for the client's address. */
const from = (address: string) => ({ incoming: { socket: { remoteAddress: address } } });
const post = (path: string, init: RequestInit, address = "192.0.2.1") =>
  app.request(`${here}${path}`, init, from(address));

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

describe("sessions", () => {
  const signIn = async (address: string) => {
    const response = await post("/login", form({ token: TOKEN }), address);
    const session = response.headers.getSetCookie().find((c) => c.startsWith("gridiron_admin="));
    return (session as string).split(";")[0] as string;
  };

  test("a session cookie is refused once its session signed out, also when kept and sent again", async () => {
    const cookie = await signIn("192.0.2.10");
    const act = () => post("/actions/shutdown", form({ bundle: "greeter" }, { cookie }));
    expect((await act()).status).toBe(404);
    const out = await post("/logout", form({}, { cookie }));
    expect(out.status).toBe(303);
    expect((await act()).status).toBe(401);
  });

  test("two sessions are separate: signing one out leaves the other", async () => {
    const first = await signIn("192.0.2.11");
    const second = await signIn("192.0.2.11");
    expect(first).not.toBe(second);
    await post("/logout", form({}, { cookie: first }));
    expect((await post("/actions/shutdown", form({ bundle: "greeter" }, { cookie: second }))).status).toBe(404);
  });
});

describe("sign-in attempts", () => {
  test("past the limit are 429 with Retry-After, the right token too, and only for that address", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++)
      statuses.push((await post("/login", form({ token: `wrong-${i}` }), "192.0.2.20")).status);
    expect(statuses.slice(0, 3)).toEqual([303, 303, 303]);
    expect(statuses.slice(3)).toEqual(Array(9).fill(429));
    const refused = await post("/login", form({ token: TOKEN }), "192.0.2.20");
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.getSetCookie().some((c) => c.startsWith("gridiron_admin="))).toBe(false);
    expect((await post("/login", form({ token: TOKEN }), "192.0.2.21")).status).toBe(303);
  });
});
