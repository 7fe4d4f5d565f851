import { randomUUID } from "node:crypto";
import { execa } from "execa";
import { beforeAll, describe, expect, test } from "vitest";
import { errorRate, meshOutcomes } from "../control/logs/outcomes.ts";
import type { LogRecord } from "../control/logs/records.ts";
import type { BuildOutcomes } from "../control/logs/store.ts";
import { MAX_LINE_CHARS, SIGNATURE_WARNING } from "../control/node/workerd/router/logs.js";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { CLI, gridironOf, ROOT } from "./cli.ts";
import { eventually, useTestMesh } from "./mesh.ts";

/** Every line a build writes is kept per bundle with its build, call and invocation, and counted by outcome. */
describe("logs and outcomes per bundle", () => {
  const fx = useTestMesh({ chatty: ["test/fixtures/chatty"] });
  const gridiron = gridironOf(() => fx.mesh);
  let build: string;

  beforeAll(async () => {
    ({ buildId: build } = await fx.ingress.call<ActivateResult>("deployer/chatty/activate", {
      source: fx.sources.chatty,
      version: "1.0.0",
    }));
  }, 120_000);

  const logs = async (args: string[]) => {
    const shown = await gridiron(["--json", "logs", "chatty", ...args]);
    expect(shown.exitCode, shown.stderr).toBe(0);
    return JSON.parse(shown.stdout) as LogRecord[];
  };
  const ops = (path: string, token?: string) =>
    fetch(`${fx.mesh.settings.opsUrl}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  test("a call's lines are found by its invocation id, attributed to bundle, build and handler; the SDK's signature warning is not kept; workerd prints none of them", async () => {
    const text = `hello-${randomUUID()}`;
    const id = await fx.ingress.send("chatty/say", { text });
    expect(await fx.ingress.attach(id)).toBe(text);
    let lines: LogRecord[] = [];
    await eventually(async () => {
      lines = await logs(["--invocation", id]);
      expect(lines.map((line) => line.text)).toContain(`said: ${text}`);
    });
    for (const line of lines) {
      expect(line).toMatchObject({ bundle: "chatty", build, target: "chatty/say", invocationId: id, outcome: "ok" });
    }
    // The SDK's own lines for the call are there too, with the user's.
    expect(lines.some((line) => line.text.includes("[restate]") && line.text.includes(id))).toBe(true);
    // The SDK's warning was neither kept nor printed; workerd printed none of the build's lines.
    expect((await logs([])).some((line) => line.text.includes(SIGNATURE_WARNING))).toBe(false);
    expect(fx.mesh.output.some((line) => line.includes(SIGNATURE_WARNING) || line.includes(text))).toBe(false);
    const pretty = await gridiron(["logs", "chatty", "--invocation", id, "--since", "10m"]);
    expect(pretty.stdout).toContain(`${build} chatty/say ${id} LOG said: ${text}`);
  }, 120_000);

  test("the lines need the admin token; without it nothing is shown", async () => {
    expect((await ops("/logs/chatty")).status).toBe(401);
    expect((await ops("/logs/chatty", "x".repeat(32))).status).toBe(401);
    expect((await ops("/logs/chatty/tail")).status).toBe(401);
    const shown = await gridiron(["logs", "chatty"], { GRIDIRON_ADMIN_TOKEN: "y".repeat(32) });
    expect(shown.exitCode).toBe(1);
    expect(shown.stdout).toBe("");
    expect(shown.stderr).toContain("401");
  }, 60_000);

  test("outcomes per build: ok and error attempts on /metrics and /outcomes; --status error finds the failure", async () => {
    const why = `why-${randomUUID()}`;
    await expect(fx.ingress.call("chatty/fail", why)).rejects.toThrow(`failed: ${why}`);
    await fx.ingress.call("chatty/say", { text: "fine" });
    await eventually(async () => {
      const outcomes = (await (await ops("/outcomes")).json()) as BuildOutcomes[];
      const mine = outcomes.find((o) => o.bundle === "chatty" && o.build === build);
      expect(mine?.counts.error).toBeGreaterThanOrEqual(1);
      expect(mine?.counts.ok).toBeGreaterThanOrEqual(2);
      const metrics = await (await ops("/metrics")).text();
      expect(metrics).toMatch(
        new RegExp(`gridiron_attempts_total\\{bundle="chatty",build="${build}",outcome="error"\\} [1-9]`),
      );
      expect(metrics).toMatch(
        new RegExp(`gridiron_attempt_duration_seconds_count\\{bundle="chatty",build="${build}"\\} [1-9]`),
      );
    });
    // The same counts for a rollout, summed over the mesh's nodes (one here).
    const mesh = await meshOutcomes(fx.mesh.settings);
    expect(mesh.answered).toEqual(["local"]);
    const summed = mesh.builds.find((o) => o.build === build);
    expect(summed && errorRate(summed.counts)).toBeGreaterThan(0);
    // The dashboard shows each build's calls and errors of the last minute, to anyone.
    const page = await (await ops("/")).text();
    expect(page).toMatch(new RegExp(`data-build="${build}"[^]*?data-calls="[1-9]\\d*" data-errors="[1-9]`));
    const failed = await logs(["--status", "error"]);
    expect(failed.map((line) => line.text)).toContain(`failing: ${why}`);
    expect(failed.every((line) => line.outcome !== "ok")).toBe(true);
    expect((await logs(["--status", "ok"])).some((line) => line.text.includes(why))).toBe(false);
  }, 120_000);

  test("an exception thrown past the SDK is kept with its call's lines and counted as an exception", async () => {
    const id = await fx.ingress.send("chatty/explode");
    try {
      await eventually(async () => {
        const lines = await logs(["--invocation", id]);
        expect(lines.map((line) => line.text)).toContain("about to explode");
        expect(lines.find((line) => line.level === "exception")).toMatchObject({
          build,
          target: "chatty/explode",
          outcome: "exception",
          text: expect.stringContaining("Error: exploded past the SDK"),
        });
        const outcomes = (await (await ops("/outcomes")).json()) as BuildOutcomes[];
        expect(outcomes.find((o) => o.build === build)?.counts.exception).toBeGreaterThanOrEqual(1);
      });
    } finally {
      // Restate retries it (workerd answers 500); it is of no use past here.
      await fx.admin.killInvocation(id);
    }
  }, 60_000);

  test("a long line is cut, with a marker", async () => {
    const id = await fx.ingress.send("chatty/say", { text: "long", pad: 100_000 });
    await fx.ingress.attach(id);
    await eventually(async () => {
      const long = (await logs(["--invocation", id, "--search", "long: xxx"]))[0];
      expect(long?.text.length).toBeLessThan(MAX_LINE_CHARS + 40);
      expect(long?.text).toMatch(/… \[cut \d+ chars\]$/);
    });
  }, 60_000);

  test("gridiron tail streams new lines live, filtered, and ends cleanly on Ctrl-C", async () => {
    const marker = `live-${randomUUID()}`;
    const tail = execa(process.execPath, [CLI, "tail", "chatty", "--format", "json", "--search", marker], {
      cwd: ROOT,
      reject: false,
      env: {
        GRIDIRON_DATA_DIR: fx.mesh.settings.dataDir,
        GRIDIRON_INGRESS_PORT: String(fx.mesh.settings.ports.ingress),
        GRIDIRON_OPS_PORT: String(fx.mesh.settings.ports.ops),
      },
    });
    let seen = "";
    tail.stdout?.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
    });
    await fx.ingress.call("chatty/say", { text: "not wanted" });
    // The tail may connect after a call: call until one shows.
    await eventually(async () => {
      await fx.ingress.call("chatty/say", { text: marker });
      expect(seen).toContain(marker);
    });
    tail.kill("SIGINT");
    const ended = await tail;
    expect(ended.exitCode, ended.stderr).toBe(0);
    const records = seen
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as LogRecord);
    expect(records.length).toBeGreaterThan(0);
    for (const record of records) {
      expect(record.text).toContain(marker);
      expect(record).toMatchObject({ bundle: "chatty", build, target: "chatty/say" });
    }
  }, 120_000);

  test("a noisy call is kept within the bundle's cap, and a quiet call's line is still found by its id", async () => {
    // One after the other: each call's 15,000 lines stay under the isolate's own cap, so every line
    // reaches the store, and which are kept depends on the store's cap alone.
    await fx.ingress.call("chatty/noisy", 15_000);
    await fx.ingress.call("chatty/noisy", 15_000);
    const text = `after-${randomUUID()}`;
    const id = await fx.ingress.send("chatty/say", { text });
    await fx.ingress.attach(id);
    await eventually(async () => {
      expect((await logs(["--invocation", id])).map((line) => line.text)).toContain(`said: ${text}`);
    });
    // 30,000 noise lines sent, the bundle's cap 10,000: the newest are kept, the oldest let go.
    // Searched rather than counted: a query answers 10,000 lines at most whatever the store keeps.
    expect((await logs([])).some((line) => line.text.startsWith("noise "))).toBe(true);
    expect((await logs(["--search", "noise 14999"])).length).toBeGreaterThan(0);
    expect(await logs(["--search", "noise 0"])).toEqual([]);
  }, 180_000);
});
