import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import * as restate from "@restatedev/restate-sdk";
import type { Settings } from "./settings.ts";

/**
 * The token that mutating deployer calls must carry as `Authorization: Bearer <token>`:
 * GRIDIRON_ADMIN_TOKEN, else one generated on first start into the data dir (mode 0600).
 */
export async function ensureAdminToken(settings: Settings, log: (line: string) => void = console.log): Promise<void> {
  if (settings.adminToken) return;
  const existing = await readFile(settings.adminTokenPath, "utf8").catch(() => undefined);
  if (existing?.trim()) return;
  await mkdir(dirname(settings.adminTokenPath), { recursive: true });
  await writeFile(settings.adminTokenPath, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
  log(`[gridiron] generated an admin token in ${settings.adminTokenPath}; deploy calls need it as a Bearer token`);
}

export async function readAdminToken(settings: Settings): Promise<string> {
  if (settings.adminToken) return settings.adminToken;
  const token = (await readFile(settings.adminTokenPath, "utf8")).trim();
  if (!token) throw new Error(`${settings.adminTokenPath} is empty`);
  return token;
}

/** Whether an Authorization header carries `token`; constant-time in the token's content. */
export function authorized(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!match?.[1]) return false;
  const given = Buffer.from(match[1]);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Throws a 401 terminal error, before anything changes, unless the caller sent the token. */
export function requireAdmin(ctx: Pick<restate.Context, "request">, token: string): void {
  if (!authorized(ctx.request().headers.get("authorization"), token)) {
    throw new restate.TerminalError(
      "this deployer call needs the header 'Authorization: Bearer <token>'; the token is GRIDIRON_ADMIN_TOKEN or the admin-token file in the data dir",
      { errorCode: 401 },
    );
  }
}
