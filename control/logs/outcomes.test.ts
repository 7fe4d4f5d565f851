import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { expect, test } from "vitest";
import { loadSettings } from "../settings.ts";
import { errorRate, rolloutOutcomes, sumOutcomes } from "./outcomes.ts";
import type { BuildOutcomes } from "./store.ts";

const entry = (build: string, ok: number, error: number): BuildOutcomes => ({
  bundle: "greeter",
  build,
  counts: { ok, error, exception: 0, killed: 0 },
  durationSeconds: ok + error,
  lastMinute: { ok, error, exception: 0, killed: 0 },
});

test("the nodes' counts are summed per build", () => {
  const summed = sumOutcomes([[entry("1", 10, 1), entry("2", 5, 0)], [entry("1", 20, 2)], []]);
  expect(summed).toEqual([{ ...entry("1", 30, 3), durationSeconds: 33 }, entry("2", 5, 0)]);
  expect(errorRate(summed[0]?.counts ?? entry("x", 0, 0).counts)).toBeCloseTo(3 / 33);
  expect(errorRate(entry("x", 0, 0).counts)).toBe(0);
});

test("a rollout's counts are every answering node's, and name the node that did not answer", async () => {
  // n1 answers on 127.0.0.1; nothing listens on n2's 127.0.0.2 at that port.
  const server = createServer((_, response) => response.end(JSON.stringify([entry("1", 4, 2)])));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    const base = loadSettings({ GRIDIRON_OPS_PORT: String(port) });
    const n1 = { name: "n1", address: "127.0.0.1" };
    const settings = {
      ...base,
      cluster: { self: n1, peers: [n1, { name: "n2", address: "127.0.0.2" }], provisions: true },
    };
    expect(await rolloutOutcomes(settings).counts("greeter", "1", 0, 0)).toEqual({ ok: 4, error: 2, unread: ["n2"] });
  } finally {
    server.close();
  }
});
