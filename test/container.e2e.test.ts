import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import getPort from "get-port";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Ingress } from "./ingress.ts";
import { eventually, expectRestartKeepingState } from "./mesh.ts";

const ROOT = resolve(import.meta.dirname, "..");
const ENGINE = join(ROOT, "container/engine");
const JUST = join(ROOT, "node_modules/.bin/just");
const SERVICE_DIR = "/etc/gridiron/service";
const GRIDIRON_UID = "10001";

/** Why no container can run here, or undefined when docker or podman answers (container/engine). */
async function noEngine(): Promise<string | undefined> {
  const info = await execa(ENGINE, ["info"], { reject: false, timeout: 60_000 });
  if (info.exitCode === 0) return undefined;
  return `no container engine runs here (${info.stderr.split("\n")[0] || `exit ${info.exitCode}`}); CI installs podman and runc`;
}
const skipped = await noEngine();
if (skipped) console.warn(`test/container.e2e.test.ts skipped: ${skipped}`);

const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(1);

/**
 * The seed's quick demo against the real image: `just docker-build`, `docker-run`, the demo's
 * recipes verbatim, then what the container promises (runit restarts, the volume, the
 * healthcheck, the user, the ports, the admin token). Names and host ports are this run's own,
 * and everything named is removed afterwards (the local base image stays, for the next build).
 */
