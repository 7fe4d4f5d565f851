import { describe, expect, test } from "vitest";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { useTestMesh } from "./mesh.ts";

/**
 * Egress per bundle: by default a build fetches the public internet as before; `"egress": "none"`
 * leaves it no network, `{ allow }` only the hosts named, enforced by the Worker Loader's
 * globalOutbound. A refused fetch fails inside the bundle, saying why.
 */
describe("egress", () => {
  const fx = useTestMesh({ egress: ["test/fixtures/egress"] });

  const activate = (version: string, egress?: unknown) =>
    fx.ingress.call<ActivateResult>("deployer/egress/activate", {
      source: fx.sources.egress,
      version,
      ...(egress === undefined ? {} : { egress }),
    });
  const fetchFrom = (url: string) => fx.ingress.call<string>("egress/fetch", url);

  test("an allowlist lets the named hosts through and refuses any other with a clear error", async () => {
    await activate("1.0.0", { allow: ["allowed.example", "*.example.org"] });
    expect(await fetchFrom("http://other.example/secret")).toBe(
      "failed: egress refused: bundle egress may fetch only allowed.example, *.example.org, not other.example (its egress setting)",
    );
    expect(await fetchFrom("http://example.org/")).toMatch(/egress refused: .* not example\.org/);
    // Allowed: past the gate, on to the network (there may be none here, but it is not refused).
    for (const url of ["http://allowed.example/", "http://api.example.org/"]) {
      expect(await fetchFrom(url)).not.toMatch(/egress refused|not permitted/);
    }
  }, 120_000);

  test('"none" leaves a build no network at all', async () => {
    const none = await activate("1.0.0", "none");
    expect(await fetchFrom("http://allowed.example/")).toMatch(
      /^failed: This worker is not permitted to access the internet/,
    );
    // Egress is part of what a build is: the same files with the default egress are another build.
    const open = await activate("1.0.0");
    expect(open.buildId).not.toBe(none.buildId);
    expect(await fetchFrom("http://allowed.example/")).not.toMatch(/egress refused|not permitted/);
  }, 120_000);

  test("a malformed egress setting is refused with 400 and changes nothing", async () => {
    const before = await fx.ingress.call<{ active: string }>("deployer/egress/status");
    for (const egress of [{ allow: ["HTTP://x.example"] }, { allow: [] }, "all", { allow: ["a.example"], deny: [] }]) {
      await expect(activate("9.9.9", egress)).rejects.toThrow(/ingress answered 400/);
    }
    expect((await fx.ingress.call<{ active: string }>("deployer/egress/status")).active).toBe(before.active);
  }, 60_000);
});
