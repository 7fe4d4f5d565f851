import { describe, expect, test } from "vitest";
import type { LoadedBuild } from "./workerd-config.ts";
import { loaderConfig, serviceName, staticConfig } from "./workerd-config.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const router = { main: "ROUTER", identity: "IDENTITY", identityKey: "KEY" };

function build(name: string, buildId: string): LoadedBuild {
  return {
    name,
    version: "1.0.0",
    buildId,
    mainModule: "index.js",
    compatibilityDate: "2026-11-01",
    compatibilityFlags: ["nodejs_compat"],
    modules: [
      { name: "core.wasm", type: "wasm" },
      { name: "index.js", type: "esModule" },
      { name: "page.html", type: "text" },
    ],
    moduleContents: new Map([
      ["core.wasm", bytes("\0asm")],
      ["index.js", bytes("export default {}")],
      ["page.html", bytes("<p>hi</p>")],
    ]),
  };
}

describe("staticConfig", () => {
  const config = staticConfig([build("greeter", "1.0.0-aaa"), build("counter", "1.0.0-bbb")], "127.0.0.1:9080", router);

  test("serves the router on the socket", () => {
    expect(config.sockets).toEqual([
      { name: "http", address: "127.0.0.1:9080", http: {}, service: { name: "router" } },
    ]);
  });

  test("binds Restate's identity key and every build to the router, under its service name", () => {
    const routerService = config.services?.find((s) => s.name === "router");
    expect(routerService && "worker" in routerService && routerService.worker?.bindings).toEqual([
      { name: "RESTATE_IDENTITY_KEY", text: "KEY" },
      { name: "greeter/1.0.0-aaa", service: { name: "greeter/1.0.0-aaa" } },
      { name: "counter/1.0.0-bbb", service: { name: "counter/1.0.0-bbb" } },
    ]);
  });

  test("gives each build its own worker with typed modules, main module first", () => {
    const greeter = config.services?.find((s) => s.name === "greeter/1.0.0-aaa");
    expect(greeter && "worker" in greeter && greeter.worker).toEqual({
      compatibilityDate: "2026-11-01",
      compatibilityFlags: ["nodejs_compat"],
      modules: [
        { name: "index.js", esModule: "export default {}" },
        { name: "core.wasm", wasm: bytes("\0asm") },
        { name: "page.html", text: "<p>hi</p>" },
      ],
    });
  });

  test("with no builds there is only the router", () => {
    expect(staticConfig([], "127.0.0.1:1", router).services?.map((s) => s.name)).toEqual(["router"]);
  });

  test("a module that was not loaded is an error, not an empty module", () => {
    const broken = build("x", "1");
    broken.moduleContents.delete("core.wasm");
    expect(() => staticConfig([broken], "a:1", router)).toThrow(/core.wasm of x\/1 was not loaded/);
  });

  test("service names are name/buildId", () => expect(serviceName({ name: "a", buildId: "1-b" })).toBe("a/1-b"));
});

describe("loaderConfig", () => {
  const config = loaderConfig({ bundles: "/data/bundles", routes: "/data/proof-1" }, "127.0.0.1:9080", router);

  test("gives the router the Worker Loader, the bundles dir and the routes dir, read-only, and nothing per build", () => {
    expect(config.services).toEqual([
      {
        name: "router",
        worker: {
          compatibilityDate: expect.any(String),
          modules: [
            { name: "router.js", esModule: "ROUTER" },
            { name: "identity.js", esModule: "IDENTITY" },
          ],
          bindings: [
            { name: "RESTATE_IDENTITY_KEY", text: "KEY" },
            { name: "LOADER", workerLoader: { id: "builds" } },
            { name: "BUNDLES", service: { name: "bundles" } },
            { name: "ROUTES", service: { name: "routes" } },
          ],
        },
      },
      { name: "bundles", disk: { path: "/data/bundles", writable: false } },
      { name: "routes", disk: { path: "/data/proof-1", writable: false } },
    ]);
  });

  test("serves the router on the socket, and on a probe port of its own", () => {
    expect(config.sockets).toEqual([
      { name: "http", address: "127.0.0.1:9080", http: {}, service: { name: "router" } },
      { name: "probe", address: "127.0.0.1:0", http: {}, service: { name: "router" } },
    ]);
  });
});
