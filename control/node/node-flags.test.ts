import { readFile } from "node:fs/promises";
import { expect, test } from "vitest";
import { OWN_V8_FLAGS, STRIPPED_MODULES_HOOK } from "./node-flags.ts";

test("`npm start` starts the supervisor as its children are started, and `npm install` fills the stripped cache", async () => {
  const { scripts } = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8"));
  expect(scripts.start).toBe(
    `node --import=./${STRIPPED_MODULES_HOOK} ${OWN_V8_FLAGS.join(" ")} control/main.ts start`,
  );
  expect(scripts.prepare).toBe(`node --disable-warning=ExperimentalWarning ${STRIPPED_MODULES_HOOK}`);
});
