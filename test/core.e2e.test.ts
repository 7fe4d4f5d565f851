import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AdminClient } from "../control/admin-client.ts";
import type { ActivateResult } from "../control/deployer.ts";
import { Ingress } from "./ingress.ts";
import { buildWorker, eventually, findChild, isAlive, startTestMesh, type TestMesh } from "./mesh.ts";

/** The whole core path on a real restate-server and workerd, started as `npm start` does. */
describe("the mesh, end to end", () => {
  let mesh: TestMesh;
  let ingress: Ingress;
  let admin: AdminClient;
  let buildsDir: string;
  const sources: Record<string, string> = {};

  beforeAll(async () => {
    buildsDir = await mkdtemp(join(tmpdir(), "gridiron-builds-"));
    const [started] = await Promise.all([
      startTestMesh(),
      (async () => {
        sources.greeterV1 = await buildWorker("greeter", join(buildsDir, "greeter-v1"));
        sources.counterV1 = await buildWorker("counter", join(buildsDir, "counter-v1"));
        sources.greeterV2 = await buildWorker("greeter", join(buildsDir, "greeter-v2"), { GREETING: '"Howdy"' });
        sources.counterV2 = await buildWorker("counter", join(buildsDir, "counter-v2"), { STEP: "10" });
      })(),
    ]);
    mesh = started;
    ingress = new Ingress(mesh.settings.ingressUrl);
    admin = new AdminClient(mesh.settings.adminUrl);
  }, 240_000);

  afterAll(async () => {
    await mesh?.stop();
    await rm(buildsDir, { recursive: true, force: true });
  }, 60_000);

  const activate = (name: string, source: string | undefined, version: string) =>
    ingress.call<ActivateResult>(`deployer/${name}/activate`, { source, version });

  test("activating both demo bundles at once keeps both routes", async () => {
    const [greeter, counter] = await Promise.all([
      activate("greeter", sources.greeterV1, "1.0.0"),
      activate("counter", sources.counterV1, "1.0.0"),
    ]);
    expect(greeter).toMatchObject({ name: "greeter", version: "1.0.0", services: ["greeter"] });
    expect(greeter.buildId).toMatch(/^1\.0\.0-[0-9a-f]{12}$/);
    expect(greeter.deploymentId).toMatch(/^dp_/);
    expect(greeter.uri).toBe(`${mesh.settings.workerdUrl}/greeter/${greeter.buildId}`);
    expect(counter).toMatchObject({ name: "counter", version: "1.0.0", services: ["counter"] });

    expect(await ingress.call("greeter/greet")).toMatch(/^Hello, World! /);
    expect(await ingress.call("greeter/greet", "friend")).toMatch(/^Hello, friend! /);
    expect(await ingress.call("counter/default/add")).toBe(1);
    expect(await ingress.call("counter/default/add")).toBe(2);
    expect(await ingress.call("counter/other-key/add")).toBe(1);
    expect(await ingress.call("counter/default/add")).toBe(3);
  });

  test("activating the same version and content again is idempotent", async () => {
    const before = await ingress.call<{ builds: unknown[] }>("deployer/greeter/status");
    const again = await activate("greeter", sources.greeterV1, "1.0.0");
    const after = await ingress.call<{ builds: unknown[] }>("deployer/greeter/status");
    expect(after.builds).toEqual(before.builds);
    expect(after.builds).toHaveLength(1);
    expect(again.deploymentId).toBe((before.builds[0] as ActivateResult).deploymentId);
  });

  test("bad input is refused with a 400 and changes nothing", async () => {
    const before = await ingress.call("deployer/greeter/status");
    const refusals: [string, unknown, RegExp][] = [
      ["deployer/Bad_Name/activate", { source: sources.greeterV1, version: "1.0.0" }, /bad bundle name/],
      ["deployer/greeter/activate", { source: sources.greeterV1, version: "../1" }, /a version is/],
      ["deployer/greeter/activate", { source: "https://example.com/x", version: "1.0.0" }, /file:\/\/\//],
      ["deployer/greeter/activate", { source: "file:///nonexistent", version: "1.0.0" }, /not a directory/],
      ["deployer/greeter/activate", { source: sources.greeterV1, version: "1.0.0", extra: 1 }, /extra/],
    ];
    for (const [path, body, message] of refusals) {
      const attempt = ingress.call(path, body);
      await expect(attempt).rejects.toMatchObject({ status: 400 });
      await expect(attempt).rejects.toThrow(message);
    }
    expect(await ingress.call("deployer/greeter/status")).toEqual(before);
  });

  test.each([
    ["a syntax error", { "index.js": "export default { fetch( {" }, 400, /SyntaxError/],
    ["a throw at top level", { "index.js": 'throw new Error("boom"); export default {};' }, 400, /boom/],
    ["a missing module", { "index.js": 'import x from "./gone.wasm"; export default {};' }, 400, /gone\.wasm/],
    [
      "no Restate endpoint",
      { "index.js": 'export default { fetch() { return new Response("hi"); } };' },
      400,
      /discover|deployment/i,
    ],
    ["no main module", { "notes.txt": "hello" }, 400, /no main module/],
  ])("a bundle with %s fails to activate and changes nothing else", async (_, files, status, message) => {
    const dir = join(buildsDir, `broken-${Object.values(files)[0]?.length}`);
    await mkdir(dir, { recursive: true });
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);

    const attempt = activate("broken", pathToFileURL(dir).href, "1.0.0");
    await expect(attempt).rejects.toMatchObject({ status });
    await expect(attempt).rejects.toThrow(message);

    expect(await ingress.call("greeter/greet", "still")).toMatch(/, still! /);
    expect(await readdir(join(mesh.settings.bundlesDir, "broken")).catch(() => [])).toEqual([]);
    const deployments = await admin.query("SELECT id FROM sys_deployment WHERE endpoint LIKE '%/broken/%'");
    expect(deployments).toEqual([]);
  });

  test("a call sleeping on v1 finishes on v1 while new calls get v2", async () => {
    const counterV1 = await ingress.call<{ builds: ActivateResult[] }>("deployer/counter/status");
    const sleeping = await ingress.send("counter/sleepy/add", { delayMs: 6_000 });
    await eventually(async () => {
      const [row] = await admin.query(
        `SELECT pinned_deployment_id, status FROM sys_invocation WHERE id = '${sleeping}'`,
      );
      expect(row).toEqual({ pinned_deployment_id: counterV1.builds[0]?.deploymentId, status: "suspended" });
    });

    const [greeterV2, counterV2] = await Promise.all([
      activate("greeter", sources.greeterV2, "2.0.0"),
      activate("counter", sources.counterV2, "2.0.0"),
    ]);
    expect(greeterV2.buildId).toMatch(/^2\.0\.0-/);
    expect(counterV2.buildId).toMatch(/^2\.0\.0-/);

    expect(await ingress.call("greeter/greet", "friend")).toMatch(/^Howdy, friend! /);
    expect(await ingress.call("counter/fresh/add")).toBe(10);
    // State written by v1 is kept: v2 adds its step to the count v1 left.
    expect(await ingress.call("counter/default/add")).toBe(13);

    // The sleeping call was pinned to v1 when it started, so it adds v1's step of 1.
    expect(await ingress.attach(sleeping)).toBe(1);
    expect(await ingress.call("counter/sleepy/add")).toBe(11);

    const status = await ingress.call<{ active: string; builds: { buildId: string; state: string }[] }>(
      "deployer/counter/status",
    );
    expect(status.active).toBe(counterV2.buildId);
    expect(status.builds.map((b) => b.state).sort()).toEqual(["active", "draining"]);
  }, 60_000);

  test("a workerd that dies is restarted and serves every live build again", async () => {
    const workerd = await findChild(mesh, "/workerd ");
    process.kill(workerd, "SIGKILL");
    await eventually(async () => expect(await ingress.call("greeter/greet", "again")).toMatch(/^Howdy, again! /));
    expect(await findChild(mesh, "/workerd ")).not.toBe(workerd);
    expect(await ingress.call("counter/fresh/add")).toBe(20);
  }, 60_000);

  test("stopping the supervisor stops everything it started", async () => {
    const pids = await mesh.pids();
    expect(pids.length).toBeGreaterThanOrEqual(4);
    const leaked = await mesh.stop();
    expect(leaked).toEqual([]);
    expect(pids.filter(isAlive)).toEqual([]);
  }, 60_000);
});
