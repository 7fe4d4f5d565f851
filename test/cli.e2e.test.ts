import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import getPort from "get-port";
import { afterAll, describe, expect, test } from "vitest";
import type { BuildView, StatusView } from "../control/domain/lifecycle.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { CLI, gridironOf, ROOT } from "./cli.ts";
import { useTestMesh } from "./mesh.ts";

/** `npx gridiron` against a real mesh, found the way a user's shell finds it: its settings. */
describe("the gridiron CLI", () => {
  const fx = useTestMesh({});
  const scratch = mkdtemp(join(tmpdir(), "gridiron-cli-"));
  afterAll(async () => rm(await scratch, { recursive: true, force: true }));

  const gridiron = gridironOf(() => fx.mesh);

  test("deploy builds a wrangler project dir and shows each journaled step; --json is the result", async () => {
    const shown = await gridiron(["deploy", "demo/greeter", "--version", "2.0.0", "--message", "from the CLI"]);
    expect(shown.exitCode, shown.stderr).toBe(0);
    for (const step of ["copy bundle", "prove build", "route build", "wait for every node", "register with Restate"]) {
      expect(shown.stderr).toMatch(new RegExp(`✓ ${step}  \\d+\\.\\d\\d s`));
    }
    expect(shown.stdout).toMatch(/^greeter 2\.0\.0 is active\n {2}build {7}2\.0\.0-[0-9a-f]{12}\n/);
    // The build's source is the project (and its commit), not the temp outdir the CLI built into.
    const view = JSON.parse((await gridiron(["--json", "status", "greeter"])).stdout) as StatusView;
    expect(view.builds.find((b) => b.version === "2.0.0")?.source).toMatch(
      new RegExp(`^${join(ROOT, "demo/greeter")}@[0-9a-f]{40}(\\+dirty)?$`),
    );

    const json = await gridiron(["--json", "deploy", "demo/counter", "--version", "2.0.0"]);
    expect(json.exitCode, json.stderr).toBe(0);
    expect(json.stderr).toBe("");
    const result = JSON.parse(json.stdout) as ActivateResult;
    expect(result).toMatchObject({
      name: "counter",
      version: "2.0.0",
      services: ["counter"],
      protocolMode: "BIDI_STREAM",
    });
    expect(result.deploymentId).toMatch(/^dp_/);
    expect(await fx.ingress.call("counter/cli/add")).toBe(1);
    expect(await fx.ingress.call("greeter/greet", "cli")).toMatch(/^Hello, cli! /);
  });

  test("with no settings but the mesh file, the CLI and the recipes find the running mesh; without a mesh they say so", async () => {
    const meshFile = fx.mesh.settings.meshFile;
    const bare = (args: string[], file = meshFile) =>
      execa(process.execPath, [CLI, ...args], {
        cwd: ROOT,
        reject: false,
        timeout: 60_000,
        extendEnv: false,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, GRIDIRON_MESH_FILE: file },
      });
    const where = await bare(["mesh", "ingress"]);
    expect(where.stdout.trim()).toBe(fx.mesh.settings.ingressUrl);
    const built = await bare(["--json", "builds", "greeter"]);
    expect(built.exitCode, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout)).toEqual(expect.any(Array));
    const recipe = await execa("npx", ["just", "test-greeter", "found"], {
      cwd: ROOT,
      reject: false,
      env: { GRIDIRON_MESH_FILE: meshFile },
    });
    expect(recipe.stdout, recipe.stderr).toMatch(/Hello, found!/);

    const none = await bare(["status", "greeter"], join(await scratch, "no-mesh.json"));
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(
      /^error: no mesh at 127\.0\.0\.1:8080: nothing answers there; start one with `npm start`/,
    );
  });

  test("status, builds, rollback and prune with --json parse and say what the deployer says", async () => {
    const second = await gridiron(["--json", "deploy", "demo/greeter", "--version", "2.0.1"]);
    expect(second.exitCode, second.stderr).toBe(0);

    const status = JSON.parse((await gridiron(["--json", "status", "greeter"])).stdout) as StatusView;
    expect(status.active).toBe((JSON.parse(second.stdout) as ActivateResult).buildId);
    const all = JSON.parse((await gridiron(["--json", "status"])).stdout) as StatusView[];
    expect(all.map((s) => s.name).sort()).toEqual(["counter", "greeter"]);

    const builds = JSON.parse((await gridiron(["--json", "builds", "greeter"])).stdout) as BuildView[];
    expect(builds.map((b) => [b.version, b.state])).toEqual([
      ["2.0.0", "draining"],
      ["2.0.1", "active"],
    ]);
    expect(builds[0]).toMatchObject({ message: "from the CLI", source: expect.stringContaining("demo/greeter@") });

    const rollback = await gridiron(["--json", "rollback", "greeter"]);
    expect(rollback.exitCode, rollback.stderr).toBe(0);
    expect(JSON.parse(rollback.stdout)).toMatchObject({ version: "2.0.0" });
    const after = JSON.parse((await gridiron(["--json", "builds", "greeter"])).stdout) as BuildView[];
    const back = after.find((b) => b.version === "2.0.0");
    expect(back?.history?.map((h) => h.event)).toEqual(["activated", "rolled back to"]);
    expect((await gridiron(["builds", "greeter"])).stdout).toMatch(/2\.0\.0 .* rolled back to at 20\d\d-/);

    const unasked = await gridiron(["prune", "greeter"]);
    expect(unasked.exitCode).toBe(1);
    expect(unasked.stderr).toBe("error: not asking without a terminal: pass --yes to confirm");
    const pruned = await gridiron(["--json", "prune", "greeter", "--yes"]);
    expect(JSON.parse(pruned.stdout)).toEqual({ pruned: [] });
  });

  test("a failing deploy exits 1 with the deployer's message after one error:, not the CLI's stack", async () => {
    const broken = join(await scratch, "broken");
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, "index.js"), "export default {");
    const failed = await gridiron(["deploy", broken, "--name", "broken"]);
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toMatch(/✗ prove build {2}\d+\.\d\d s {2}failed/);
    // The message keeps workerd's lines; it is the last thing printed.
    const errors = failed.stderr.split("\n").filter((line) => line.startsWith("error: "));
    expect(errors).toEqual([
      expect.stringMatching(/^error: workerd cannot load the build: broken\/0\.0\.0-[0-9a-f]{12} does not load/),
    ]);
    expect(failed.stderr.slice(failed.stderr.indexOf(errors[0] as string))).not.toMatch(/\n[✓✗] /);
    expect(failed.stderr).toMatch(/\(HTTP 400\)$/);
    expect(failed.stderr).not.toMatch(/node:internal|at Command\./);
  });

  test("without the admin token, a project or a mesh, the CLI says so and changes nothing", async () => {
    // What a refused call could change; drain checks may move builds between draining and drained meanwhile.
    const statusNow = async () =>
      (JSON.parse((await gridiron(["--json", "status"])).stdout) as StatusView[]).map((s) => ({
        name: s.name,
        active: s.active,
        builds: s.builds.map((b) => [b.buildId, b.deploymentId]),
      }));
    const before = await statusNow();
    const anonymous = await gridiron(["deploy", "demo/greeter"], { GRIDIRON_DATA_DIR: join(await scratch, "none") });
    expect(anonymous.exitCode).toBe(1);
    expect(anonymous.stderr).toMatch(/^error: this needs the admin token: pass --token/);
    const wrong = await gridiron(["resume", "greeter", "--token", "not-the-admin-token"]);
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toMatch(
      /^error: this call to deployer\/resumePaused needs the header 'Authorization: Bearer <token>'.*\(HTTP 401\)$/,
    );
    const empty = join(await scratch, "empty");
    await mkdir(empty, { recursive: true });
    const nothing = await gridiron(["deploy", empty]);
    expect(nothing.exitCode).toBe(1);
    expect(nothing.stderr).toContain("is neither a wrangler project");
    const unreachable = await gridiron(["status"], { GRIDIRON_INGRESS_URL: `http://127.0.0.1:${await getPort()}` });
    expect(unreachable.exitCode).toBe(1);
    expect(unreachable.stderr).toMatch(
      /^error: no mesh at 127\.0\.0\.1:\d+: nothing answers there; start one with `npm start`/,
    );
    expect(await statusNow()).toEqual(before);
  });

  test("a build's message and error text reach the terminal escaped, and --json exactly", async () => {
    // What the attack wrote: window title, clipboard (OSC 52), cleared screen, a fake line, a bell.
    const attack = "\u001b]0;owned\u0007\u001b]52;c;cm0gLXJmIH4=\u0007\u001b[2J\u001b[H\r✓ activated\u0008\u009b31m";
    const escaped =
      "\\u001b]0;owned\\u0007\\u001b]52;c;cm0gLXJmIH4=\\u0007\\u001b[2J\\u001b[H\\r✓ activated\\b\\u009b31m";
    // Any control character but the newline.
    const RAW = /(?!\n)\p{Cc}/u;
    const deployed = await gridiron(["deploy", "demo/greeter", "--version", "3.0.0", "--message", attack]);
    expect(deployed.exitCode, deployed.stderr).toBe(0);

    const shown = await gridiron(["builds", "greeter"]);
    expect(shown.exitCode, shown.stderr).toBe(0);
    expect(shown.stdout).not.toMatch(RAW);
    const row = shown.stdout.split("\n").find((line) => line.startsWith("3.0.0 "));
    expect(row).toContain(escaped);
    const status = await gridiron(["status", "greeter"]);
    expect(status.stdout).toMatch(/^greeter +3\.0\.0 /m);
    expect(status.stdout).not.toMatch(RAW);

    const json = JSON.parse((await gridiron(["--json", "builds", "greeter"])).stdout) as BuildView[];
    expect(json.find((b) => b.version === "3.0.0")?.message).toBe(attack);

    // A build whose loading fails with the same text: the deploy's error line and `builds` show it escaped.
    const hostile = join(await scratch, "hostile");
    await mkdir(hostile, { recursive: true });
    await writeFile(join(hostile, "index.js"), `throw new Error(${JSON.stringify(attack)});\nexport default {};\n`);
    const failed = await gridiron(["deploy", hostile, "--name", "hostile"]);
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).not.toMatch(RAW);
    // The message, workerd's lines kept, from its `error:` on.
    const message = failed.stderr.slice(failed.stderr.indexOf("\nerror: ") + 1);
    expect(message).toMatch(/^error: workerd cannot load the build: [\s\S]*\\u001b\]0;owned/);
    const history = await gridiron(["builds", "hostile"]);
    expect(history.stdout).not.toMatch(RAW);
    expect(history.stdout).toMatch(/failed .*\\u001b\]52;c;/);
    const record = JSON.parse((await gridiron(["--json", "builds", "hostile"])).stdout) as BuildView[];
    expect(record[0]?.error).toContain(attack.slice(0, 20));
  });
});
