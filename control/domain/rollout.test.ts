import { describe, expect, test } from "vitest";
import { bucketOf, parseSplit, splitSegment, toCanary } from "../node/workerd/router/split.js";
import type { RecordedManifest } from "./manifest.ts";
import {
  AutoPolicy,
  DEFAULT_AUTO,
  heldBySplit,
  judgeStep,
  Percent,
  type SplitRecord,
  shapeDifference,
} from "./rollout.ts";

const manifest = (services: unknown[], protocolMode = "BIDI_STREAM"): RecordedManifest => ({
  contentType: "application/vnd.restate.endpointmanifest.v3+json",
  body: JSON.stringify({ protocolMode, minProtocolVersion: 5, maxProtocolVersion: 6, services }),
});
const counter = (
  ty = "VIRTUAL_OBJECT",
  handlers: { name: string; ty?: string }[] = [{ name: "add", ty: "EXCLUSIVE" }],
) => ({
  name: "counter",
  ty,
  handlers,
});

describe("split segments", () => {
  test("read back what they name, and nothing else", () => {
    const split = { stable: "1.0.0-abc", canary: "2.0.0+x-def", percent: 10 };
    expect(parseSplit(splitSegment(split))).toEqual(split);
    expect(parseSplit("1.0.0-abc")).toBeUndefined();
    expect(parseSplit("split~a~b~0")).toEqual({ stable: "a", canary: "b", percent: 0 });
    expect(parseSplit("split~a~b~00")).toBeUndefined();
    expect(parseSplit("split~a~b~07")).toBeUndefined();
    expect(parseSplit("split~a~b~100")).toBeUndefined();
    expect(parseSplit("split~a~b~10~c")).toBeUndefined();
    expect(parseSplit("split~~b~10")).toBeUndefined();
  });

  test("a key's build only moves from stable to canary as the percentage rises", () => {
    const keys = [...Array(2000).keys()].map((i) => `key-${i}`);
    const at = (percent: number) => keys.filter((k) => toCanary({ stable: "s", canary: "c", percent }, k));
    const [ten, fifty, ninety] = [at(10), at(50), at(90)];
    expect(at(0)).toEqual([]);
    expect(ten.every((k) => fifty.includes(k))).toBe(true);
    expect(fifty.every((k) => ninety.includes(k))).toBe(true);
    // Buckets are near uniform: each share within the binomial 99.9% bounds.
    for (const [share, p] of [
      [ten, 0.1],
      [fifty, 0.5],
      [ninety, 0.9],
    ] as const) {
      const spread = 3.29 * Math.sqrt(2000 * p * (1 - p));
      expect(Math.abs(share.length - 2000 * p)).toBeLessThan(spread);
    }
  });

  test("the hash is fixed: the same text lands in the same bucket", () => {
    expect(bucketOf("c\nkey-1")).toBe(bucketOf("c\nkey-1"));
    expect(bucketOf("")).toBe(0x811c9dc5 % 100);
  });
});

describe("shapeDifference", () => {
  test("the same services, kinds, handlers and protocol mode: none", () => {
    expect(shapeDifference(manifest([counter()]), manifest([counter()]))).toBeUndefined();
  });

  test("names every difference", () => {
    const stable = manifest([counter(), { name: "old", ty: "SERVICE", handlers: [] }]);
    const canary = manifest(
      [
        counter("SERVICE", [{ name: "add", ty: "SHARED" }, { name: "get" }]),
        { name: "new", ty: "SERVICE", handlers: [] },
      ],
      "REQUEST_RESPONSE",
    );
    expect(shapeDifference(stable, canary)).toBe(
      [
        "protocol mode BIDI_STREAM on the stable build, REQUEST_RESPONSE on the canary",
        "counter is a virtual_object on the stable build, a service on the canary",
        "counter/add is a exclusive on the stable build, a shared on the canary",
        "old is only on the stable build",
        "counter/get is only on the canary",
        "new is only on the canary",
      ].join("; "),
    );
  });

  test("a manifest without a service's kind or handlers (which a proof lets pass) is a difference, not a throw", () => {
    const bare = manifest([{ name: "counter" }]);
    expect(shapeDifference(manifest([counter()]), bare)).toBe(
      "the canary's manifest does not declare every service's kind and handlers",
    );
    expect(shapeDifference(bare, manifest([counter()]))).toBe(
      "the stable build's manifest does not declare every service's kind and handlers",
    );
  });
});

