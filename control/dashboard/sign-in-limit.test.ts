import { expect, test } from "vitest";
import { SignInLimit } from "./sign-in-limit.ts";

test("a few attempts a second per address, then a wait of about a second; other addresses are not affected", async () => {
  const limit = new SignInLimit();
  const waits = [];
  for (let i = 0; i < 5; i++) waits.push(await limit.wait("192.0.2.1"));
  expect(waits).toEqual([undefined, undefined, undefined, 1, 1]);
  expect(await limit.wait("192.0.2.2")).toBeUndefined();
});

test("after 10 wrong tokens an address waits the ten-minute window out; a right token clears its count", async () => {
  const limit = new SignInLimit();
  for (let i = 0; i < 9; i++) await limit.failed("192.0.2.1");
  await limit.succeeded("192.0.2.1");
  for (let i = 0; i < 9; i++) await limit.failed("192.0.2.1");
  expect(await limit.wait("192.0.2.1")).toBeUndefined();
  await limit.failed("192.0.2.1");
  const wait = await limit.wait("192.0.2.1");
  expect(wait).toBeGreaterThan(590);
  expect(wait).toBeLessThanOrEqual(600);
  await limit.failed("192.0.2.1");
  expect(await limit.wait("192.0.2.1")).toBeGreaterThan(590);
});