describe.skipIf(skipped)(`the container${skipped ? ` (skipped: ${skipped})` : ""}`, () => {
  const name = `gridiron-e2e-${process.pid}`;
  const image = `localhost/gridiron-e2e:${process.pid}`;
  let dir: string;
  let env: Record<string, string>;
  let ingress: Ingress;
  let adminUrl: string;

  const engine = (args: string[], input?: string) =>
    execa(ENGINE, args, { reject: false, timeout: 120_000, ...(input === undefined ? {} : { input }) });
  const inside = (command: string) => engine(["exec", name, "sh", "-c", command]);
  const just = (args: string[], input?: string, timeout = 240_000) =>
    execa(JUST, args, { cwd: ROOT, env, extendEnv: false, reject: false, timeout, all: true, input: input ?? "" });
  const pidOf = async (service: string) =>
    Number(/^run: .*\(pid (\d+)\)/.exec((await inside(`sv status ${SERVICE_DIR}/${service}`)).stdout)?.[1]) ||
    undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "gridiron-container-"));
    const [ingressPort, adminPort, opsPort] = [await getPort(), await getPort(), await getPort()];
    // The caller's shell as a user's, less any GRIDIRON_* setting (a remote mesh, a token): the demo
    // runs with this run's names and ports only.
    const shell = Object.entries(process.env).filter(([key]) => !key.startsWith("GRIDIRON_"));
    env = {
      ...(Object.fromEntries(shell) as Record<string, string>),
      GRIDIRON_IMAGE: image,
      GRIDIRON_CONTAINER: name,
      GRIDIRON_CONTAINER_VOLUME: `${name}-data`,
      GRIDIRON_INGRESS_PORT: String(ingressPort),
      GRIDIRON_ADMIN_PORT: String(adminPort),
      GRIDIRON_OPS_PORT: String(opsPort),
      // Where `docker-run` keeps the host's copy of the admin token, as .gridiron/ is for a user.
      GRIDIRON_DATA_DIR: join(dir, "data"),
    };
    ingress = new Ingress(`http://127.0.0.1:${ingressPort}`);
    adminUrl = `http://127.0.0.1:${adminPort}`;

    let since = performance.now();
    const built = await just(["docker-build"], undefined, 1_500_000);
    expect(built.exitCode, built.all).toBe(0);
    const size = (await engine(["image", "inspect", "-f", "{{.Size}}", image])).stdout;
    console.log(`docker-build: ${seconds(since)} s, image ${(Number(size) / 1e6).toFixed(0)} MB`);

    since = performance.now();
    const ran = await just(["docker-run"]);
    expect(ran.exitCode, ran.all).toBe(0);
    console.log(`docker-run until ready: ${seconds(since)} s`);
  }, 1_800_000);

  afterAll(async () => {
    const cleaned = await just(["docker-clean"]);
    const left = await Promise.all([
      engine(["container", "inspect", name]),
      engine(["volume", "inspect", `${name}-data`]),
      engine(["image", "inspect", image]),
    ]);
    if (dir) await rm(dir, { recursive: true, force: true });
    expect(
      left.map((result) => result.exitCode),
      cleaned.all,
    ).not.toContain(0);
  }, 120_000);

  test("the quick demo, verbatim", async () => {
    const deployed = await just(["deploy-demo"]);
    expect(deployed.exitCode, deployed.all).toBe(0);
    expect(deployed.stdout).toMatch(/^greeter 1\.0\.0 is active$/m);
    expect(deployed.stdout).toMatch(/^counter 1\.0\.0 is active$/m);

    const said = async (args: string[]) => {
      const result = await just(args);
      expect(result.exitCode, result.all).toBe(0);
      return result.stdout;
    };
    expect(await said(["test-greeter"])).toBe('"Hello, World! Greetings from a workerd isolate behind Restate."');
    expect(await said(["test-greeter", "friend"])).toBe(
      '"Hello, friend! Greetings from a workerd isolate behind Restate."',
    );
    const counts = [];
    for (const key of [[], [], ["other-key"], []]) counts.push(await said(["test-counter", ...key]));
    expect(counts).toEqual(["1", "2", "1", "3"]);

    const status = await said(["status"]);
    for (const service of ["restate", "admin", "workerd", "deployer", "ops"]) {
      expect(status).toMatch(new RegExp(`^${service} +up `, "m"));
    }
    expect(status).toMatch(/^counter +1\.0\.0 +1\.0\.0-[0-9a-f]{12} +active /m);
    expect(status).toMatch(/^greeter +1\.0\.0 +1\.0\.0-[0-9a-f]{12} +active /m);

    // `docker-shell` with a script on its stdin instead of a terminal.
    expect(await said(["docker-shell"])).toBe("");
    expect((await just(["docker-shell"], "id -un\n")).stdout).toBe("gridiron");
  }, 300_000);

  test("the HEALTHCHECK turns healthy", async () => {
    // Podman runs healthchecks from systemd timers; without systemd, `healthcheck run` is how
    // they run (and it records the result). Docker runs them itself.
    const podman = (await engine(["--version"])).stdout.startsWith("podman");
    await eventually(async () => {
      if (podman) await engine(["healthcheck", "run", name]);
      const health = await engine(["inspect", "-f", "{{.State.Health.Status}}", name]);
      expect(health.stdout).toBe("healthy");
    }, 150_000);
  }, 180_000);

  test("every process inside runs as the gridiron user", async () => {
    const { stdout } = await inside("cat /proc/[0-9]*/status");
    const processes = [...stdout.matchAll(/^Name:\t(.+)$[\s\S]*?^Uid:\t(\d+)\t(\d+)/gm)].map(
      ([, command, uid, euid]) => ({
        command,
        uid,
        euid,
      }),
    );
    expect(processes.map((p) => p.command)).toEqual(
      expect.arrayContaining(["runsvdir", "runsv", "restate-server", "workerd", "node"]),
    );
    for (const process of processes) expect(process).toMatchObject({ uid: GRIDIRON_UID, euid: GRIDIRON_UID });
  });

  test("only 8080, 9070 and 9082 are published; workerd and the deployer listen on loopback; 9070 wants the token", async () => {
    const ports = (await engine(["port", name])).stdout.split("\n").map((line) => line.split(" ")[0]);
    expect(ports.sort()).toEqual(["8080/tcp", "9070/tcp", "9082/tcp"]);

    // Listening sockets (state 0A) as local address:port in hex, from inside the container.
    const { stdout } = await inside("cat /proc/net/tcp /proc/net/tcp6");
    const listening = stdout
      .split("\n")
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[3] === "0A")
      .map((fields) => {
        const [address = "", port = ""] = (fields[1] ?? "").split(":");
        return `${/^0+$/.test(address) ? "any" : address}:${Number.parseInt(port, 16)}`;
      });
    for (const port of [9080, 9081]) expect(listening).toContain(`0100007F:${port}`);
    for (const port of [8080, 9070, 9082]) expect(listening).toContain(`any:${port}`);

    // `docker-run` made the token on the host and handed it to the container.
    const token = (await readFile(join(dir, "data", "admin-token"), "utf8")).trim();
    expect((await inside("printenv GRIDIRON_ADMIN_TOKEN")).stdout).toBe(token);
    const list = (authorization?: string) =>
      fetch(`${adminUrl}/deployments`, { headers: authorization ? { authorization } : {} });
    const before = (await (await list(`Bearer ${token}`)).json()) as { deployments: unknown[] };
    for (const refused of [undefined, "Bearer wrong", `Basic ${btoa("admin:wrong")}`]) {
      expect((await list(refused)).status).toBe(401);
    }
    const register = await fetch(`${adminUrl}/deployments`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ uri: "http://127.0.0.1:9081/", force: true }),
    });
    expect(register.status).toBe(401);
    const after = (await (await list(`Bearer ${token}`)).json()) as { deployments: unknown[] };
    expect(after.deployments).toEqual(before.deployments);
  });

  test.each(["workerd", "restate"])(
    "kill -9 of %s inside: runit restarts it and the counter keeps its state",
    async (service) => {
      const kill = async (pid: number) => expect((await inside(`kill -9 ${pid}`)).exitCode).toBe(0);
      await expectRestartKeepingState(() => pidOf(service), kill, ingress, 90_000);
    },
    150_000,
  );

  test("a new container on the same volume keeps every deployment and all state", async () => {
    const before = await ingress.call<number>("counter/k/add");
    const statusBefore = await just(["status"]);
    const builds = (text: string) => text.match(/^(counter|greeter) +1\.0\.0 +1\.0\.0-[0-9a-f]{12} +active /gm);
    expect(builds(statusBefore.stdout)).toHaveLength(2);

    // SIGTERM to runsvdir stops each service the way runit does, then the container is gone.
    const since = performance.now();
    expect((await engine(["stop", "-t", "30", name])).exitCode).toBe(0);
    expect((await engine(["rm", name])).exitCode).toBe(0);
    const ran = await just(["docker-run"]);
    expect(ran.exitCode, ran.all).toBe(0);
    console.log(`stop, rm and docker-run again until ready: ${seconds(since)} s`);

    const statusAfter = await just(["status"]);
    expect(statusAfter.exitCode, statusAfter.all).toBe(0);
    expect(builds(statusAfter.stdout)).toEqual(builds(statusBefore.stdout));
    await eventually(async () => expect(await ingress.call("greeter/greet", "back")).toMatch(/^Hello, back! /), 60_000);
    expect(await ingress.call("counter/k/add")).toBe(before + 1);
    expect(await ingress.call("counter/other-key/add")).toBe(2);
  }, 300_000);
});
