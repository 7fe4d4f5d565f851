import { expect, test } from "vitest";
import { testBuild } from "./build.fixture.ts";
import type { BuildRecord } from "./lifecycle.ts";
import { StoredBuilds, StoredSecrets } from "./records.ts";

/** A record as the deployer writes it today, every optional field set. */
const full: BuildRecord = {
  ...testBuild("greeter", "1.0.0-a"),
  vars: { GREETING: { text: "hi" } },
  secrets: { TOKEN: { revision: "r1", sealed: "x.y.z" } },
  deploymentId: "dp_a",
  uri: "http://127.0.0.1:9080/greeter/1.0.0-a",
  services: ["greeter"],
  protocolMode: "BIDI_STREAM",
  manifest: { contentType: "application/json", body: "{}" },
  state: "draining",
  times: { active: "t0", draining: "t1" },
  filesKept: true,
  watch: "w1",
  error: "none",
  tookOver: [{ service: "greeter", from: "old" }],
  requiredSecrets: ["TOKEN"],
  origin: { source: "https://example.com/b.tgz", message: "fix" },
  lastDrainCheck: "t2",
  history: [{ at: "t0", event: "activated", durationMs: 5 }],
};

test("a record as the deployer writes it reads back unchanged", () => {
  expect(StoredBuilds.parse(JSON.parse(JSON.stringify([full])))).toEqual([full]);
});

test("a record written before the optional fields existed still reads", () => {
  const old = { ...testBuild("greeter", "0.9.0-b"), deploymentId: null, uri: "u", services: [] };
  const stored = { ...old, state: "failed", times: { failed: "t" }, filesKept: false };
  expect(StoredBuilds.parse([stored])).toEqual([stored]);
});

test("a record of another shape is refused rather than read wrong", () => {
  expect(StoredBuilds.safeParse([{ ...full, state: "gone" }]).success).toBe(false);
  expect(StoredBuilds.safeParse([{ ...full, uri: undefined }]).success).toBe(false);
});

test("stored secrets read back unchanged", () => {
  const secrets = { TOKEN: { revision: "r1", sealed: "x.y.z", setAt: "t" } };
  expect(StoredSecrets.parse(secrets)).toEqual(secrets);
});
