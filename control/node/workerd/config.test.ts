import { describe, expect, test } from "vitest";
import { buildPath } from "../../contracts.ts";
import { CapnpEnum } from "./capnp-text.ts";
import { loaderConfig, workerdV8Flags } from "./config.ts";

const router = {
  modules: [
    { name: "router.js", esModule: "ROUTER" },
    { name: "identity.js", esModule: "IDENTITY" },
  ],
  attributionModules: { "attribute.js": "ATTRIBUTE" },
  identityKey: "KEY",
  secretsKeys: [
    { pem: "PEM", kid: "KID" },
    { pem: "OLD", kid: "OLD_KID" },
  ],
};

test("service names are name/buildId", () => expect(buildPath({ name: "a", buildId: "1-b" })).toBe("a/1-b"));

describe("loaderConfig", () => {
  const config = loaderConfig(
    "/data/bundles",
    { routesDir: "/data/proof-1", address: "127.0.0.1:9080", discovery: "build" },
    router,
    workerdV8Flags({ workerdSemiSpaceMb: 1, workerdFullGc: true }),
  );

  test("every isolate gets the small young generation and full collections, unless the settings turn them off", () => {
    expect(config.v8Flags).toEqual(["--max-semi-space-size=1", "--gc-global"]);
    expect(workerdV8Flags({ workerdSemiSpaceMb: 0, workerdFullGc: true })).toEqual(["--gc-global"]);
    expect(workerdV8Flags({ workerdSemiSpaceMb: 0, workerdFullGc: false })).toEqual([]);
  });

  test("gives the router the Worker Loader, the bundles dir and the routes dir, read-only, the secrets key unextractable, and nothing per build", () => {
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
            { name: "DISCOVERY", text: "build" },
            { name: "LOADER", workerLoader: { id: "builds" } },
            { name: "BUNDLES", service: { name: "bundles" } },
            { name: "ROUTES", service: { name: "routes" } },
            { name: "SECRETS_KEY_IDS", text: '["KID","OLD_KID"]' },
            ...["PEM", "OLD"].map((pkcs8, i) => ({
              name: `SECRETS_KEY_${i}`,
              cryptoKey: {
                pkcs8,
                algorithm: { json: '{"name":"RSA-OAEP","hash":"SHA-256"}' },
                extractable: false,
                usages: [new CapnpEnum("unwrapKey")],
              },
            })),
          ],
        },
      },
      { name: "bundles", disk: { path: "/data/bundles", writable: false } },
      { name: "routes", disk: { path: "/data/proof-1", writable: false } },
    ]);
  });

  test("without attribution, no attribution modules and no collector", () => {
    expect(JSON.stringify(config)).not.toContain("ATTRIBUTE");
    expect(JSON.stringify(config)).not.toContain("collector");
  });

  test("the live workerd's router gets the attribution modules and the collector's unix socket", () => {
    const live = loaderConfig(
      "/data/bundles",
      {
        routesDir: "/data/bundles",
        address: "127.0.0.1:9080",
        discovery: "recorded",
        attribution: { collectorSocket: "/data/logs.sock" },
      },
      router,
      [],
    );
    const bindings = JSON.stringify(live.services?.[0]);
    expect(bindings).toContain(JSON.stringify({ name: "COLLECTOR", service: { name: "collector" } }));
    expect(bindings).toContain(JSON.stringify({ name: "ATTRIBUTION", text: '{"attribute.js":"ATTRIBUTE"}' }));
    expect(live.services?.slice(3)).toEqual([
      { name: "collector", external: { address: "unix:/data/logs.sock", http: {} } },
    ]);
  });

  test("a proof loads builds with the attribution modules, as the live workerd will, but has no collector", () => {
    const proof = loaderConfig(
      "/data/bundles",
      { routesDir: "/data/proof-1", address: "127.0.0.1:0", discovery: "build", attribution: "dropped" },
      router,
      [],
    );
    const bindings = JSON.stringify(proof.services?.[0]);
    expect(bindings).toContain(JSON.stringify({ name: "ATTRIBUTION", text: '{"attribute.js":"ATTRIBUTE"}' }));
    expect(JSON.stringify(proof)).not.toContain("collector");
  });

  test("serves the router on the socket, and on a probe port of its own", () => {
    expect(config.sockets).toEqual([
      { name: "http", address: "127.0.0.1:9080", http: {}, service: { name: "router" } },
      { name: "probe", address: "127.0.0.1:0", http: {}, service: { name: "router" } },
    ]);
  });
});
