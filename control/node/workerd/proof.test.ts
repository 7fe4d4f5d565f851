import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { afterAll, beforeAll, expect, test, vi } from "vitest";
import { ensureIdentityKey } from "../../credentials/request-identity.ts";
import { ensureSecretsKey } from "../../credentials/secrets-key.ts";
import { testBuild } from "../../domain/build.fixture.ts";
import type { Build } from "../../domain/bundle.ts";
import { buildDir } from "../../files/bundle-store.ts";
import { loadSettings, type Settings } from "../../settings.ts";
import { withTimeout } from "../../wait.ts";
import { configServed, hasEnded, runningProcesses } from "./process.ts";
import { type Proof, proveBuild, startProof, startSpare, stopProofs, sweepProofs } from "./proof.ts";
import { ROUTES_FILE } from "./router/protocol.js";

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
  await stopProofs();
  for (const settings of meshes) await sweepProofs(settings.dataDir);
  await rm(root, { recursive: true, force: true });
});

/** A proof started as proveBuild starts one, listening, as a deployer killed mid-proof leaves it. */
function runningProof(settings: Settings): Promise<Proof> {
  return startProof(settings);
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

test("a proof's workerd ends with the process that started it, even one killed by SIGKILL, with no sweep", async () => {
  const [mine] = meshes as [Settings];
  // A deployer of its own: a Node process that starts a proof, says its workerd's PID, and waits.
  const script = `import { startProof } from ${JSON.stringify(new URL("./proof.ts", import.meta.url).href)};
import { loadSettings } from ${JSON.stringify(new URL("../../settings.ts", import.meta.url).href)};
const proof = await startProof(loadSettings({ GRIDIRON_DATA_DIR: ${JSON.stringify(mine.dataDir)} }));
console.log(proof.workerd.pid);
setInterval(() => {}, 60_000);`;
  const deployer = execa(process.execPath, ["--input-type=module", "-e", script], { reject: false });
  const pid = Number(await withTimeout(firstLine(deployer.stdout), 30_000, "the proof did not start"));
  expect((await proofWorkerds(mine)).map((p) => p.pid)).toEqual([pid]);
  deployer.kill("SIGKILL");
  await deployer;
  await vi.waitFor(async () => expect(await hasEnded(pid)).toBe(true), { timeout: 5_000 });
  // Its dir is left for the next deployer's sweep, which finds no workerd left to kill.
  expect(await sweepProofs(mine.dataDir)).toEqual({ killed: 0, removed: 1 });
}, 60_000);

/** The first line a stream gives. */
async function firstLine(stream: AsyncIterable<unknown> & NodeJS.ReadableStream): Promise<string> {
  for await (const line of createInterface({ input: stream })) return line;
  throw new Error("the stream ended without a line");
}

/** A build answering discovery with one service, `extra` run on each request first. */
async function storedBuild(settings: Settings, buildId: string, extra = ""): Promise<Build> {
  const build: Build = { ...testBuild("prover", buildId), modules: [{ name: "index.js", type: "esModule" }] };
  const code = `export default {
  async fetch(request, env, ctx) {
    ${extra}
    return new Response(JSON.stringify({ protocolMode: "BIDI_STREAM", services: [{ name: "s${buildId.slice(-4)}" }] }), {
      headers: { "content-type": "application/vnd.restate.endpointmanifest.v1+json" },
    });
  },
};`;
  await mkdir(buildDir(settings.bundlesDir, build), { recursive: true });
  await writeFile(join(buildDir(settings.bundlesDir, build), "index.js"), code);
  return build;
}

/** The proof workerds running for `settings`' data dir, and whether each is a spare (no routes file yet). */
async function proofWorkerds(settings: Settings): Promise<{ pid: number; spare: boolean }[]> {
  const prefix = join(settings.dataDir, "proof-");
  const proofs = (await runningProcesses()).filter(({ argv }) => configServed(argv)?.startsWith(prefix));
  return Promise.all(
    proofs.map(async ({ pid, argv }) => {
      const dir = (configServed(argv) ?? "").split("/").slice(0, -1).join("/");
      const files = await readdir(dir).catch(() => undefined);
      return { pid, spare: files !== undefined && !files.includes(ROUTES_FILE) };
    }),
  );
}

/** Waits for the proof workerds of `settings` to show, and checks they are one: the spare. */
async function theSpare(settings: Settings) {
  // Generously: a workerd starting on a loaded machine, or a spare started SPARE_AFTER_PROOF_MS after a proof.
  const [spare, ...more] = await vi.waitFor(
    async () => {
      const found = await proofWorkerds(settings);
      expect(found).not.toEqual([]);
      return found;
    },
    { timeout: 10_000 },
  );
  expect(more).toEqual([]);
  expect(spare?.spare).toBe(true);
  return spare;
}

test("each proof runs in a workerd of its own, started ahead as a spare and killed after its one proof", async () => {
  const [mine] = meshes as [Settings];
  await proveBuild(mine, await storedBuild(mine, "1.0.0-000000000001"));
  // The spare starts once the activation asks, after its proof passed (or a while after that).
  startSpare(mine);
  const first = await theSpare(mine);

  expect((await proveBuild(mine, await storedBuild(mine, "1.0.0-000000000002"))).services).toEqual([{ name: "s0002" }]);
  // Killed before the proof returned; reaped moments later.
  await vi.waitFor(async () => expect(await hasEnded(first?.pid ?? 0)).toBe(true), { timeout: 1_000 });
  // Not at once after a proof that passed: its activation still needs the machine.
  expect(await proofWorkerds(mine)).toEqual([]);
  // Without the activation asking, after SPARE_AFTER_PROOF_MS (2 s).
  const second = await theSpare(mine);
  expect(second?.pid).not.toBe(first?.pid);
}, 60_000);

test("work a build leaves running in its proof's workerd does not reach the next build's proof", async () => {
  const [mine] = meshes as [Settings];
  // Once its discovery is answered, this build keeps its workerd's one event loop forever.
  const spin = "ctx.waitUntil(new Promise(() => setTimeout(() => { for (;;) {} }, 100)));";
  await proveBuild(mine, await storedBuild(mine, "1.0.0-000000000003", spin));
  await sleep(200);
  const started = Date.now();
  expect((await proveBuild(mine, await storedBuild(mine, "1.0.0-000000000004"))).services).toEqual([{ name: "s0004" }]);
  // Well under the proof's load deadline (5 s), which a shared, spinning workerd would have hit.
  expect(Date.now() - started).toBeLessThan(4_000);
}, 60_000);

test("stopping the proofs ends the spare, and no spare starts after", async () => {
  const [mine] = meshes as [Settings];
  startSpare(mine);
  await theSpare(mine);
  expect(await stopProofs()).toBe(1);
  expect(await proofWorkerds(mine)).toEqual([]);
  await proveBuild(mine, await storedBuild(mine, "1.0.0-000000000005"));
  // The proof's own workerd ends moments after it passed (its activation does not wait); a spare,
  // were one asked for now, would start within 2 s of the proof (SPARE_AFTER_PROOF_MS).
  await vi.waitFor(async () => expect(await proofWorkerds(mine)).toEqual([]), { timeout: 10_000 });
  await sleep(3_000);
  expect(await proofWorkerds(mine)).toEqual([]);
  // A passed proof's dir is removed while its activation goes on: moments later.
  await vi.waitFor(async () =>
    expect((await readdir(mine.dataDir)).filter((name) => name.startsWith("proof-"))).toEqual([]),
  );
}, 60_000);
