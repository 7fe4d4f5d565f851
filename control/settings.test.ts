import { readFile } from "node:fs/promises";
import { describe, expect, it, test } from "vitest";
import { loadSettings, settingDocs } from "./settings.ts";

test("the README's Settings table is the settings' own documentation, row for row", async () => {
  const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
  const rows = readme.split("\n").filter((line) => line.startsWith("| `GRIDIRON_"));
  expect(rows).toEqual(
    settingDocs().map(({ name, shownDefault, description }) => `| \`${name}\` | ${shownDefault} | ${description} |`),
  );
});

test("internal settings are left out of the documentation", () => {
  const names = settingDocs().map((doc) => doc.name);
  expect(names).toContain("GRIDIRON_ADMIN_PORT");
  expect(names).not.toContain("GRIDIRON_CRASH_POINTS");
});

test("a data dir too long for Restate's unix sockets is refused at start", () => {
  expect(() => loadSettings({ GRIDIRON_DATA_DIR: `/tmp/${"d".repeat(100)}` })).toThrow(
    /too long: Restate's unix sockets/,
  );
});

test("redirects of https:// sources to private addresses are refused unless allowed in so many words", () => {
  expect(loadSettings({}).fetchLimits.privateRedirects).toBe(false);
  expect(loadSettings({ GRIDIRON_FETCH_PRIVATE_REDIRECTS: "true" }).fetchLimits.privateRedirects).toBe(true);
  expect(loadSettings({ GRIDIRON_FETCH_PRIVATE_REDIRECTS: "0" }).fetchLimits.privateRedirects).toBe(false);
  expect(() => loadSettings({ GRIDIRON_FETCH_PRIVATE_REDIRECTS: "sometimes" })).toThrow(
    /GRIDIRON_FETCH_PRIVATE_REDIRECTS/,
  );
});

describe("a cluster node's settings", () => {
  const node = {
    GRIDIRON_NODE_NAME: "n2",
    GRIDIRON_CLUSTER_PEERS: "n1=10.0.0.1,n2=10.0.0.2,n3=10.0.0.3",
    GRIDIRON_ADMIN_TOKEN: "a-token-of-sixteen-or-more",
    GRIDIRON_SECRETS_KEY_FILE: "/shared/secrets-key.pem",
  };

  it("names restate-server after the node and keeps its sockets under that name", () => {
    const settings = loadSettings(node);
    expect(settings.nodeName).toBe("n2");
    expect(settings.cluster?.provisions).toBe(false);
    expect(settings.adminSocket).toMatch(/restate\/n2\/admin\.sock$/);
  });

  it.each([
    [{ ...node, GRIDIRON_CLUSTER_PEERS: undefined }, "needs both GRIDIRON_NODE_NAME and GRIDIRON_CLUSTER_PEERS"],
    [{ ...node, GRIDIRON_NODE_NAME: undefined }, "needs both GRIDIRON_NODE_NAME and GRIDIRON_CLUSTER_PEERS"],
    [{ ...node, GRIDIRON_ADMIN_TOKEN: undefined }, "needs GRIDIRON_ADMIN_TOKEN, the same on every node"],
    [
      { ...node, GRIDIRON_SECRETS_KEY_FILE: undefined },
      "needs GRIDIRON_SECRETS_KEY_FILE, a copy of the same private key",
    ],
    [{ ...node, GRIDIRON_CLUSTER_PEERS: "n1=10.0.0.1,n2=10.0.0.1" }, "gives address 10.0.0.1 to two nodes"],
    [{ ...node, GRIDIRON_CLUSTER_SNAPSHOTS: "file:///shared/snapshots" }, "must be an s3:// URL"],
  ])("refuses a half-configured node at start (%#)", (env, message) => {
    expect(() => loadSettings(env)).toThrow(message);
  });

  it("reaches public ports at the address they bind to, or at loopback when they bind to all", () => {
    expect(loadSettings({ GRIDIRON_BIND: "10.0.0.2" }).ingressUrl).toBe("http://10.0.0.2:8080");
    expect(loadSettings({ GRIDIRON_BIND: "0.0.0.0" }).ingressUrl).toBe("http://127.0.0.1:8080");
  });
});
