import { log, spinner } from "@clack/prompts";
import { duration, type Step } from "../domain/journal-steps.ts";
import { inert } from "./inert.ts";
import type { StepEvents } from "./watch.ts";

/**
 * How a long call's steps are shown, on stderr so stdout stays the result: a spinner on the
 * running step in a terminal, one line per finished step elsewhere, nothing with --json.
 */
export class Progress implements StepEvents {
  private readonly quiet: boolean;
  private readonly live = process.stderr.isTTY;
  private readonly spin = spinner({ output: process.stderr });

  constructor(quiet: boolean) {
    this.quiet = quiet;
  }

  note(line: string): void {
    if (!this.quiet) log.info(inert(line), { output: process.stderr });
  }

  started(step: Step): void {
    if (!this.quiet && this.live) this.spin.start(inert(step.label));
  }

  finished(step: Step): void {
    if (this.quiet) return;
    const line = `${inert(step.label)}  ${duration(step)}${step.failed ? "  failed" : ""}`;
    if (!this.live) {
      process.stderr.write(`${step.failed ? "✗" : "✓"} ${line}\n`);
      return;
    }
    if (step.failed) this.spin.error(line);
    else this.spin.stop(line);
  }
}
