import { randomUUID } from "node:crypto";
import * as clients from "@restatedev/restate-sdk-clients";
import { z } from "zod";
import { deployerClient, deployerSendClient } from "../contracts.ts";
import { adminHeaders, readAdminToken } from "../credentials/admin-token.ts";
import { withLocalMesh } from "../mesh-file.ts";
import { AdminClient } from "../restate/admin-client.ts";
import { loadSettings } from "../settings.ts";

/** Where the CLI reaches a mesh, and with which credential. */
export interface Connection {
  ingressUrl: string;
  adminUrl: string;
  /** This node's ops port: probes, metrics, and its builds' lines (`gridiron tail`, `logs`). */
  opsUrl: string;
  /** The admin token; undefined when none was given and the data dir has none (reads still work). */
  token: string | undefined;
}

export interface ConnectionFlags {
  ingressUrl?: string;
  adminUrl?: string;
  opsUrl?: string;
  token?: string;
}

const Url = z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" });

/**
 * Flags first, then GRIDIRON_INGRESS_URL / GRIDIRON_ADMIN_URL / GRIDIRON_OPS_URL / GRIDIRON_ADMIN_TOKEN, then the
 * local mesh's settings and data dir: as set here, else as the running mesh recorded them in its
 * mesh file (mesh-file.ts), else the defaults.
 */
export async function resolveConnection(flags: ConnectionFlags, env = process.env): Promise<Connection> {
  const settings = loadSettings(await withLocalMesh(env));
  const url = (what: string, value: string | undefined, fallback: string) => {
    const parsed = Url.safeParse(value ?? fallback);
    if (!parsed.success) throw new Error(`${what} ${value}: ${parsed.error.issues[0]?.message}`);
    return parsed.data.replace(/\/+$/, "");
  };
  return {
    ingressUrl: url("ingress URL", flags.ingressUrl ?? env.GRIDIRON_INGRESS_URL, settings.ingressUrl),
    adminUrl: url("admin URL", flags.adminUrl ?? env.GRIDIRON_ADMIN_URL, settings.adminUrl),
    opsUrl: url("ops URL", flags.opsUrl ?? env.GRIDIRON_OPS_URL, settings.opsUrl),
    token: flags.token ?? (await readAdminToken(settings).catch(() => undefined)),
  };
}

export function requireToken(connection: Connection): string {
  if (connection.token) return connection.token;
  throw new Error(
    "this needs the admin token: pass --token or set GRIDIRON_ADMIN_TOKEN; a mesh started with `npm start` on this machine is found by itself, its token in its data dir's admin-token file",
  );
}

export function ingress(connection: Connection) {
  return clients.connect({
    url: connection.ingressUrl,
    ...(connection.token ? { headers: adminHeaders(connection.token) } : {}),
  });
}

export function deployer(connection: Connection, bundle: string) {
  return deployerClient(ingress(connection), bundle);
}

export function admin(connection: Connection): AdminClient {
  return new AdminClient({ url: connection.adminUrl, token: requireToken(connection) });
}

export function sendClient(connection: Connection, name: string) {
  return deployerSendClient(ingress(connection), name);
}

/** A send whose result Restate keeps, so `watch` can attach to it. */
export const attachable = <I>() => clients.rpc.sendOpts<I>({ idempotencyKey: randomUUID() });
