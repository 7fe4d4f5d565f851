import { randomBytes } from "node:crypto";

/**
 * The dashboard's signed-in sessions, kept by the process serving it: a session is a random id
 * in the cookie, and counts only while this table holds it and its age is under the limit. So
 * signing out revokes it here (a copied cookie stops working too), and the age limit does not
 * depend on the browser honouring the cookie's Max-Age. A restart signs everyone out.
 */
export class Sessions {
  /** Session id -> when it expires (ms since the epoch). */
  private readonly expiry = new Map<string, number>();
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(maxAgeMs: number, now: () => number = Date.now) {
    this.maxAgeMs = maxAgeMs;
    this.now = now;
  }

  /** A new session; expired ones are forgotten first, so the table holds live sessions only. */
  open(): string {
    const now = this.now();
    for (const [id, until] of this.expiry) if (until <= now) this.expiry.delete(id);
    const id = randomBytes(32).toString("base64url");
    this.expiry.set(id, now + this.maxAgeMs);
    return id;
  }

  valid(id: string | false | undefined): boolean {
    const until = id ? this.expiry.get(id) : undefined;
    return until !== undefined && this.now() < until;
  }

  revoke(id: string | false | undefined): void {
    if (id) this.expiry.delete(id);
  }
}
