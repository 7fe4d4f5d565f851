import { expect, test } from "vitest";
import { testBuild } from "../domain/build.fixture.ts";
import type { AdminClient } from "../restate/admin-client.ts";
import { objectsInUse, uploadIdempotencyKey } from "./store-client.ts";

test("an upload's idempotency keys need the admin token: public ids alone do not give them", () => {
  const key = uploadIdempotencyKey("the-admin-token-xxxxxxxx", "inv_1abc", "index.js/0");
  expect(key).toBe(uploadIdempotencyKey("the-admin-token-xxxxxxxx", "inv_1abc", "index.js/0"));
  expect(key).not.toContain("inv_1abc");
  expect(key).not.toBe(uploadIdempotencyKey("another-token-xxxxxxxxxxx", "inv_1abc", "index.js/0"));
  expect(key).not.toBe(uploadIdempotencyKey("the-admin-token-xxxxxxxx", "inv_1abc", "index.js/1"));
});

test("the objects still in use are those every other stored build's manifest names in S3, by bucket and key", async () => {
  const manifest = (buildId: string, hashes: string[], objects?: string) =>
    JSON.stringify({
      build: testBuild("x", buildId),
      files: hashes.map((sha256, i) => ({ name: `f${i}`, chunks: objects ? 0 : 1, sha256 })),
      ...(objects ? { objects } : {}),
    });
  const rows = [
    // Stored before each bundle had a prefix of its own: their files are shared across bundles.
    { objectKey: "counter@2.0.0-a", value: manifest("2.0.0-a", ["index-a", "wasm"], "s3://b/builds") },
    { objectKey: "greeter@1.0.0-g", value: manifest("1.0.0-g", ["index-g", "wasm"], "s3://b/builds") },
    // A bundle's prefix: the same wasm there is another object.
    { objectKey: "counter@3.0.0-c", value: manifest("3.0.0-c", ["index-c", "wasm"], "s3://b/builds/counter") },
    // Chunks in Restate's state: no object of its own in the bucket.
    { objectKey: "old@1.0.0-o", value: manifest("1.0.0-o", ["index-a"]) },
  ];
  const admin = { stateValues: async () => rows } as unknown as AdminClient;
  expect([...(await objectsInUse(admin, { name: "counter", buildId: "2.0.0-a" }))].sort()).toEqual([
    "b/builds/counter/sha256/index-c",
    "b/builds/counter/sha256/wasm",
    "b/builds/sha256/index-g",
    "b/builds/sha256/wasm",
  ]);
});
