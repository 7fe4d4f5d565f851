import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import { loadSettings, type Settings } from "./settings.ts";

/**
 * The mesh file: `npm start` records where the running mesh listens and keeps its data, so the CLI
 * and the `just` recipes in another terminal find a mesh started with other ports or another data
 * dir without those settings exported again. It holds settings, never the admin token: that stays
 * in the data dir, readable by its owner alone.
 */

/** The settings another process needs to reach this mesh, by their environment names. */
const RECORDED = ["GRIDIRON_BIND", "GRIDIRON_INGRESS_PORT", "GRIDIRON_ADMIN_PORT", "GRIDIRON_OPS_PORT"] as const;

const MeshRecord = z.object({
  pid: z.number().int().positive(),
  env: z.record(z.string(), z.string()),
});

/** Records this process's mesh; a later `npm start` elsewhere replaces it. */
export async function writeMeshFile(
  settings: Pick<Settings, "dataDir" | "meshFile">,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const recorded = Object.fromEntries(RECORDED.flatMap((name) => (env[name] ? [[name, env[name]]] : [])));
  const record = { pid: process.pid, env: { ...recorded, GRIDIRON_DATA_DIR: settings.dataDir } };
  await mkdir(dirname(settings.meshFile), { recursive: true });
  await writeFile(settings.meshFile, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

/** Removes the mesh file if it is still this process's record. */
export async function removeMeshFile(settings: Pick<Settings, "meshFile">): Promise<void> {
  if ((await readMeshRecord(settings.meshFile))?.pid === process.pid) await rm(settings.meshFile, { force: true });
}

/**
 * The recorded mesh's settings, if a mesh that is still running recorded them; a record left by
 * a mesh that was killed is ignored.
 */
async function recordedMeshEnv(path: string): Promise<Record<string, string> | undefined> {
  const record = await readMeshRecord(path);
  return record && isRunning(record.pid) ? record.env : undefined;
}

async function readMeshRecord(path: string) {
  const text = await readFile(path, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return MeshRecord.safeParse(JSON.parse(text)).data;
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Settings that say which mesh to reach; any of them set means the mesh file is not asked. */
const CHOSEN = [...RECORDED, "GRIDIRON_DATA_DIR", "GRIDIRON_INGRESS_URL", "GRIDIRON_ADMIN_URL"];

/**
 * The environment with the local mesh's recorded settings filled in, for the CLI and `status`:
 * what the user set wins, and the mesh file is read only when nothing says which mesh to reach.
 */
export async function withLocalMesh(env: NodeJS.ProcessEnv): Promise<NodeJS.ProcessEnv> {
  if (CHOSEN.some((name) => env[name])) return env;
  const recorded = await recordedMeshEnv(loadSettings(env).meshFile);
  return recorded ? { ...recorded, ...env } : env;
}
