import { expect, test } from "vitest";
import type { BuildView } from "../domain/lifecycle.ts";
import { buildRows, formatTable } from "./status.ts";

test("formatTable aligns columns under upper-case headers", () => {
  expect(
    formatTable([
      { bundle: "greeter", version: "1.0.0", state: "draining" },
      { bundle: "counter", version: "10.0.0", state: "active" },
    ]),
  ).toBe(["BUNDLE   VERSION  STATE", "greeter  1.0.0    draining", "counter  10.0.0   active", ""].join("\n"));
});

test("formatTable says what to do when nothing is deployed", () => {
  expect(formatTable([])).toMatch(/just deploy-demo/);
});

test("formatTable shows a cell's control characters escaped, on its own row, and aligns what is shown", () => {
  expect(
    formatTable([
      { version: "1.0.0", message: "\u001b[2J\r\n✓ activated" },
      { version: "2.0.0", message: "ok" },
    ]),
  ).toBe("VERSION  MESSAGE\n1.0.0    \\u001b[2J\\r\\n✓ activated\n2.0.0    ok\n");
});

test("buildRows marks a build the routers refuse in its state", () => {
  const build: BuildView = {
    version: "1.0.0",
    buildId: "1.0.0-a",
    deploymentId: "dp_1",
    uri: "",
    services: ["hog"],
    state: "active",
    times: { active: "t" },
    filesKept: true,
    pinned: 1,
    paused: 0,
  };
  const builds = [build, { ...build, buildId: "0.9.0-z", state: "draining" as const, refused: "hung its cell" }];
  expect(buildRows({ name: "hog", active: "1.0.0-a", builds }).map((row) => row.state)).toEqual([
    "active",
    "draining,refused",
  ]);
});
