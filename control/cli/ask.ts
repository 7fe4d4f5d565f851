import { confirm, isCancel } from "@clack/prompts";
import { inert } from "./inert.ts";

/** Asks a yes/no question in a terminal; anything but yes (or no terminal) stops the command. */
export async function confirmOrStop(question: string): Promise<void> {
  if (!process.stdin.isTTY) throw new Error("not asking without a terminal: pass --yes to confirm");
  const answer = await confirm({ message: inert(question) });
  if (isCancel(answer) || !answer) throw new Error("cancelled; nothing changed");
}
