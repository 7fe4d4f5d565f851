import { expect, test } from "vitest";
import { type Check, healthReport, runChecks } from "./health.ts";

const check = (name: string, passes: () => Promise<boolean>): Check => ({ name, failure: `${name} is down`, passes });

test("all passing: 200 and ok, or each check listed with ?verbose", () => {
  const outcomes = [
    { name: "a", failure: undefined },
    { name: "b", failure: undefined },
  ];
  expect(healthReport("readyz", outcomes, false)).toEqual({ status: 200, body: "ok\n" });
  expect(healthReport("readyz", outcomes, true)).toEqual({
    status: 200,
    body: "[+]a ok\n[+]b ok\nreadyz check passed\n",
  });
});

test("one failing: 503, and the failing check says why, with or without ?verbose", () => {
  const outcomes = [
    { name: "a", failure: undefined },
    { name: "workerd", failure: "workerd does not answer" },
  ];
  const expected = {
    status: 503,
    body: "[+]a ok\n[-]workerd failed: workerd does not answer\nreadyz check failed\n",
  };
  expect(healthReport("readyz", outcomes, true)).toEqual(expected);
  expect(healthReport("readyz", outcomes, false)).toEqual(expected);
});

test("a check that throws, says no or hangs fails with its fixed sentence, within about a second", async () => {
  const started = Date.now();
  const outcomes = await runChecks([
    check("ok", async () => true),
    check("no", async () => false),
    check("throws", async () => {
      throw new Error("secret detail");
    }),
    check("hangs", () => new Promise<boolean>(() => {})),
  ]);
  expect(Date.now() - started).toBeLessThan(1_500);
  expect(outcomes).toEqual([
    { name: "ok", failure: undefined },
    { name: "no", failure: "no is down" },
    { name: "throws", failure: "throws is down" },
    { name: "hangs", failure: "hangs is down" },
  ]);
});
