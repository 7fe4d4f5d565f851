import { expect, test } from "vitest";
import { Sessions } from "./sessions.ts";

test("a session is valid until revoked, and an unknown or missing id never is", () => {
  const sessions = new Sessions(60_000);
  const id = sessions.open();
  expect(id).toMatch(/^[\w-]{43}$/);
  expect(sessions.valid(id)).toBe(true);
  expect(sessions.valid("admin")).toBe(false);
  expect(sessions.valid(undefined)).toBe(false);
  expect(sessions.valid(false)).toBe(false);
  sessions.revoke(id);
  expect(sessions.valid(id)).toBe(false);
});

test("a session past its age is refused by the server, whatever the browser kept", () => {
  let now = 1_000_000;
  const sessions = new Sessions(60_000, () => now);
  const id = sessions.open();
  now += 59_999;
  expect(sessions.valid(id)).toBe(true);
  now += 1;
  expect(sessions.valid(id)).toBe(false);
  // Opening another one forgets the expired one for good.
  sessions.open();
  now -= 30_000;
  expect(sessions.valid(id)).toBe(false);
});
