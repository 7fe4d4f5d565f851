import { once } from "node:events";
import { execa } from "execa";
import { expect, test, vi } from "vitest";
import { configServed, killGroup, runningProcesses, servesConfig, workerdArgs } from "./process.ts";

const live = "/data/workerd/config.capnp";

test("a workerd started with workerdArgs is known by its config, however it was started", () => {
  for (const options of [{ sharedSocket: 23, control: true }, { control: false }]) {
    expect(servesConfig(["/bin/workerd", ...workerdArgs(live, options)], live)).toBe(true);
  }
});

test("a workerd serving another config (a proof's, another mesh's) is not the live one", () => {
  const args = workerdArgs("/data/proof-1/config.capnp", { control: true });
  expect(servesConfig(["/bin/workerd", ...args], live)).toBe(false);
  expect(servesConfig(["/bin/cat", live], live)).toBe(false);
  expect(servesConfig([], live)).toBe(false);
});

test("a process's config is read from its argv only when it is a workerd serving one", () => {
  const proof = "/data/proof-1/config.capnp";
  expect(configServed(["/bin/workerd", ...workerdArgs(proof, { control: true })])).toBe(proof);
  expect(configServed(["/bin/cat", "serve", proof])).toBeUndefined();
});

test("killGroup ends a detached process and what it started; one already gone is no error", async () => {
  // A shell leading its own group, with a child of its own in that group.
  const shell = execa("sh", ["-c", "sleep 60 >/dev/null & echo $!; wait"], { detached: true, reject: false });
  const [chunk] = await once(shell.stdout, "data");
  const child = Number(String(chunk));
  const leader = { pid: shell.pid as number, pgid: shell.pid as number };
  const listed = (await runningProcesses()).find((p) => p.pid === child);
  expect(listed).toMatchObject({ pgid: leader.pid, argv: ["sleep", "60", ""] });

  killGroup(leader);
  expect((await shell).signal).toBe("SIGKILL");
  await vi.waitFor(async () => expect((await runningProcesses()).map((p) => p.pid)).not.toContain(child));
  expect(() => killGroup(leader)).not.toThrow();
});
