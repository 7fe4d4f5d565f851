import { createHash, createHmac, randomBytes } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { describe, expect, test } from "vitest";
import type { StatusView } from "../control/domain/lifecycle.ts";
import { type SecretsKey, type SecretsView, seal } from "../control/domain/secrets.ts";
import type { ActivateResult, SecretsChange } from "../control/objects/deployer/api.ts";
import { eventually, useTestMesh } from "./mesh.ts";

const ROOT = resolve(import.meta.dirname, "..");
const CLI = join(ROOT, "control/cli/main.ts");
const PROJECT = "test/fixtures/vault";

interface Digest {
  sha256: string | null;
  names: string[];
}

const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");

/** Every file under `dir`, recursively (Restate's own files included). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/**
 * Secrets are sealed by the CLI to the mesh's key, kept as ciphertext in Restate and the routes
 * file, and opened only by workerd's router when it loads a build.
 */
describe("secrets", () => {
  const fx = useTestMesh({ peeker: [PROJECT, { SERVICE: '"peeker"' }], greeter: ["greeter"] });
  // Unique per run, and long enough that no file holds it by chance.
  const value = `sk-live-${randomBytes(24).toString("hex")}`;
  const next = `sk-next-${randomBytes(24).toString("hex")}`;

  const gridiron = (args: string[], input?: string) =>
    execa(process.execPath, [CLI, "--json", ...args], {
      cwd: ROOT,
      reject: false,
      timeout: 120_000,
      ...(input === undefined ? {} : { input }),
      env: {
        GRIDIRON_DATA_DIR: fx.mesh.settings.dataDir,
        GRIDIRON_INGRESS_PORT: String(fx.mesh.settings.ports.ingress),
        GRIDIRON_ADMIN_PORT: String(fx.mesh.settings.ports.admin),
      },
    });
  const succeeds = async <T>(args: string[], input?: string) => {
    const run = await gridiron(args, input);
    expect(run.exitCode, run.stderr).toBe(0);
    return { parsed: JSON.parse(run.stdout) as T, shown: run.stdout + run.stderr };
  };
  const status = (name: string) => fx.ingress.call<StatusView>(`deployer/${name}/status`);
  const secretsOf = (name: string) => fx.ingress.call<SecretsView>(`deployer/${name}/secrets`);
  const digest = (service: string) => fx.ingress.call<Digest>(`${service}/digest`);
  const key = () => fx.ingress.call<SecretsKey>("deployer/peeker/secretsKey");
  /** Everything the CLI printed, to be searched for the value at the end. */
  const shown: string[] = [];

  test("activate refuses with 400 naming every required secret that is not set, and changes nothing", async () => {
    const run = await gridiron(["deploy", PROJECT, "--require", "SIGNING_KEY"]);
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/vault needs the secret\(s\) API_KEY, SIGNING_KEY, not set.*HTTP 400/);
    expect((await status("vault")).builds).toEqual([]);
  }, 180_000);

  test("a put secret reaches the handler's env, and only its own bundle's", async () => {
    const put = await succeeds<SecretsChange>(["secret", "put", "API_KEY", "--bundle", "vault"], `${value}\n`);
    expect(put.parsed.activated).toBeUndefined();
    shown.push(put.shown);
    const deployed = await succeeds<ActivateResult>(["deploy", PROJECT]);
    shown.push(deployed.shown);
    expect(await digest("vault")).toEqual({ sha256: sha256(value), names: ["API_KEY"] });

    // Another bundle with the same code sees its own secret only.
    const sealed = await seal(await key(), "peeker", "OWN", "peeker's own");
    await fx.ingress.call("deployer/peeker/putSecrets", { secrets: { OWN: sealed } });
    await fx.ingress.call("deployer/peeker/activate", { source: fx.sources.peeker, version: "1.0.0" });
    expect(await digest("peeker")).toEqual({ sha256: null, names: ["OWN"] });
  }, 180_000);

  test("a sealed value copied from another bundle, a bad name or a value over the loader's limit is a 400 that changes nothing", async () => {
    const before = await secretsOf("peeker");
    const statusBefore = await status("peeker");
    const routes = JSON.parse(await readFile(join(fx.mesh.settings.bundlesDir, "routes.json"), "utf8")) as {
      builds: { name: string; secrets?: Record<string, { sealed: string }> }[];
    };
    const copied = routes.builds.find((b) => b.name === "vault")?.secrets?.API_KEY?.sealed;
    expect(copied).toBeDefined();
    const sealedKey = await key();
    const attempts = {
      copied: { API_KEY: copied },
      "bad name": { "not-a-name": await seal(sealedKey, "peeker", "not-a-name", "x") },
      "over the limit": { BIG: await seal(sealedKey, "peeker", "BIG", "x".repeat(1024 * 1024 + 1)) },
      "not sealed": { PLAIN: "a plain value" },
    };
    const messages = {
      copied: /sealed as "API_KEY" of bundle "vault", not as API_KEY of peeker/,
      "bad name": /"not-a-name" is not a secret name/,
      "over the limit": /over 1 MiB/,
      "not sealed": /PLAIN is not a sealed secret/,
    };
    for (const [what, secrets] of Object.entries(attempts)) {
      const attempt = fx.ingress.call("deployer/peeker/putSecrets", { secrets });
      await expect(attempt, what).rejects.toMatchObject({ status: 400 });
      await expect(attempt, what).rejects.toThrow(messages[what as keyof typeof messages]);
    }
    expect(await secretsOf("peeker")).toEqual(before);
    expect(await status("peeker")).toEqual(statusBefore);
    const unauthenticated = await fetch(`${fx.mesh.settings.ingressUrl}/deployer/peeker/putSecrets`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ secrets: {} }),
    });
    expect(unauthenticated.status).toBe(401);
  }, 120_000);

  test("a changed secret is a new deployment: new calls see it, a call in flight finishes with the old value; rollback brings the old one back", async () => {
    const before = await status("vault");
    const old = before.builds.find((b) => b.state === "active");
    const inFlight = await fx.ingress.send("vault/slow", { delayMs: 8_000 });
    await eventually(async () =>
      expect((await status("vault")).builds.find((b) => b.state === "active")?.pinned).toBe(1),
    );

    const put = await succeeds<SecretsChange>(["secret", "put", "API_KEY", "--bundle", "vault"], next);
    shown.push(put.shown);
    expect(put.parsed.activated?.buildId).not.toBe(old?.buildId);
    expect(put.parsed.activated?.deploymentId).not.toBe(old?.deploymentId);
    expect(await digest("vault")).toEqual({ sha256: sha256(next), names: ["API_KEY"] });
    expect((await fx.ingress.attach<Digest>(inFlight)).sha256).toBe(sha256(value));

    const listed = await succeeds<SecretsView>(["secret", "list", "vault"]);
    shown.push(listed.shown);
    const revision = listed.parsed.secrets.find((s) => s.name === "API_KEY")?.revision;
    expect(listed.parsed.secrets.map((s) => s.currentKey)).toEqual([true]);
    const byBuild = Object.fromEntries(listed.parsed.builds.map((b) => [b.buildId, b.secrets.API_KEY]));
    expect(byBuild[put.parsed.activated?.buildId ?? ""]).toBe(revision);
    expect(byBuild[old?.buildId ?? ""]).not.toBe(revision);

    await fx.ingress.call("deployer/vault/rollback");
    expect((await digest("vault")).sha256).toBe(sha256(value));

    // The active build was deployed with secrets.required = ["API_KEY"]: it cannot lose it.
    const kept = await secretsOf("vault");
    const deletion = await gridiron(["secret", "delete", "API_KEY", "--bundle", "vault", "--yes"]);
    expect(deletion.exitCode).toBe(1);
    expect(deletion.stderr).toMatch(/requires API_KEY; activate one that does not first.*HTTP 409/);
    expect(await secretsOf("vault")).toEqual(kept);
  }, 180_000);

  test("GETTING_STARTED's step: the demo greeter signs with SIGNING_KEY once it is put", async () => {
    await fx.ingress.call("deployer/greeter/activate", { source: fx.sources.greeter, version: "1.0.0" });
    await expect(fx.ingress.call("greeter/signed", "friend")).rejects.toThrow(/greeter has no SIGNING_KEY/);
    const key = randomBytes(32).toString("hex");
    shown.push((await succeeds(["secret", "put", "SIGNING_KEY", "--bundle", "greeter"], `${key}\n`)).shown);
    const { greeting, signature } = await fx.ingress.call<{ greeting: string; signature: string }>(
      "greeter/signed",
      "friend",
    );
    expect(greeting).toBe("Hello, friend! Greetings from a workerd isolate behind Restate.");
    expect(signature).toBe(createHmac("sha256", key).update(greeting).digest("hex"));
  }, 120_000);

  test("the value is nowhere but in the isolate: not in Restate's tables, the data dir, the CLI's or the mesh's output, the dashboard or the metrics", async () => {
    const needles = [value, next].flatMap((v) => [
      v,
      Buffer.from(v).toString("base64"),
      Buffer.from(v).toString("hex"),
    ]);
    const leaks = (where: string, text: string) =>
      needles.filter((needle) => text.includes(needle)).map((needle) => `${where}: ${needle.slice(0, 12)}…`);
    const found: string[] = [];

    const tables = await fx.admin.query("SELECT table_name FROM information_schema.tables");
    const names = tables.map((t) => String(t.table_name)).filter((t) => t.startsWith("sys_") || t === "state");
    expect(names).toEqual(expect.arrayContaining(["state", "sys_journal", "sys_invocation_status"]));
    // Binary columns, should they come as arrays of bytes, are searched as bytes.
    const asText = (_: string, v: unknown) =>
      Array.isArray(v) && v.length && v.every((n) => typeof n === "number") ? Buffer.from(v).toString("latin1") : v;
    const everyRow: string[] = [];
    for (const table of names) {
      const rows = JSON.stringify(await fx.admin.query(`SELECT * FROM ${table}`), asText);
      everyRow.push(rows);
      found.push(...leaks(`table ${table}`, rows));
    }
    // The search sees what Restate keeps: the sealed form is there, in the deployer's state.
    const routes = JSON.parse(await readFile(join(fx.mesh.settings.bundlesDir, "routes.json"), "utf8")) as {
      builds: { name: string; secrets?: Record<string, { sealed: string }> }[];
    };
    const sealed = routes.builds.find((b) => b.name === "vault")?.secrets?.API_KEY?.sealed ?? "none";
    expect(everyRow.join("")).toContain(sealed);
    const files = await filesUnder(fx.mesh.settings.dataDir);
    expect(files.some((f) => f.includes("/restate/"))).toBe(true);
    for (const file of files) {
      const bytes = await readFile(file).catch(() => Buffer.alloc(0));
      for (const needle of needles) if (bytes.includes(needle)) found.push(`file ${file}`);
    }
    for (const args of [["status"], ["builds", "vault"], ["secret", "list", "vault"]]) {
      shown.push((await succeeds(args)).shown);
    }
    found.push(...leaks("the CLI's output", shown.join("\n")));
    const ops = fx.mesh.settings.opsUrl;
    const page = await (await fetch(`${ops}/`)).text();
    expect(page).toMatch(/secrets: API_KEY@[0-9a-f]{12}/);
    found.push(...leaks("the dashboard", page));
    found.push(...leaks("/metrics", await (await fetch(`${ops}/metrics`)).text()));
    found.push(...leaks("the mesh's output", fx.mesh.output.join("\n")));
    expect(found).toEqual([]);
    // The secrets key and the files that hold sealed secrets are the owner's alone.
    for (const file of ["secrets-key.pem", "workerd/config.capnp", "bundles/routes.json"]) {
      expect((await stat(join(fx.mesh.settings.dataDir, file))).mode & 0o077, file).toBe(0);
    }
  }, 180_000);
});
