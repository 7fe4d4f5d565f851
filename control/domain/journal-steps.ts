import { z } from "zod";
import { CALL_STEPS } from "../contracts.ts";
import type { JournalRow } from "../restate/admin-client.ts";

/**
 * Pure: the journaled steps of a deployer call, from its journal in Restate. A step starts with
 * its command (a named `ctx.run`, or a call to another handler) and ends with the notification
 * that completes it; unnamed runs (the journaled clock, random ids) are not steps.
 */

export interface Step {
  label: string;
  startedAt: string;
  endedAt?: string;
  failed?: boolean;
}

const RunCommand = z.object({ Run: z.object({ completion_id: z.number() }) });
const CallCommand = z.object({
  Call: z.object({
    invocation_id: z.string().optional(),
    invocation_target: z.record(z.string(), z.object({ name: z.string(), handler: z.string() })),
    result_completion_id: z.number(),
  }),
});
const Completion = z.object({ id: z.object({ CompletionId: z.number() }), result: z.unknown().optional() });

export function stepsOf(journal: JournalRow[]): Step[] {
  const open = new Map<number, Step>();
  const steps: Step[] = [];
  for (const row of journal) {
    const entry = row.entry;
    if (!entry) continue;
    if ("Notification" in entry) {
      const done = Completion.safeParse(entry.Notification);
      const step = done.success ? open.get(done.data.id.CompletionId) : undefined;
      if (!step || !done.success) continue;
      step.endedAt = row.appendedAt;
      if (done.data.result !== undefined && done.data.result !== "Success") step.failed = true;
      continue;
    }
    const started = stepStart(entry.Command, row);
    if (!started) continue;
    open.set(started.completionId, started.step);
    steps.push(started.step);
  }
  return steps;
}

function stepStart(command: unknown, row: JournalRow): { step: Step; completionId: number } | undefined {
  const run = RunCommand.safeParse(command);
  if (run.success && row.name) {
    return { step: { label: row.name, startedAt: row.appendedAt }, completionId: run.data.Run.completion_id };
  }
  const call = CallCommand.safeParse(command);
  if (!call.success) return undefined;
  const target = Object.values(call.data.Call.invocation_target)[0];
  const name = target ? `${target.name}/${target.handler}` : "another handler";
  return {
    step: { label: CALL_STEPS[name] ?? `call ${name}`, startedAt: row.appendedAt },
    completionId: call.data.Call.result_completion_id,
  };
}

/** How long a finished step took, in seconds as people read them. */
export function duration(step: Step): string | undefined {
  if (!step.endedAt) return undefined;
  return `${((Date.parse(step.endedAt) - Date.parse(step.startedAt)) / 1000).toFixed(2)} s`;
}
