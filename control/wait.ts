import { setTimeout as sleep } from "node:timers/promises";
import { type Dispatcher, request } from "undici";
import type { z } from "zod";

/**
 * How Gridiron waits for its parts: one deadline loop, one "answers 200?" probe, one "what does it
 * answer?" read, one timeout.
 */

const POLL_MS = 100;

/**
 * Polls `check` until it returns true, at most `timeoutMs`. A check that throws counts as not yet,
 * unless `isFinal` says the error will not go away by waiting.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  { pollMs = POLL_MS, isFinal = () => false }: { pollMs?: number; isFinal?: (error: unknown) => boolean } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const done = await check().catch((error: unknown) => {
      if (isFinal(error)) throw error;
      return false;
    });
    if (done) return;
    await sleep(pollMs);
  }
  throw new Error(`${what} was not ready within ${timeoutMs / 1000} s`);
}

/**
 * `promise`, or a rejection if it has not settled within `ms`: an Error with `message`, or the
 * error `message()` makes then (to say how far it got).
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string | (() => Error)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(typeof message === "string" ? new Error(message) : message()), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface ProbeOptions {
  method?: "GET" | "POST";
  timeoutMs?: number;
  headers?: Record<string, string>;
  /** For a server on a unix socket. */
  dispatcher?: Dispatcher;
}

/** Whether `url` answers 200 within the timeout; false for any other answer or none. */
export async function answers(
  url: string,
  { method = "GET", timeoutMs = 2_000, headers = {}, dispatcher }: ProbeOptions = {},
): Promise<boolean> {
  try {
    const { statusCode, body } = await request(url, {
      method,
      headersTimeout: timeoutMs,
      headers,
      ...(dispatcher ? { dispatcher } : {}),
    });
    await body.dump();
    return statusCode === 200;
  } catch {
    return false;
  }
}

/**
 * What `url` answers with 200 within `timeoutMs`, parsed by `schema`; undefined for any other
 * answer, none, or one of another shape (a node asked for its report or counts may be down).
 */
export async function answerOf<T>(url: string, schema: z.ZodType<T>, timeoutMs: number): Promise<T | undefined> {
  try {
    const { statusCode, body } = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    if (statusCode !== 200) {
      await body.dump();
      return undefined;
    }
    const parsed = schema.safeParse(await body.json());
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
