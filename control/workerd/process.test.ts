import { expect, test } from "vitest";
import { servesConfig, workerdArgs } from "./process.ts";

const live = "/data/workerd/config.bin";

test("a workerd started with workerdArgs is known by its config, however it was started", () => {
  for (const options of [
    { sharedSocket: true, control: true },
    { sharedSocket: false, control: false },
  ]) {
    expect(servesConfig(["/bin/workerd", ...workerdArgs(live, options)], live)).toBe(true);
  }
});

test("a workerd serving another config (a proof's, another mesh's) is not the live one", () => {
  const args = workerdArgs("/data/proof-1/config.bin", { sharedSocket: false, control: true });
  expect(servesConfig(["/bin/workerd", ...args], live)).toBe(false);
  expect(servesConfig(["/bin/cat", live], live)).toBe(false);
  expect(servesConfig([], live)).toBe(false);
});
