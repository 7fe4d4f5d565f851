import { expect, test } from "vitest";
import { DEFAULT_AUTO } from "../../domain/rollout.ts";
import { ActivateRequest } from "./api.ts";

const request = { source: "file:///tmp/build", version: "1.0.0" };

test("a rollout at 0% is an upload; an automatic one cannot start there, nor any at 100%", () => {
  expect(ActivateRequest.safeParse({ ...request, percent: 0 }).success).toBe(true);
  expect(ActivateRequest.safeParse({ ...request, percent: 10, auto: DEFAULT_AUTO }).success).toBe(true);
  const auto = ActivateRequest.safeParse({ ...request, percent: 0, auto: DEFAULT_AUTO });
  expect(auto.error?.issues.map((i) => i.message)).toEqual([
    "an automatic rollout starts at its first step: at 0% the canary has no calls to judge",
  ]);
  expect(ActivateRequest.safeParse({ ...request, percent: 100 }).success).toBe(false);
});
