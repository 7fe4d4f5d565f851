import { once } from "node:events";
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { connect } from "node:http2";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, test } from "vitest";
import { ensureIdentityKey, identityHeaders } from "../control/credentials/request-identity.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { Ingress } from "./ingress.ts";
import { CELL_WORKERD, eventually, findChild, isAlive, useTestMesh } from "./mesh.ts";
import { endpointRequests, failedAttempts } from "./restate-metrics.ts";

/** The whole core path on a real restate-server and workerd, started as `npm start` does. */
describe("the mesh, end to end", () => {
  const fx = useTestMesh({
    greeterV1: ["greeter"],
    counterV1: ["counter"],
    greeterV2: ["greeter", { GREETING: '"Howdy"' }],
    counterV2: ["counter", { STEP: "10" }],
    flaky: ["test/fixtures/flaky", { BROKEN: "false" }],
  });

  const activate = (name: string, source: string | undefined, version: string) =>
    fx.ingress.call<ActivateResult>(`deployer/${name}/activate`, { source, version });

  test("activating both demo bundles at once keeps both routes", async () => {
    const [greeter, counter] = await Promise.all([
      activate("greeter", fx.sources.greeterV1, "1.0.0"),
      activate("counter", fx.sources.counterV1, "1.0.0"),
    ]);
    expect(greeter).toMatchObject({ name: "greeter", version: "1.0.0", services: ["greeter"] });
    expect(greeter.buildId).toMatch(/^1\.0\.0-[0-9a-f]{12}$/);
    expect(greeter.deploymentId).toMatch(/^dp_/);
    expect(greeter.uri).toBe(`${fx.mesh.settings.workerdUrl}/greeter/${greeter.buildId}`);
    expect(greeter.protocolMode).toBe("BIDI_STREAM");
    expect(counter).toMatchObject({ name: "counter", version: "1.0.0", services: ["counter"] });

    expect(await fx.ingress.call("greeter/greet")).toMatch(/^Hello, World! /);
    expect(await fx.ingress.call("greeter/greet", "friend")).toMatch(/^Hello, friend! /);
    expect(await fx.ingress.call("counter/default/add")).toBe(1);
    expect(await fx.ingress.call("counter/default/add")).toBe(2);
    expect(await fx.ingress.call("counter/other-key/add")).toBe(1);
    expect(await fx.ingress.call("counter/default/add")).toBe(3);
  });

  test("a bidirectional build gets one request per invocation; a request-response one, one more per step", async () => {
    // The flaky fixture keeps the SDK's default, request-response; the demos are bidirectional.
    const flaky = await activate("flaky", fx.sources.flaky, "1.0.0");
    expect(flaky.protocolMode).toBe("REQUEST_RESPONSE");
    const requestsOf = async (path: string, body?: unknown) => {
      const before = await endpointRequests(fx.mesh.settings, "request-response");
      const bidiBefore = await endpointRequests(fx.mesh.settings, "bidi-stream");
      await fx.ingress.call(path, body);
      return {
        requestResponse: (await endpointRequests(fx.mesh.settings, "request-response")) - before,
        bidi: (await endpointRequests(fx.mesh.settings, "bidi-stream")) - bidiBefore,
      };
    };
    // One journaled step: the attempt ends there, and Restate calls again with its result.
    expect(await requestsOf("flaky/run")).toMatchObject({ requestResponse: 2 });
    // A durable sleep in the middle of the handler, served on one stream (the deployer's own
    // endpoint is bidirectional too, so its drain checks may add to that count, never to the other).
    const sleepy = await requestsOf("counter/bidi/add", { delayMs: 300 });
    expect(sleepy.requestResponse).toBe(0);
    expect(sleepy.bidi).toBeGreaterThanOrEqual(1);
  });

  test("activating the same version and content again is idempotent", async () => {
    const before = await fx.ingress.call<{ builds: unknown[] }>("deployer/greeter/status");
    const again = await activate("greeter", fx.sources.greeterV1, "1.0.0");
    const after = await fx.ingress.call<{ builds: unknown[] }>("deployer/greeter/status");
    expect(after.builds).toEqual(before.builds);
    expect(after.builds).toHaveLength(1);
    expect(again.deploymentId).toBe((before.builds[0] as ActivateResult).deploymentId);
  });

  test("deploy calls without the admin token are refused with a 401; status stays open", async () => {
    const before = await fx.ingress.call("deployer/greeter/status");
    for (const ingress of [
      new Ingress(fx.mesh.settings.ingressUrl),
      new Ingress(fx.mesh.settings.ingressUrl, "x".repeat(43)),
    ]) {
      for (const [path, body] of [
        ["deployer/greeter/activate", { source: fx.sources.greeterV2, version: "9.0.0" }],
        ["deployer/greeter/rollback", undefined],
        ["deployer/greeter/prune", undefined],
        ["deployer/greeter/resumePaused", undefined],
      ] as const) {
        const attempt = ingress.call(path, body);
        await expect(attempt).rejects.toMatchObject({ status: 401 });
        await expect(attempt).rejects.toThrow(/Authorization: Bearer/);
      }
      expect(await ingress.call("deployer/greeter/status")).toEqual(before);
    }
    expect((await stat(fx.mesh.settings.adminTokenPath)).mode & 0o777).toBe(0o600);
  });

  test("bad input is refused with a 400 and changes nothing", async () => {
    const before = await fx.ingress.call("deployer/greeter/status");
    const refusals: [string, unknown, RegExp][] = [
      ["deployer/Bad_Name/activate", { source: fx.sources.greeterV1, version: "1.0.0" }, /bad bundle name/],
      ["deployer/greeter/activate", { source: fx.sources.greeterV1, version: "../1" }, /a version is/],
      ["deployer/greeter/activate", { source: "ftp://example.com/x", version: "1.0.0" }, /file:\/\/\//],
      ["deployer/greeter/activate", { source: "http://example.com/x.tgz", version: "1.0.0" }, /https:\/\//],
      ["deployer/greeter/activate", { source: "https://example.com/x.tgz", version: "1.0.0" }, /needs sha256/],
      [
        "deployer/greeter/activate",
        { source: "https://example.com/x.tgz", sha256: "abc", version: "1.0.0" },
        /64 hex digits/,
      ],
      ["deployer/greeter/activate", { source: "file:///nonexistent", version: "1.0.0" }, /not a directory/],
      ["deployer/greeter/activate", { source: fx.sources.greeterV1, version: "1.0.0", extra: 1 }, /extra/],
    ];
    for (const [path, body, message] of refusals) {
      const attempt = fx.ingress.call(path, body);
      await expect(attempt).rejects.toMatchObject({ status: 400 });
      await expect(attempt).rejects.toThrow(message);
    }
    expect(await fx.ingress.call("deployer/greeter/status")).toEqual(before);
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
    const dir = join(fx.buildsDir, `broken-${Object.values(files)[0]?.length}`);
    await mkdir(dir, { recursive: true });
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);

    const attempt = activate("broken", pathToFileURL(dir).href, "1.0.0");
    await expect(attempt).rejects.toMatchObject({ status });
    await expect(attempt).rejects.toThrow(message);

    expect(await fx.ingress.call("greeter/greet", "still")).toMatch(/, still! /);
    expect(await readdir(join(fx.mesh.settings.bundlesDir, "broken")).catch(() => [])).toEqual([]);
    const deployments = await fx.admin.query("SELECT id FROM sys_deployment WHERE endpoint LIKE '%/broken/%'");
    expect(deployments).toEqual([]);
  });

  test("only restate-server may call a build or the deployer: unsigned or wrongly signed calls get a 401", async () => {
    const { settings } = fx.mesh;
    const { buildId } =
      (await fx.ingress.call<{ builds: ActivateResult[] }>("deployer/greeter/status")).builds[0] ?? {};
    const path = `/greeter/${buildId}/discover`;
    const discover = (headers: Record<string, string>) =>
      fetch(`${settings.workerdUrl}${path}`, {
        headers: { ...headers, accept: "application/vnd.restate.endpointmanifest.v4+json" },
      });
    const otherKey = { ...settings, identityKeyPath: join(fx.buildsDir, "other.pem") };
    await ensureIdentityKey(otherKey, () => {});

    expect((await discover(await identityHeaders(settings, "/discover"))).status).toBe(200);
    const refused = [
      await discover({}),
      await discover(await identityHeaders(otherKey, "/discover")),
      await discover(await identityHeaders(settings, "/invoke/greeter/greet")),
    ];
    for (const response of refused) {
      expect(response.status).toBe(401);
      expect(await response.text()).toMatch(/must be signed with this mesh's Restate request identity key/);
    }
    const unsignedControl = await fetch(`${settings.workerdUrl}/_gridiron/drain`, { method: "POST" });
    expect(unsignedControl.status).toBe(401);
    expect(await deployerStatus(settings.deployerUrl, {})).toBe(401);
    expect(await deployerStatus(settings.deployerUrl, await identityHeaders(otherKey, "/discover"))).toBe(401);
    expect(await deployerStatus(settings.deployerUrl, await identityHeaders(settings, "/discover"))).toBe(200);
  });

  test("a call sleeping on v1 finishes on v1 while new calls get v2", async () => {
    const counterV1 = await fx.ingress.call<{ builds: ActivateResult[] }>("deployer/counter/status");
    const sleeping = await fx.ingress.send("counter/sleepy/add", { delayMs: 6_000 });
    await eventually(async () => {
      const [row] = await fx.admin.query(
        `SELECT pinned_deployment_id, status FROM sys_invocation WHERE id = '${sleeping}'`,
      );
      // Served bidirectionally, the sleep keeps its stream to v1 open rather than suspending.
      expect(row).toEqual({ pinned_deployment_id: counterV1.builds[0]?.deploymentId, status: "running" });
    });

    const [greeterV2, counterV2] = await Promise.all([
      activate("greeter", fx.sources.greeterV2, "2.0.0"),
      activate("counter", fx.sources.counterV2, "2.0.0"),
    ]);
    expect(greeterV2.buildId).toMatch(/^2\.0\.0-/);
    expect(counterV2.buildId).toMatch(/^2\.0\.0-/);

    expect(await fx.ingress.call("greeter/greet", "friend")).toMatch(/^Howdy, friend! /);
    expect(await fx.ingress.call("counter/fresh/add")).toBe(10);
    // State written by v1 is kept: v2 adds its step to the count v1 left.
    expect(await fx.ingress.call("counter/default/add")).toBe(13);

    // The sleeping call was pinned to v1 when it started, so it adds v1's step of 1.
    expect(await fx.ingress.attach(sleeping)).toBe(1);
    expect(await fx.ingress.call("counter/sleepy/add")).toBe(11);

    const status = await fx.ingress.call<{ active: string; builds: { buildId: string; state: string }[] }>(
      "deployer/counter/status",
    );
    expect(status.active).toBe(counterV2.buildId);
    expect(status.builds.map((b) => b.state).sort()).toEqual(["active", "draining"]);
  }, 60_000);

  test("a workerd that dies is restarted and serves every live build again", async () => {
    const workerd = await findChild(fx.mesh, CELL_WORKERD);
    process.kill(workerd, "SIGKILL");
    await eventually(async () => expect(await fx.ingress.call("greeter/greet", "again")).toMatch(/^Howdy, again! /));
    expect(await findChild(fx.mesh, CELL_WORKERD)).not.toBe(workerd);
    expect(await fx.ingress.call("counter/fresh/add")).toBe(20);
  }, 60_000);

  test("deploys restart nothing: workerd keeps its PID, calls made meanwhile all succeed, none retried", async () => {
    const workerd = await findChild(fx.mesh, CELL_WORKERD);
    const failedBefore = await failedAttempts(fx.mesh.settings);
    let deploying = true;
    // A failed call is recorded, not thrown: the loops never reject, and always end with the deploys.
    const failed: string[] = [];
    const load = Array.from({ length: 8 }, async (_, i) => {
      let calls = 0;
      while (deploying) {
        await fx.ingress.call(`counter/load-${i}/add`, 1).then(
          () => calls++,
          (error: unknown) => failed.push(String(error)),
        );
      }
      return calls;
    });
    try {
      await activate("greeter", fx.sources.greeterV1, "3.0.0");
      await activate("counter", fx.sources.counterV1, "3.0.0");
      await activate("greeter", fx.sources.greeterV2, "4.0.0");
    } finally {
      deploying = false;
    }
    const calls = await Promise.all(load);

    expect(failed).toEqual([]);
    expect(await findChild(fx.mesh, CELL_WORKERD)).toBe(workerd);
    expect(await failedAttempts(fx.mesh.settings)).toBe(failedBefore);
    for (const [i, n] of calls.entries()) {
      expect(n).toBeGreaterThan(0);
      expect(await fx.ingress.call(`counter/load-${i}/get`)).toBe(n);
    }
    expect(await fx.ingress.call("greeter/greet", "friend")).toMatch(/^Howdy, friend! /);
  }, 60_000);

  test("stopping the supervisor stops everything it started", async () => {
    const pids = await fx.mesh.pids();
    // The supervisor (the deployer is a thread of it), restate-server, workerd, and the spare proof
    // workerd once a deploy has started one.
    expect(pids.length).toBeGreaterThanOrEqual(3);
    const leaked = await fx.mesh.stop();
    expect(leaked).toEqual([]);
    expect(pids.filter(isAlive)).toEqual([]);
  }, 60_000);
});

/** The status of a discovery request to the deployer's HTTP/2 endpoint, sent with `headers`. */
async function deployerStatus(url: string, headers: Record<string, string>): Promise<number> {
  const session = connect(url);
  try {
    const stream = session.request({
      ":path": "/discover",
      accept: "application/vnd.restate.endpointmanifest.v4+json",
      ...headers,
    });
    const [status] = (await once(stream, "response")) as [{ ":status": number }];
    stream.resume();
    return status[":status"];
  } finally {
    session.close();
  }
}
