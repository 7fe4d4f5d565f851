import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, expect, test, vi } from "vitest";
import { SupervisedThread } from "./supervised-thread.ts";

/** A thread of test/fixtures/threads/, as the supervisor runs the deployer, with what it logged. */
function supervise(fixture: string, maxOldGenerationSizeMb = 64) {
  const logged: string[] = [];
  const module = new URL(`../../test/fixtures/threads/${fixture}.js`, import.meta.url);
  let starts = 0;
  const thread = new SupervisedThread(
    { name: fixture, module, resourceLimits: { maxOldGenerationSizeMb } },
    () => starts++,
    (line) => logged.push(line),
  );
  running.push(thread);
  thread.start();
  return { thread, logged, starts: () => starts };
}

const running: SupervisedThread[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((thread) => thread.stop()));
});

const until = (check: () => void, timeout = 15_000) => vi.waitFor(check, { timeout, interval: 50 });

test.each([
  ["crash", /^\[gridiron\] crash failed: Error: boom\n\s+at /],
  ["reject", /^\[gridiron\] reject failed: Error: nobody awaited this\n\s+at /],
])("a thread whose %s ends it is logged and started again, with a growing backoff", async (fixture, failure) => {
  const { logged, starts } = supervise(fixture);
  await until(() => expect(logged.filter((line) => line === `[${fixture}] started`)).toHaveLength(2));
  expect(logged.find((line) => line.startsWith(`[gridiron] ${fixture} failed`))).toMatch(failure);
  expect(logged).toContain(`[gridiron] ${fixture} exited with code 1; restarting in 500 ms`);
  await until(() => expect(logged).toContain(`[gridiron] ${fixture} exited with code 1; restarting in 1000 ms`));
  expect(starts()).toBeGreaterThanOrEqual(2);
});

test("a thread past its heap limit ends alone, and is started again", async () => {
  const { logged } = supervise("grow", 16);
  await until(() => expect(logged).toContain("[gridiron] grow exited with code 1; restarting in 500 ms"));
  expect(logged.find((line) => line.startsWith("[gridiron] grow failed"))).toMatch(/ERR_WORKER_OUT_OF_MEMORY/);
  await until(() => expect(logged.filter((line) => line === "[grow] started")).toHaveLength(2));
});

test("a thread stuck in a busy loop leaves this event loop free, and kill ends it at once", async () => {
  const { thread, logged } = supervise("spin");
  await until(() => expect(logged).toContain("[spin] started"));
  // Our timers keep firing on time while it spins.
  const lateness: number[] = [];
  for (let i = 0; i < 10; i++) {
    const started = Date.now();
    await sleep(20);
    lateness.push(Date.now() - started - 20);
  }
  expect(Math.max(...lateness)).toBeLessThan(500);
  const killedAt = Date.now();
  thread.kill();
  await until(() => expect(logged).toContain("[gridiron] spin exited with code 1; restarting in 500 ms"));
  expect(Date.now() - killedAt).toBeLessThan(2_000);
  // Before it is started again: a spinning thread would make stop wait its whole grace period.
  await thread.stop();
});

test("stop asks the thread to clean up and end, and it is not started again", async () => {
  const { thread, logged } = supervise("polite");
  await until(() => expect(logged).toContain("[polite] started"));
  await thread.stop();
  await until(() => expect(logged).toContain("[polite] cleaned up"));
  await sleep(800);
  expect(logged.filter((line) => line.includes("exited with"))).toEqual([]);
  expect(logged.filter((line) => line === "[polite] started")).toHaveLength(1);
});
