import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ensureIdentityKey } from "../../credentials/request-identity.ts";
import { ensureSecretsKey, generateSecretsKey, secretsPublicKey } from "../../credentials/secrets-key.ts";
import { testBuild } from "../../domain/build.fixture.ts";
import type { Build } from "../../domain/bundle.ts";
import { revisionOf, seal } from "../../domain/secrets.ts";
import { buildDir } from "../../files/bundle-store.ts";
import { loadSettings, type Settings } from "../../settings.ts";
import { proveBuild, stopProofs } from "./proof.ts";

/**
 * Secrets opened by the real router in a real workerd (the proof's, which loads a build exactly as
 * the live workerd does): the build below answers discovery with a service named after the
 * SHA-256 of its TOKEN, so the manifest shows what value the router handed it.
 */
const MODULE = `export default {
  async fetch(request, env) {
    const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(env.TOKEN ?? ""));
    const hex = [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join("");
    return new Response(JSON.stringify({ protocolMode: "BIDI_STREAM", services: [{ name: "s" + hex.slice(0, 16) }] }), {
      headers: { "content-type": "application/vnd.restate.endpointmanifest.v1+json" },
    });
  },
};`;

let root: string;
let settings: Settings;
let oldKey: Awaited<ReturnType<typeof secretsPublicKey>>;
let strangerKey: Awaited<ReturnType<typeof secretsPublicKey>>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "gridiron-secrets-open-"));
  settings = loadSettings({ GRIDIRON_DATA_DIR: join(root, "data") });
  const stranger = loadSettings({ GRIDIRON_DATA_DIR: join(root, "stranger") });
  await ensureIdentityKey(settings, () => {});
  await ensureSecretsKey(settings, () => {});
  await generateSecretsKey(stranger.secretsKeyPath);
  oldKey = await secretsPublicKey(settings);
  strangerKey = await secretsPublicKey(stranger);
  // A rotation: the key becomes the previous one, and a new one is made.
  await rename(settings.secretsKeyPath, settings.secretsPreviousKeyPath);
  await ensureSecretsKey(settings, () => {});
}, 60_000);
afterAll(async () => {
  // The spare proof workerd, in a process group of its own, would outlive this process.
  await stopProofs();
  await rm(root, { recursive: true, force: true });
});

async function buildWithToken(buildId: string, sealed: string): Promise<Build> {
  const build: Build = {
    ...testBuild("opener", buildId),
    modules: [{ name: "index.js", type: "esModule" }],
    secrets: { TOKEN: { revision: revisionOf(sealed), sealed } },
  };
  await mkdir(buildDir(settings.bundlesDir, build), { recursive: true });
  await writeFile(join(buildDir(settings.bundlesDir, build), "index.js"), MODULE);
  return build;
}

const serviceFor = (value: string) => `s${createHash("sha256").update(value).digest("hex").slice(0, 16)}`;

test("the router opens a secret sealed to the current key, and to the previous one while a rotation is under way", async () => {
  const current = await secretsPublicKey(settings);
  expect(current.kid).not.toBe(oldKey.kid);
  for (const [buildId, key, value] of [
    ["1.0.0-000000000001", current, "sealed to the new key"],
    ["1.0.0-000000000002", oldKey, "sealed to the old key"],
  ] as const) {
    const build = await buildWithToken(buildId, await seal(key, "opener", "TOKEN", value));
    expect((await proveBuild(settings, build)).services).toEqual([{ name: serviceFor(value) }]);
  }
}, 60_000);

test("a build with a secret sealed to a key the mesh does not have, or for another name, is refused with 400", async () => {
  const stranger = await buildWithToken("1.0.0-000000000003", await seal(strangerKey, "opener", "TOKEN", "x"));
  await expect(proveBuild(settings, stranger)).rejects.toMatchObject({
    status: 400,
    message: expect.stringMatching(/cannot open secret TOKEN of opener: .*a key this mesh does not have/),
  });
  const current = await secretsPublicKey(settings);
  const renamed = await buildWithToken("1.0.0-000000000004", await seal(current, "opener", "OTHER", "x"));
  await expect(proveBuild(settings, renamed)).rejects.toThrow(/sealed for another bundle or name/);
}, 60_000);
