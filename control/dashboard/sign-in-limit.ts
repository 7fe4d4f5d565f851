import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

/** Sign-in attempts one client address may make each second, right or wrong. */
const ATTEMPTS_PER_SECOND = 3;
/** Wrong tokens one client address may send in a window; after that it waits the window out. */
const WRONG_TOKENS = 10;
const WRONG_TOKEN_WINDOW_SECONDS = 600;

/**
 * How often one client address may try to sign in to the dashboard: a few attempts a second,
 * and after WRONG_TOKENS wrong tokens none until WRONG_TOKEN_WINDOW_SECONDS after the first.
 * While an address waits, its attempts are refused before the token is looked at, so a refusal
 * says nothing about the token. Counted in memory (rate-limiter-flexible), per serving process.
 */
export class SignInLimit {
  private readonly attempts = new RateLimiterMemory({ points: ATTEMPTS_PER_SECOND, duration: 1 });
  private readonly wrong = new RateLimiterMemory({ points: WRONG_TOKENS, duration: WRONG_TOKEN_WINDOW_SECONDS });

  /** Undefined if `address` may try now, else how many seconds it must wait (for Retry-After). */
  async wait(address: string): Promise<number | undefined> {
    const wrong = await this.wrong.get(address);
    if (wrong && wrong.remainingPoints <= 0) return seconds(wrong.msBeforeNext);
    try {
      await this.attempts.consume(address);
      return undefined;
    } catch (refusal) {
      if (refusal instanceof RateLimiterRes) return seconds(refusal.msBeforeNext);
      throw refusal;
    }
  }

  async failed(address: string): Promise<void> {
    // Consuming past the limit rejects; the next `wait` refuses the address either way.
    await this.wrong.consume(address).catch((refusal: unknown) => {
      if (!(refusal instanceof RateLimiterRes)) throw refusal;
    });
  }

  async succeeded(address: string): Promise<void> {
    await this.wrong.delete(address);
  }
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
