import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import { afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { ensureIdentityKey, identityHeaders, identityPublicKeyBytes } from "../../../credentials/request-identity.ts";
import { loadSettings, type Settings } from "../../../settings.ts";
import { identityProblem } from "./identity.js";

/**
 * The router's check that only restate-server calls a build, run under Node's WebCrypto (the same
 * Web API workerd gives the router): Restate's v1 request identity, an EdDSA JWT per path.
 */
let settings: Settings;
let otherKey: Settings;
let env: { RESTATE_IDENTITY_KEY: string };

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), "gridiron-identity-"));
  settings = loadSettings({ GRIDIRON_DATA_DIR: join(dir, "mesh") });
  otherKey = loadSettings({ GRIDIRON_DATA_DIR: join(dir, "other") });
  await ensureIdentityKey(settings, () => {});
  await ensureIdentityKey(otherKey, () => {});
  env = { RESTATE_IDENTITY_KEY: (await identityPublicKeyBytes(settings)).toString("base64url") };
});

afterEach(() => {
  vi.useRealTimers();
});

const request = (path: string, headers: Record<string, string>) =>
  new Request(`http://127.0.0.1:9080${path}`, { headers });

describe("identityProblem", () => {
  test("a request Restate signed for this path passes", async () => {
    const headers = await identityHeaders(settings, "/discover");
    expect(await identityProblem(request("/greeter/1.0.0-abc/discover", headers), env, "/greeter/1.0.0-abc")).toBe(
      undefined,
    );
  });

  test.each([
    ["no signature", {}, /no Restate request signature/],
    ["a header that is not a JWT", { "x-restate-signature-scheme": "v1", "x-restate-jwt-v1": "abc" }, /not a JWT/],
    ["garbage in JWT shape", { "x-restate-signature-scheme": "v1", "x-restate-jwt-v1": "a.b.c" }, /cannot be read/],
  ])("%s is refused", async (_, headers, problem) => {
    expect(await identityProblem(request("/greeter/1/discover", headers), env, "/greeter/1")).toMatch(problem);
  });

  test("another key's signature is refused", async () => {
    const headers = await identityHeaders(otherKey, "/discover");
    expect(await identityProblem(request("/greeter/1/discover", headers), env, "/greeter/1")).toMatch(
      /not signed by this mesh's Restate/,
    );
  });

  test("a token signed for one path is refused for another, even once cached", async () => {
    const headers = await identityHeaders(settings, "/discover");
    expect(await identityProblem(request("/greeter/1/discover", headers), env, "/greeter/1")).toBe(undefined);
    expect(await identityProblem(request("/greeter/1/invoke/greeter/greet", headers), env, "/greeter/1")).toMatch(
      /signed for another path/,
    );
  });

  test("a verified token expires on time, cached or not", async () => {
    const headers = await identityHeaders(settings, "/discover");
    expect(await identityProblem(request("/g/1/discover", headers), env, "/g/1")).toBe(undefined);
    vi.useFakeTimers({ now: Date.now() + 5 * 60_000 });
    expect(await identityProblem(request("/g/1/discover", headers), env, "/g/1")).toMatch(/expired/);
  });

  test("a token that is not EdDSA is refused", async () => {
    const now = Math.floor(Date.now() / 1000);
    const hs256 = await new SignJWT({ aud: "/discover", nbf: now - 60, exp: now + 60 })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode("a shared secret nobody should use"));
    const headers = { "x-restate-signature-scheme": "v1", "x-restate-jwt-v1": hs256 };
    expect(await identityProblem(request("/g/1/discover", headers), env, "/g/1")).toMatch(/not EdDSA-signed/);
  });
});
