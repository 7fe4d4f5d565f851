import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type * as restate from "@restatedev/restate-sdk";
import { UserError } from "../domain/errors.ts";
import type { Settings } from "../settings.ts";

/** What the admin token is worked out from: the setting, else the file in the data dir. */
type TokenSettings = Pick<Settings, "adminToken" | "adminTokenPath">;

/**
 * Makes sure there is the token that mutating deployer calls must carry as `Authorization:
 * Bearer <token>`: GRIDIRON_ADMIN_TOKEN, else one generated on first start into the data dir
 * (mode 0600).
 */
export async function ensureAdminToken(
  settings: TokenSettings,
  log: (line: string) => void = console.log,
): Promise<void> {
  if (settings.adminToken) return;
  const existing = await readFile(settings.adminTokenPath, "utf8").catch(() => undefined);
  if (existing?.trim()) return;
  await mkdir(dirname(settings.adminTokenPath), { recursive: true });
  await writeFile(settings.adminTokenPath, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
  log(`[gridiron] generated an admin token in ${settings.adminTokenPath}; deploy calls need it as a Bearer token`);
}

export async function readAdminToken(settings: TokenSettings): Promise<string> {
  if (settings.adminToken) return settings.adminToken;
  const token = (await readFile(settings.adminTokenPath, "utf8")).trim();
  if (!token) throw new Error(`${settings.adminTokenPath} is empty`);
  return token;
}

/**
 * Whether an Authorization header carries `token`: as a Bearer token (scripts, the restate CLI's
 * RESTATE_AUTH_TOKEN), or as the password of basic auth with any user name (what a browser sends
 * for Restate's web UI). Constant-time in the token's content.
 */
export function authorized(header: string | undefined, token: string): boolean {
  const given = presentedToken(header ?? "");
  if (given === undefined) return false;
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function presentedToken(header: string): Buffer | undefined {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
  if (bearer) return Buffer.from(bearer);
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header)?.[1];
  if (!basic) return undefined;
  const credentials = Buffer.from(basic, "base64").toString("utf8");
  const colon = credentials.indexOf(":");
  return colon < 0 ? undefined : Buffer.from(credentials.slice(colon + 1));
}

/**
 * A Restate handler hook (the SDK's `hooks` option, on a handler or a whole object): the call is
 * refused with a 401 user error, before the handler runs and on every attempt, unless it carries
 * the token. Restate passes on the headers of calls from other services' code too, so this also
 * keeps tenants' code (which never sees the token) out of the control plane's internal handlers.
 */
export function adminOnly(token: string, what = "this deployer call"): restate.HooksProvider {
  return ({ request }) => ({
    interceptor: {
      handler: async (next) => {
        if (!authorized(request.headers.get("authorization"), token)) throw new UserError(tokenNeeded(what), 401);
        await next();
      },
    },
  });
}

/** Why a call without the admin token is refused (401), by a handler or by the ingress front. */
export function tokenNeeded(what: string): string {
  return `${what} needs the header 'Authorization: Bearer <token>'; the token is GRIDIRON_ADMIN_TOKEN or the admin-token file in the data dir`;
}

/** The header the control plane's own calls to its internal handlers carry. */
export function adminHeaders(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
