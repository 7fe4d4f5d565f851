import { HttpCallError } from "@restatedev/restate-sdk-clients";
import { z } from "zod";

/** Restate's ingress answers a failed call with JSON whose `message` is the handler's terminal error. */
const ErrorBody = z.object({ message: z.string() });

/** The `message` of an error body from Restate's ingress; undefined when it has none. */
export function ingressMessage(body: string): string | undefined {
  try {
    return ErrorBody.safeParse(JSON.parse(body)).data?.message;
  } catch {
    return undefined;
  }
}

/** What a failed call to the deployer says: its terminal message when there is one, not a stack. */
export function callFailure(error: unknown): string {
  if (error instanceof HttpCallError) return ingressMessage(error.responseText) ?? error.message;
  return error instanceof Error ? error.message : String(error);
}
