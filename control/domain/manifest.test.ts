import { describe, expect, test } from "vitest";
import { declaredBy, MAX_MANIFEST_BYTES, readManifest, registrationDifference } from "./manifest.ts";

const V4 = "application/vnd.restate.endpointmanifest.v4+json";
const manifest = (services: string[]) =>
  JSON.stringify({ protocolMode: "BIDI_STREAM", services: services.map((name) => ({ name, handlers: [] })) });

describe("readManifest", () => {
  test("keeps the services and the manifest, written again", () => {
    const read = readManifest(` ${manifest(["greeter"])} `, V4);
    expect(read.services.map((s) => s.name)).toEqual(["greeter"]);
    expect(read.recorded).toEqual({ contentType: V4, body: manifest(["greeter"]) });
    expect(declaredBy(read.recorded)).toEqual({ services: ["greeter"], protocolMode: "BIDI_STREAM" });
  });

  test("a duplicated key means what Gridiron read, in what Restate will be shown", () => {
    const body = `{"protocolMode":"BIDI_STREAM","services":[{"name":"deployer"}],"services":[{"name":"honest"}]}`;
    const read = readManifest(body, V4);
    expect(read.recorded.body).not.toContain("deployer");
    expect(declaredBy(read.recorded).services).toEqual(["honest"]);
  });

  test.each([
    ["not JSON", "{", V4, /not JSON/],
    ["malformed", JSON.stringify({ services: "x" }), V4, /malformed/],
    ["another content type", manifest(["a"]), "text/html", /content type "text\/html"/],
    ["a header smuggled in the content type", manifest(["a"]), `${V4}\r\nx-evil: 1`, /content type/],
    ["too large", manifest(["x".repeat(MAX_MANIFEST_BYTES)]), V4, /over 256 KiB/],
  ])("refuses a manifest that is %s", (_, body, type, message) => {
    expect(() => readManifest(body, type)).toThrow(message);
  });
});

describe("registrationDifference", () => {
  test("none when Restate registered exactly the proved services, in any order", () => {
    expect(registrationDifference(["a", "b"], ["b", "a"])).toBeUndefined();
  });

  test("names services Restate registered beyond the proof, and those it left out", () => {
    expect(registrationDifference(["chameleon"], ["chameleon", "deployer"])).toBe(
      'Restate registered "deployer", which the proof did not see',
    );
    expect(registrationDifference(["a", "b"], ["a", "c"])).toBe(
      'Restate registered "c", which the proof did not see; Restate did not register "b"',
    );
  });
});
