import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ensureIdentityKey } from "../../credentials/request-identity.ts";
import { ensureSecretsKey } from "../../credentials/secrets-key.ts";
import { testBuild } from "../../domain/build.fixture.ts";
import { loadSettings, type Settings } from "../../settings.ts";
import { withTimeout } from "../../wait.ts";
import { CONTROL_FD, listeningPort } from "./process.ts";
import { type Proof, startProof, sweepProofs } from "./proof.ts";

let root: string;
const meshes: Settings[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "gridiron-proof-"));
  for (const name of ["mine", "other"]) {
    const settings = loadSettings({ GRIDIRON_DATA_DIR: join(root, name) });
    await ensureIdentityKey(settings, () => {});
    await ensureSecretsKey(settings, () => {});
    await mkdir(settings.bundlesDir, { recursive: true });
    meshes.push(settings);
  }
});
afterAll(async () => {
  // Should a test fail half-way: its proofs' workerd, detached, would outlive this process.
  for (const settings of meshes) await sweepProofs(settings.dataDir);
  await rm(root, { recursive: true, force: true });
});

/** A proof started as proveBuild starts one, listening, as a deployer killed mid-proof leaves it. */
async function runningProof(settings: Settings): Promise<Proof> {
  const proof = await startProof(settings, testBuild("left", "1.0.0-000000000000"));
  await listeningPort(proof.workerd.stdio[CONTROL_FD] as Readable, "probe", 20_000);
  return proof;
}

test("the sweep kills a leftover proof's workerd and removes every proof dir of its data dir, and nothing else", async () => {
  const [mine, other] = meshes as [Settings, Settings];
  const orphan = await runningProof(mine);
  const stranger = await runningProof(other);
  // A dir a crash left before its workerd started.
  await mkdir(join(mine.dataDir, "proof-empty"));
  await writeFile(join(mine.dataDir, "proof-empty", "routes.json"), "{}");
  try {
    expect(await sweepProofs(mine.dataDir)).toEqual({ killed: 1, removed: 2 });
    const ended = await withTimeout(orphan.workerd, 5_000, "the orphan proof workerd was not killed");
    expect(ended.signal).toBe("SIGKILL");
    expect((await readdir(mine.dataDir)).filter((name) => name.startsWith("proof-"))).toEqual([]);
    // Another data dir's proof is none of this sweep's business.
    const outcome = await Promise.race([stranger.workerd.then(() => "ended"), sleep(500).then(() => "running")]);
    expect(outcome).toBe("running");
    expect(await readdir(other.dataDir)).toContain(stranger.dir.split("/").at(-1));
  } finally {
    await stranger.stop();
    await orphan.stop();
  }
  expect(await readdir(other.dataDir)).not.toContain(stranger.dir.split("/").at(-1));
  expect(await sweepProofs(mine.dataDir)).toEqual({ killed: 0, removed: 0 });
}, 60_000);
