import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { beforeAll, describe, expect, test } from "vitest";
import { identityHeaders } from "../control/credentials/request-identity.ts";
import { tellAgent } from "../control/node/node-agent.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { waitFor } from "../control/wait.ts";
import { Ingress } from "./ingress.ts";
import { CELL_WORKERD, eventually, findChild, proofLeftovers, proofsOf, useTestMesh } from "./mesh.ts";

const tenant = (service: string, object = false): [string, Record<string, string>] => [
  "test/fixtures/tenant",
  { SERVICE: JSON.stringify(service), OBJECT: String(object) },
];

interface Status {
  active: string | null;
  builds: (ActivateResult & { state: string; drift?: string[]; movedTo?: object; tookOver?: object })[];
}

/**
 * The trust boundaries, tried as an attacker would against a real mesh: a tenant's bundle owns
 * its services and nothing else, tenant code cannot reach the control plane's internal handlers,
 * Restate's admin API needs the admin token, and a bundle's content cannot stall or crash the
 * mesh through the proof. Every refusal is checked to change nothing.
 */
describe("trust boundaries", () => {
  const fx = useTestMesh(
    {
      greeter: ["greeter"],
      greeterV2: ["greeter", { GREETING: '"Howdy"' }],
      counter: ["counter"],
      deployer: tenant("deployer", true),
      routes: tenant("routes", true),
      greeterClone: tenant("greeter"),
      counterClone: tenant("counter", true),
      shared: tenant("shared"),
      intruder: tenant("intruder"),
      orphan: tenant("orphan"),
      chameleonDeployer: ["test/fixtures/chameleon", { IMPOSTOR: '"deployer"' }],
      chameleonCounter: ["test/fixtures/chameleon", { SERVICE: '"chameleon2"', IMPOSTOR: '"counter"' }],
    },
    // A low memory limit, so the proof's memory cap is reached quickly.
    { GRIDIRON_WORKERD_MAX_MB: "512" },
  );
  const token = () => fx.ingress.token ?? "";
  /** The texts of the lines the node kept for `bundle` (README: Logs). */
  const keptLines = async (bundle: string) => {
    const response = await fetch(`${fx.mesh.settings.opsUrl}/logs/${bundle}`, {
      headers: { authorization: `Bearer ${token()}` },
    });
    const { records } = (await response.json()) as { records: { text: string }[] };
    return records.map((record) => record.text);
  };
  const activate = (name: string, source: string | undefined, version = "1.0.0", extra: object = {}) =>
    fx.ingress.call<ActivateResult>(`deployer/${name}/activate`, { source, version, ...extra });
  const status = (name: string) => fx.ingress.call<Status>(`deployer/${name}/status`);
  const admin = (path: string, init: RequestInit = {}, credential = `Bearer ${token()}`) =>
    fetch(`${fx.mesh.settings.adminUrl}${path}`, {
      ...init,
      headers: { "content-type": "application/json", authorization: credential, ...init.headers },
    });

  /** Everything a refused request must leave as it was. */
  const snapshot = async () => ({
    greeter: await status("greeter"),
    counter: await status("counter"),
    deployments: await fx.admin.query("SELECT id, endpoint FROM sys_deployment ORDER BY id"),
    services: await fx.admin.query("SELECT name, deployment_id, public FROM sys_service ORDER BY name"),
    // The spare proof workerd's dir comes and goes with proofs; what proofs left behind is below.
    dataDir: (await readdir(fx.mesh.settings.dataDir)).filter((name) => !name.startsWith("proof-")).sort(),
    proofs: await proofLeftovers(fx.mesh),
    bundles: (await readdir(fx.mesh.settings.bundlesDir)).sort(),
    greeting: await fx.ingress.call("greeter/greet", "still"),
    count: await fx.ingress.call("counter/kept/get"),
  });

  /** `status` of every bundle and Restate's deployments (through the admin front) agree. */
  const expectAgreement = async () => {
    const keys = await fx.admin.query("SELECT DISTINCT service_key FROM state WHERE service_name = 'deployer'");
    const bundles = keys.map((row) => String(row.service_key));
    const listed = (await (await admin("/deployments")).json()) as { deployments: { id: string; uri: string }[] };
    const builds = listed.deployments.filter((d) => d.uri.startsWith(fx.mesh.settings.workerdUrl));
    const live: string[] = [];
    for (const name of bundles) {
      for (const build of (await status(name)).builds) {
        if (["active", "draining", "drained"].includes(build.state)) live.push(build.deploymentId);
      }
    }
    expect(builds.map((d) => d.id).sort()).toEqual(live.sort());
  };

  beforeAll(async () => {
    await activate("greeter", fx.sources.greeter);
    await activate("counter", fx.sources.counter);
    await fx.ingress.call("counter/kept/add");
  });

  test.each(["deployer", "routes"])(
    "a bundle declaring the control plane's %s is refused with 409 and changes nothing",
    async (service) => {
      const before = await snapshot();
      const attempt = activate("evil", fx.sources[service]);
      await expect(attempt).rejects.toMatchObject({ status: 409 });
      await expect(attempt).rejects.toThrow(`service "${service}" is reserved for Gridiron's control plane`);
      expect(await snapshot()).toEqual(before);
      // The deployer is still the control plane's: an anonymous activate is refused.
      const anonymous = new Ingress(fx.ingress.url).call("deployer/greeter/activate", {
        source: fx.sources.greeterV2,
        version: "9.9.9",
      });
      await expect(anonymous).rejects.toMatchObject({ status: 401 });
      await expectAgreement();
    },
  );

  test.each([
    ["service", "greeterClone", "greeter"],
    ["virtual object", "counterClone", "counter"],
  ])("a bundle declaring another bundle's %s is refused, naming the owner", async (_, source, service) => {
    const before = await snapshot();
    const attempt = activate("alpha", fx.sources[source]);
    await expect(attempt).rejects.toMatchObject({ status: 409 });
    await expect(attempt).rejects.toThrow(
      new RegExp(`service "${service}" belongs to bundle ${service}, build 1\\.0\\.0-[0-9a-f]{12}; `),
    );
    // The counter's state is untouched, and nothing of alpha is left but its failed record.
    expect(await snapshot()).toEqual(before);
    expect(new Set((await status("alpha")).builds.map((b) => b.state))).toEqual(new Set(["failed"]));
  });

  test("of two bundles claiming one service at once, exactly one gets it", async () => {
    const results = await Promise.allSettled([
      activate("left", fx.sources.shared),
      activate("right", fx.sources.shared),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]?.reason).toMatchObject({ status: 409 });
    const winner = (won[0] as PromiseFulfilledResult<ActivateResult>).value;
    const [row] = await fx.admin.query("SELECT deployment_id FROM sys_service WHERE name = 'shared'");
    expect(row?.deployment_id).toBe(winner.deploymentId);
    expect(await readdir(fx.mesh.settings.bundlesDir)).not.toContain(winner.name === "left" ? "right" : "left");
    await expectAgreement();
  });

  test.each([
    ["the control plane's deployer", "chameleonDeployer", "chameleon", "deployer"],
    ["another bundle's virtual object", "chameleonCounter", "chameleon2", "counter"],
  ])(
    "a build that shows restate-server a second face cannot take over %s: Restate registers what was proved",
    async (_, source, service, impostor) => {
      const bundle = `${service}-bundle`;
      const before = await snapshot();
      const impostorDeployment = async () =>
        (await fx.admin.query(`SELECT deployment_id FROM sys_service WHERE name = '${impostor}'`))[0]?.deployment_id;
      const owner = await impostorDeployment();

      const activated = await activate(bundle, fx.sources[source]);
      expect(activated.services).toEqual([service]);
      const registered = await fx.admin.query(
        `SELECT name FROM sys_service WHERE deployment_id = '${activated.deploymentId}' ORDER BY name`,
      );
      expect(registered.map((row) => row.name)).toEqual([service]);
      expect(await impostorDeployment()).toBe(owner);
      // restate-server's discovery never reached the build: it was answered from the proof's
      // record. What the build logged is kept (its live compile's request logs a line, so the
      // lines are known to have arrived), none of it a discovery from restate-server.
      let said: string[] = [];
      await eventually(async () => {
        said = await keptLines(bundle);
        expect(said.join("\n")).toMatch(/chameleon: \S+ from restate-server: false/);
      });
      expect(said.join("\n")).not.toMatch(/chameleon: \S+\/discover from restate-server: true/);
      // A signed call for the undeclared service does not reach the build either.
      const path = `/invoke/${impostor}/status`;
      const invoke = await fetch(`${fx.mesh.settings.workerdUrl}/${bundle}/${activated.buildId}${path}`, {
        method: "POST",
        headers: await identityHeaders(fx.mesh.settings, path),
      });
      expect(invoke.status).toBe(404);

      // The control plane and the counter are still what they were: an admin call goes to the real
      // deployer (whose status holds no token), and the counter's state is untouched.
      await activate("greeter", fx.sources.greeter);
      const anonymous = new Ingress(fx.ingress.url);
      expect(JSON.stringify(await anonymous.call("deployer/greeter/status"))).not.toContain(token());
      expect(await fx.ingress.call("counter/kept/get")).toBe(before.count);
      expect((await status("greeter")).builds[0]?.state).toBe("active");
      await expectAgreement();
    },
  );

  test("tenant code calling the control plane's internal handlers through Restate is refused", async () => {
    await activate("intruder", fx.sources.intruder);
    const before = await snapshot();
    const greeterBuild = before.greeter.active as string;
    const attacks = [
      { service: "routes", method: "remove", key: "local", body: { name: "greeter", buildId: greeterBuild } },
      { service: "routes", method: "view", key: "local" },
      { service: "deployer", method: "checkDrain", key: "greeter", body: { buildId: greeterBuild, watch: "x" } },
      { service: "deployer", method: "prune", key: "greeter" },
      { service: "deployer", method: "prune", key: "greeter", body: { buildId: greeterBuild, force: true } },
      { service: "deployer", method: "activate", key: "greeter", body: { source: fx.sources.intruder, version: "6" } },
      { service: "deployer", method: "putSecrets", key: "greeter", body: { secrets: { K: "a.b.c.d.e" } } },
      { service: "deployer", method: "deleteSecrets", key: "greeter", body: { names: ["K"] } },
    ];
    for (const attack of attacks) {
      const answer = await fx.ingress.call<{ refused?: string; code?: number }>("intruder/call", attack);
      expect(answer).toMatchObject({ code: 401, refused: expect.stringMatching(/Authorization: Bearer/) });
    }
    expect(await snapshot()).toEqual(before);
  });

  test("a quarantine that does not name a bundle, a cell and a reason is a 400 that changes nothing, even with the token", async () => {
    const served = () => fx.ingress.call<{ revision: number }>("routes/local/served");
    const before = await served();
    const bodies = [
      null,
      {},
      { bundle: "greeter", cell: -1, reason: "hung" },
      { bundle: "Not A Bundle", cell: 0, reason: "hung" },
      { bundle: "greeter", cell: 0, reason: "hung", also: true },
    ];
    for (const body of bodies) {
      await expect(fx.ingress.call("routes/local/quarantine", body), JSON.stringify(body)).rejects.toMatchObject({
        status: 400,
      });
    }
    expect(await served()).toEqual(before);
  });

  test("Restate's admin API answers only with the admin token; restate-server listens on no TCP port", async () => {
    const { settings } = fx.mesh;
    const refusedRequests: [string, RequestInit][] = [
      ["/deployments", {}],
      ["/deployments", { method: "POST", body: JSON.stringify({ uri: settings.workerdUrl, force: true }) }],
      ["/deployments/dp_1234?force=true", { method: "DELETE" }],
      ["/services/routes", { method: "PATCH", body: JSON.stringify({ public: true }) }],
      ["/invocations/inv_1234/kill", { method: "PATCH" }],
      ["/query", { method: "POST", body: JSON.stringify({ query: "SELECT 1" }) }],
      ["/ui/", {}],
    ];
    const wrong = [
      "",
      "Bearer not-the-token-at-all-xxxxxxxxxxxxxxx",
      `Basic ${Buffer.from("admin:wrong").toString("base64")}`,
    ];
    const before = await snapshot();
    for (const [path, init] of refusedRequests) {
      for (const credential of wrong) {
        const response = await admin(path, init, credential);
        expect(response.status).toBe(401);
        expect(response.headers.get("www-authenticate")).toMatch(/^Basic /);
      }
    }
    expect(await snapshot()).toEqual(before);

    expect((await admin("/deployments")).status).toBe(200);
    const browser = `Basic ${Buffer.from(`admin:${token()}`).toString("base64")}`;
    expect((await admin("/ui/", {}, browser)).status).toBe(200);

    const cli = (env: Record<string, string>) =>
      execa("npx", ["restate", "deployments", "list"], {
        env: { RESTATE_ADMIN_URL: settings.adminUrl, ...env },
        reject: false,
      });
    const listed = await cli({ RESTATE_AUTH_TOKEN: token() });
    expect(listed.exitCode).toBe(0);
    expect(listed.stdout).toContain(`${settings.workerdUrl}/greeter/`);
    expect((await cli({})).exitCode).not.toBe(0);

    const restate = await findChild(fx.mesh, "/restate-server ");
    const { stdout } = await execa("ss", ["-Hltnp"]);
    const ports = stdout
      .split("\n")
      .filter((line) => line.includes(`pid=${restate},`))
      .map((line) => Number(/:(\d+)\s/.exec(line)?.[1]));
    // Its admin API and ingress are unix sockets, behind the fronts (admin-front.ts, ingress-front.ts).
    expect(ports).toEqual([]);
    expect((await stat(settings.dataDir)).mode & 0o777).toBe(0o700);
  });

  test.each([
    ["never finishes", "for (;;) {}\nexport default {};", /top-level code did not finish within 5 s/],
    [
      "allocates without bound",
      "const kept = [];\nfor (;;) kept.push(new Uint8Array(64 << 20).fill(1));\nexport default {};",
      /the build used \d+ MB while loading, over GRIDIRON_WORKERD_MAX_MB=512/,
    ],
  ])(
    "top-level code that %s fails the proof with a 400 in bounded time; the live workerd never sees it",
    async (_, code, message) => {
      const dir = join(fx.buildsDir, `hostile-${code.length}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, "index.js"), code);
      const workerd = await findChild(fx.mesh, CELL_WORKERD);
      const before = await snapshot();
      // A bystander sleeping on the counter, in flight across the failed activation.
      const sleeper = await fx.ingress.send(`counter/bystander-${code.length}/add`, { delayMs: 2_000 });

      const started = Date.now();
      const attempt = activate("hostile", pathToFileURL(dir).href).catch((error: unknown) => error);
      // Another bundle's activation meanwhile does not wait for the proof.
      const other = await activate("greeter", fx.sources.greeter);
      const otherDone = Date.now() - started;
      const refusal = await attempt;
      const elapsed = Date.now() - started;

      expect(refusal).toMatchObject({ status: 400, message: expect.stringMatching(message) });
      expect(elapsed).toBeLessThan(15_000);
      expect(otherDone).toBeLessThan(5_000);
      expect(other.buildId).toBe(before.greeter.active);
      expect(await fx.ingress.attach(sleeper)).toBe(1);
      expect(await findChild(fx.mesh, CELL_WORKERD)).toBe(workerd);
      expect(fx.mesh.output.join("\n")).not.toMatch(/killing it/);
      expect(await snapshot()).toEqual(before);
      expect(await proofLeftovers(fx.mesh)).toEqual({ workerds: [], dirs: [] });
    },
    60_000,
  );

  test("every workerd, a cell's and the spare proof's, runs tenants' code with PATH alone: no token, no setting of ours", async () => {
    const environ = async (pid: number) =>
      (await readFile(`/proc/${pid}/environ`, "utf8"))
        .split("\0")
        .filter(Boolean)
        .map((line) => line.slice(0, line.indexOf("=")));
    // The mesh's own processes were started with GRIDIRON_* settings (test/mesh.ts meshEnv).
    expect(await environ(await findChild(fx.mesh, "control/main.ts"))).toContain("GRIDIRON_DATA_DIR");
    expect(await environ(await findChild(fx.mesh, CELL_WORKERD))).toEqual(["PATH"]);
    // The activations above started a spare proof workerd, which waits for the next proof.
    let spare = 0;
    await eventually(async () => {
      spare = (await proofsOf(fx.mesh)).workerds.find((w) => w.spare)?.pid ?? 0;
      expect(spare).toBeGreaterThan(0);
    });
    expect(await environ(spare)).toEqual(["PATH"]);
  }, 60_000);

  test("the files of an activation killed after it copied its build go with the bundle's next activation", async () => {
    const dir = join(fx.buildsDir, "killed");
    await mkdir(dir, { recursive: true });
    // Top-level code that never finishes keeps the activation in its proof for 5 s.
    await writeFile(join(dir, "index.js"), "for (;;) {}\nexport default {};");
    const bundleDir = join(fx.mesh.settings.bundlesDir, "orphan");
    const copied = async () => (await readdir(bundleDir).catch(() => [])).length > 0;
    void activate("orphan", pathToFileURL(dir).href).catch(() => {});
    await waitFor("the build copied", copied, 20_000);
    const [running] = await fx.admin.query(
      "SELECT id FROM sys_invocation WHERE target_handler_name = 'activate' AND target_service_key = 'orphan' AND status != 'completed'",
    );
    await fx.admin.killInvocation(String(running?.id));
    // Killed mid-proof: no record is written, and the copied files stay (what the fix cleans up).
    await waitFor("the proof ended", async () => (await proofLeftovers(fx.mesh)).dirs.length === 0, 20_000);
    const [left] = await readdir(bundleDir);
    expect(left).toMatch(/^1\.0\.0-[0-9a-f]{12}$/);
    expect((await status("orphan")).builds).toEqual([]);

    const next = await activate("orphan", fx.sources.orphan, "2.0.0");
    expect(await readdir(bundleDir)).toEqual([next.buildId]);
    expect((await status("orphan")).builds.map((b) => b.buildId)).toEqual([next.buildId]);
  });

  test("a file name too long for the data dir is a 400 that leaves no files behind", async () => {
    const dir = join(fx.buildsDir, "long-names");
    const deep = join(dir, "d".repeat(200));
    await mkdir(deep, { recursive: true });
    await writeFile(join(dir, "index.js"), "export default {};");
    await writeFile(join(deep, `${"m".repeat(100)}.txt`), "x");
    const before = await snapshot();
    const attempt = activate("long", pathToFileURL(dir).href);
    await expect(attempt).rejects.toMatchObject({ status: 400 });
    await expect(attempt).rejects.toThrow(/longer than 255 bytes/);
    expect(await snapshot()).toEqual(before);
  });

  test("a lost registration shows as drift in status, and re-activating the build repairs it", async () => {
    const before = await status("greeter");
    const deploymentId = before.builds.find((b) => b.state === "active")?.deploymentId;
    expect((await admin(`/deployments/${deploymentId}?force=true`, { method: "DELETE" })).status).toBe(202);

    const drifted = await status("greeter");
    expect(drifted.builds[0]).toMatchObject({
      state: "drifted",
      drift: [`Restate no longer knows its deployment ${deploymentId}`],
    });
    const repaired = await activate("greeter", fx.sources.greeter);
    expect(repaired.buildId).toBe(before.active);
    expect(repaired.deploymentId).not.toBe(deploymentId);
    expect((await status("greeter")).builds[0]).toMatchObject({ state: "active", deploymentId: repaired.deploymentId });
    expect(await fx.ingress.call("greeter/greet", "again")).toMatch(/^Hello, again! /);
    await expectAgreement();
  });

  test("a lost route shows as drift in status, and re-activating the build repairs it", async () => {
    const { active } = await status("greeter");
    // Restate's ingress refuses `routes/remove`, but code in a deployment that has the admin token
    // can call it through Restate.
    await activate("intruder", fx.sources.intruder);
    const removal = { service: "routes", method: "remove", key: "local", body: { name: "greeter", buildId: active } };
    const headers = { authorization: `Bearer ${token()}` };
    expect(await fx.ingress.call("intruder/call", { ...removal, headers })).toEqual({
      answer: { revision: expect.any(Number), removed: { name: "greeter", buildId: active } },
    });
    // `routes` only records it; on one node the agent serves the new record once told to, as the
    // deployer tells it after each change it makes.
    await tellAgent(fx.mesh.settings.agentSocket);
    // Not through Restate: it would retry a call to the missing route until the route is back.
    const discover = await fetch(`${fx.mesh.settings.workerdUrl}/greeter/${active}/discover`, {
      headers: await identityHeaders(fx.mesh.settings, "/discover"),
    });
    expect(discover.status).toBe(404);
    expect((await status("greeter")).builds[0]).toMatchObject({
      state: "drifted",
      drift: ["its route is gone: workerd does not serve it"],
    });
    await activate("greeter", fx.sources.greeter);
    expect((await status("greeter")).builds[0]?.state).toBe("active");
    expect(await fx.ingress.call("greeter/greet", "back")).toMatch(/^Hello, back! /);
  });

  test("a service moves to another bundle only with takeOver, and both bundles' status say so", async () => {
    const moved = await activate("hello", fx.sources.greeterClone, "1.0.0", { takeOver: ["greeter"] });
    expect(moved.services).toEqual(["greeter"]);
    expect(await fx.ingress.call("greeter/whoami")).toBe("tenant code serving greeter");
    expect((await status("greeter")).builds[0]).toMatchObject({ state: "active", movedTo: { greeter: "hello" } });
    expect((await status("hello")).builds.at(-1)).toMatchObject({
      state: "active",
      tookOver: [{ service: "greeter", from: "greeter" }],
    });
    // A new greeter build now needs takeOver too, and with it gets the service back.
    const attempt = activate("greeter", fx.sources.greeterV2, "2.0.0");
    await expect(attempt).rejects.toMatchObject({ status: 409 });
    await expect(attempt).rejects.toThrow(/service "greeter" belongs to bundle hello, build 1\.0\.0-/);
    await activate("greeter", fx.sources.greeterV2, "2.0.0", { takeOver: ["greeter"] });
    expect(await fx.ingress.call("greeter/greet", "home")).toMatch(/^Howdy, home! /);
    expect((await status("hello")).builds.at(-1)).toMatchObject({ movedTo: { greeter: "greeter" } });
    await expectAgreement();
  });
});
