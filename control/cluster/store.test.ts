import { expect, test } from "vitest";
import { uploadIdempotencyKey } from "./store.ts";

test("an upload's idempotency keys need the admin token: public ids alone do not give them", () => {
  const key = uploadIdempotencyKey("the-admin-token-xxxxxxxx", "inv_1abc", "index.js/0");
  expect(key).toBe(uploadIdempotencyKey("the-admin-token-xxxxxxxx", "inv_1abc", "index.js/0"));
  expect(key).not.toContain("inv_1abc");
  expect(key).not.toBe(uploadIdempotencyKey("another-token-xxxxxxxxxxx", "inv_1abc", "index.js/0"));
  expect(key).not.toBe(uploadIdempotencyKey("the-admin-token-xxxxxxxx", "inv_1abc", "index.js/1"));
});
