import { describe, expect, test } from "vitest";
import { BundleName, buildIdFor, chooseMainModule, compatibilityDateOf, moduleType, Version } from "./bundle.ts";

describe("moduleType", () => {
  test.each([
    ["index.js", "esModule"],
    ["worker.mjs", "esModule"],
    ["legacy.cjs", "commonJsModule"],
    ["d8617f2f-sdk_shared_core_wasm_bindings_bg.wasm", "wasm"],
    ["page.html", "text"],
    ["notes.txt", "text"],
    ["blob.bin", "data"],
    ["data.json", "json"],
  ])("%s is %s", (file, type) => expect(moduleType(file)).toBe(type));

  test.each(["README.md", "index.js.map", "gridiron.json", "image.png"])("%s is not a module", (file) =>
    expect(moduleType(file)).toBeUndefined(),
  );
});

describe("chooseMainModule", () => {
  const es = (name: string) => ({ name, type: "esModule" as const });
  const wasm = { name: "core.wasm", type: "wasm" as const };

  test("prefers wrangler's index.js", () =>
    expect(chooseMainModule([es("a.js"), es("index.js"), wasm])).toBe("index.js"));
  test("takes the only ES module", () => expect(chooseMainModule([es("worker.mjs"), wasm])).toBe("worker.mjs"));
  test("takes the named one", () => expect(chooseMainModule([es("a.js"), es("b.js")], "b.js")).toBe("b.js"));
  test("refuses a named module that is not there", () =>
    expect(chooseMainModule([es("a.js")], "b.js")).toEqual({ error: expect.stringContaining('"b.js"') }));
  test("refuses a bundle without ES modules", () =>
    expect(chooseMainModule([wasm])).toEqual({ error: expect.stringContaining("no main module") }));
  test("refuses to guess between several", () =>
    expect(chooseMainModule([es("a.js"), es("b.js")])).toEqual({ error: expect.stringContaining("gridiron.json") }));
});

describe("names and versions", () => {
  test.each(["greeter", "my-service-2", "a"])("%s is a bundle name", (name) =>
    expect(BundleName.safeParse(name).success).toBe(true),
  );
  test.each(["", "Greeter", "2fast", "a/b", "../x", "a".repeat(64), "with space"])("%j is not", (name) =>
    expect(BundleName.safeParse(name).success).toBe(false),
  );
  test.each(["1.0.0", "2.0.0-rc.1", "1.0.0+build.5", "v3"])("%s is a version", (v) =>
    expect(Version.safeParse(v).success).toBe(true),
  );
  test.each(["", "../1", "1 0", "1/0", ".1"])("%j is not", (v) => expect(Version.safeParse(v).success).toBe(false));
});

test("the default compatibility date is workerd's build date", () => {
  expect(compatibilityDateOf("1.20261117.1")).toBe("2026-11-17");
  expect(() => compatibilityDateOf("banana")).toThrow(/unexpected workerd version/);
});

test("a build id is the version and twelve hex digits of the hash", () => {
  expect(buildIdFor("1.0.0", "0123456789abcdef0123")).toBe("1.0.0-0123456789ab");
});
