import { execa } from "execa";
import { expect, test } from "vitest";

const KILL_ROUNDS = new URL("../../test/fixtures/threads/kill-rounds.js", import.meta.url);
/** Without the sessions cut, this process aborted in each of eight runs, within 1-31 rounds in the five that counted them. */
const ROUNDS = 100;

test("a thread that ends while its HTTP/2 sessions receive ends alone, not its process", async () => {
  const run = await execa(process.execPath, [KILL_ROUNDS.pathname, String(ROUNDS)], { reject: false });
  expect(run.stderr).not.toContain("onread->IsFunction()");
  expect({ exitCode: run.exitCode, signal: run.signal }).toEqual({ exitCode: 0, signal: undefined });
  expect(run.stdout).toBe(`survived ${ROUNDS} rounds`);
}, 180_000);
