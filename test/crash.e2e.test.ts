import { describe, expect, test } from "vitest";
import type { ActivateResult } from "../control/deployer.ts";
import { findChild, useTestMesh } from "./mesh.ts";

const CALLS = 2_000;
const KEYS = 20;
const CONCURRENCY = 16;
const CALL_DEADLINE_MS = 90_000;

/** kill -9 of restate-server and of workerd under load: nothing lost, nothing doubled. */
describe("crashes under load", () => {
  const fx = useTestMesh({ counter: ["counter"] });

  test(`${CALLS} counter increments survive kill -9 of restate-server and of workerd`, async () => {
    await fx.ingress.call<ActivateResult>("deployer/counter/activate", {
      source: fx.sources.counter,
      version: "1.0.0",
    });
    const url = fx.mesh.settings.ingressUrl;
    const answers = new Map<string, number[]>();
    let retries = 0;

    // Like any Restate client that must not double a call: retry with the same idempotency key.
    const add = async (i: number) => {
      const key = `k${i % KEYS}`;
      const deadline = Date.now() + CALL_DEADLINE_MS;
      for (;;) {
        try {
          const response = await fetch(`${url}/counter/${key}/add`, {
            method: "POST",
            headers: { "content-type": "application/json", "idempotency-key": `call-${i}` },
            signal: AbortSignal.timeout(30_000),
          });
          if (response.ok) {
            answers.set(key, [...(answers.get(key) ?? []), (await response.json()) as number]);
            return;
          }
        } catch {
          // Connection refused or reset while a process is down: try again.
        }
        if (Date.now() > deadline) throw new Error(`call ${i} did not complete within ${CALL_DEADLINE_MS / 1000} s`);
        retries++;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };

    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < CALLS) {
        await add(next++);
        done++;
      }
    };
    const killer = (async () => {
      const waitFor = async (count: number) => {
        while (done < count) await new Promise((resolve) => setTimeout(resolve, 20));
      };
      await waitFor(CALLS / 3);
      process.kill(await findChild(fx.mesh, "/restate-server "), "SIGKILL");
      await waitFor((2 * CALLS) / 3);
      process.kill(await findChild(fx.mesh, "/workerd "), "SIGKILL");
    })();
    await Promise.all([...Array.from({ length: CONCURRENCY }, worker), killer]);

    console.info(`[crash test] ${CALLS} calls, ${retries} client retries while processes were down`);
    expect(retries).toBeGreaterThan(0);
    for (let k = 0; k < KEYS; k++) {
      const key = `k${k}`;
      const expected = CALLS / KEYS;
      // Each call saw its own count: 1..n once each, so no increment was lost or applied twice.
      expect([...(answers.get(key) ?? [])].sort((a, b) => a - b)).toEqual(
        Array.from({ length: expected }, (_, i) => i + 1),
      );
      expect(await fx.ingress.call(`counter/${key}/get`)).toBe(expected);
    }
  }, 240_000);
});
