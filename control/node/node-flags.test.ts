import { readFile } from "node:fs/promises";
import { expect, test } from "vitest";
import { OWN_NODE_FLAGS } from "./node-flags.ts";

test("`npm start` starts the supervisor with the flags its children get", async () => {
  const { scripts } = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8"));
  expect(scripts.start).toBe(`node ${OWN_NODE_FLAGS.join(" ")} control/main.ts start`);
});
