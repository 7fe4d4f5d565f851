import { readFile } from "node:fs/promises";
import { expect, test } from "vitest";
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
  expect(names).not.toContain("GRIDIRON_WORKERD_SOCKET_FD");
});

test("a data dir too long for Restate's unix sockets is refused at start", () => {
  expect(() => loadSettings({ GRIDIRON_DATA_DIR: `/tmp/${"d".repeat(100)}` })).toThrow(
    /too long: Restate's unix sockets/,
  );
});
