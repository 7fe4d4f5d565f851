import { expect, test } from "vitest";
import { authorized } from "./admin-token.ts";

test.each([
  ["Bearer s3cret-token", true],
  ["bearer s3cret-token", true],
  ["Bearer  s3cret-token ", true],
  ["Bearer s3cret-tokem", false],
  ["Bearer s3cret-token-and-more", false],
  ["s3cret-token", false],
  ["Basic s3cret-token", false],
  [`Basic ${Buffer.from("admin:s3cret-token").toString("base64")}`, true],
  [`Basic ${Buffer.from(":s3cret-token").toString("base64")}`, true],
  [`Basic ${Buffer.from("s3cret-token:").toString("base64")}`, false],
  [`Basic ${Buffer.from("admin:s3cret-tokem").toString("base64")}`, false],
  ["Bearer ", false],
  [undefined, false],
])("%j is authorized: %s", (header, expected) => {
  expect(authorized(header, "s3cret-token")).toBe(expected);
});
