import { setTimeout as sleep } from "node:timers/promises";
import type { Send } from "@restatedev/restate-sdk-clients";
import { type Step, stepsOf } from "../domain/journal-steps.ts";
import type { Connection } from "./connection.ts";
import { admin, ingress } from "./connection.ts";

const POLL_MS = 250;

export interface StepEvents {
  started(step: Step): void;
  finished(step: Step): void;
}

/**
 * Waits for a deployer call sent to Restate, reporting each of its journaled steps as it starts
 * and ends (read from Restate's journal through the admin front), and returns its result.
 */
export async function watch<T>(connection: Connection, send: Send<T>, events: StepEvents): Promise<T> {
  let settled = false;
  const result = ingress(connection)
    .result(send)
    .finally(() => {
      settled = true;
    });
  // Read below, once the loop ends; until then a rejection is not unhandled.
  result.catch(() => {});
  const client = admin(connection);
  const reported = new Map<number, "started" | "finished">();
  const report = async () => {
    const steps = stepsOf(await client.journal(send.invocationId));
    steps.forEach((step, i) => {
      if (!reported.has(i)) events.started(step);
      if (step.endedAt && reported.get(i) !== "finished") events.finished(step);
      reported.set(i, step.endedAt ? "finished" : "started");
    });
  };
  // Ctrl-C stops the watching, not the call: it is Restate's now and runs to its end.
  const interrupted = () => {
    console.error(`\nstopped watching; the call goes on in Restate as ${send.invocationId} (see gridiron status)`);
    process.exit(130);
  };
  process.once("SIGINT", interrupted);
  try {
    // Progress is a view: a failed look at the journal must not fail the call it shows.
    while (!settled) {
      await report().catch(() => {});
      await Promise.race([result, sleep(POLL_MS)]).catch(() => {});
    }
    await report().catch(() => {});
    return await result;
  } finally {
    process.off("SIGINT", interrupted);
  }
}
