import { ingressMessage } from "../control/restate/ingress-error.ts";

/** Calls through Restate's ingress with plain HTTP, the way curl and `just call` do. */
export class Ingress {
  readonly url: string;
  readonly token: string | undefined;
  private readonly headers: Record<string, string>;

  /** With `token`, every call carries it as the deployer's admin Bearer token. */
  constructor(url: string, token?: string) {
    this.url = url;
    this.token = token;
    this.headers = token ? { authorization: `Bearer ${token}` } : {};
  }

  async call<T = unknown>(path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.url}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...this.headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    if (!response.ok) throw new IngressError(response.status, text);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Starts a call without waiting for it; returns its invocation id. */
  async send(path: string, body?: unknown): Promise<string> {
    const { invocationId } = await this.call<{ invocationId: string }>(`${path}/send`, body);
    return invocationId;
  }

  async attach<T = unknown>(invocationId: string): Promise<T> {
    const response = await fetch(`${this.url}/restate/invocation/${invocationId}/attach`, {
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    if (!response.ok) throw new IngressError(response.status, text);
    return JSON.parse(text) as T;
  }
}

export class IngressError extends Error {
  readonly status: number;

  constructor(status: number, body: string) {
    // The message is what tests look for.
    super(`ingress answered ${status}: ${ingressMessage(body) ?? body}`);
    this.status = status;
  }
}