describe("judgeStep", () => {
  const policy: AutoPolicy = { ...DEFAULT_AUTO, steps: [10, 50], minCalls: 20, margin: 0.05 };

  test("aborts a canary worse than the stable build by more than the margin", () => {
    const decision = judgeStep(policy, 10, { ok: 1000, error: 10 }, { ok: 80, error: 20 });
    expect(decision.kind).toBe("abort");
    expect(decision).toMatchObject({ reason: expect.stringContaining("20.0% (20 of 100)") });
  });

  test("aborts on errors even before minCalls: a failing canary is not left to fail longer", () => {
    expect(judgeStep(policy, 10, { ok: 100, error: 0 }, { ok: 0, error: 5 }).kind).toBe("abort");
  });

  test("steps up when healthy, promotes after the last step, waits on too few calls", () => {
    expect(judgeStep(policy, 10, { ok: 100, error: 5 }, { ok: 50, error: 4 })).toEqual({ kind: "step", percent: 50 });
    expect(judgeStep(policy, 50, { ok: 100, error: 0 }, { ok: 30, error: 0 })).toEqual({ kind: "promote" });
    expect(judgeStep(policy, 10, { ok: 100, error: 0 }, { ok: 3, error: 0 })).toMatchObject({ kind: "wait" });
  });

  test("a node's counts unread: an abort still, a step up or promote never", () => {
    const unread = { ok: 50, error: 0, unread: ["n3"] };
    expect(judgeStep(policy, 10, { ok: 100, error: 0 }, unread)).toEqual({
      kind: "wait",
      reason: "the calls on n3 could not be counted (no answer in time)",
    });
    expect(judgeStep(policy, 50, { ...unread, ok: 100 }, { ok: 30, error: 0, unread: ["n3"] }).kind).toBe("wait");
    expect(judgeStep(policy, 10, { ok: 100, error: 0 }, { ...unread, error: 20 }).kind).toBe("abort");
  });

  test("a margin of exactly the difference is not an abort", () => {
    expect(judgeStep(policy, 10, { ok: 90, error: 10 }, { ok: 85, error: 15 }).kind).toBe("step");
  });

  test("a rollout's percentage is 0-99 (0 an upload, sent no call); an automatic one's steps 1-99", () => {
    expect([0, 1, 99].map((p) => Percent.safeParse(p).success)).toEqual([true, true, true]);
    expect([-1, 100, 1.5].map((p) => Percent.safeParse(p).success)).toEqual([false, false, false]);
  });

  test("the policy is validated: rising percentages of 1-99", () => {
    expect(AutoPolicy.safeParse({ ...policy, steps: [10, 100] }).success).toBe(false);
    expect(AutoPolicy.safeParse({ ...policy, steps: [0, 50] }).success).toBe(false);
    expect(AutoPolicy.safeParse({ ...policy, steps: [50, 10] }).success).toBe(false);
    expect(AutoPolicy.safeParse(DEFAULT_AUTO).success).toBe(true);
  });
});

test("heldBySplit: a build a live split names stays routed", () => {
  const split = (state: SplitRecord["state"]): SplitRecord => ({
    segment: "split~a~b~10",
    stable: "a",
    canary: "b",
    percent: 10,
    deploymentId: "dp_1",
    uri: "",
    state,
    times: {},
  });
  expect(heldBySplit([split("draining")], "a")).toBe(true);
  expect(heldBySplit([split("drained")], "b")).toBe(true);
  expect(heldBySplit([split("pruned")], "a")).toBe(false);
  expect(heldBySplit([split("active")], "c")).toBe(false);
});
