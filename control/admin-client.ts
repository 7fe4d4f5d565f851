import { request } from "undici";
import { z } from "zod";

/** An answer from Restate's admin API that was not a success; `status` is its HTTP status. */
export class AdminError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const Registered = z.object({
  id: z.string(),
  services: z.array(z.object({ name: z.string() })),
});
export type Registered = z.infer<typeof Registered>;

const QueryResult = z.object({ rows: z.array(z.record(z.string(), z.unknown())) });

const ErrorBody = z.object({ message: z.string(), restate_code: z.string().optional() });

/** The few calls Gridiron makes to Restate's admin API (port 9070). */
export class AdminClient {
  private readonly baseUrl: string;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
  }

  async healthy(): Promise<boolean> {
    try {
      const { statusCode, body } = await request(`${this.baseUrl}/health`, { headersTimeout: 2_000 });
      await body.dump();
      return statusCode === 200;
    } catch {
      return false;
    }
  }

  /**
   * Registers (or re-registers) the endpoint at `uri`. workerd speaks HTTP/1.1 only, so builds
   * are registered with `use_http_11`; the deployer's own Node endpoint speaks HTTP/2.
   */
  async registerDeployment(options: { uri: string; http11: boolean; force: boolean }): Promise<Registered> {
    const body = await this.call("POST", "/deployments", {
      uri: options.uri,
      use_http_11: options.http11,
      force: options.force,
    });
    return Registered.parse(body);
  }

  /** Runs SQL over Restate's introspection tables (sys_invocation, sys_deployment, ...). */
  async query(sql: string): Promise<Record<string, unknown>[]> {
    const body = await this.call("POST", "/query", { query: sql });
    return QueryResult.parse(body).rows;
  }

  private async call(method: "GET" | "POST" | "DELETE", path: string, json?: unknown): Promise<unknown> {
    const response = await request(`${this.baseUrl}${path}`, {
      method,
      headers: { "content-type": "application/json", accept: "application/json" },
      body: json === undefined ? null : JSON.stringify(json),
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
    });
    const text = await response.body.text();
    if (response.statusCode >= 400) {
      const parsed = ErrorBody.safeParse(safeJson(text));
      const reason = parsed.success
        ? `${parsed.data.message}${parsed.data.restate_code ? ` (${parsed.data.restate_code})` : ""}`
        : text;
      throw new AdminError(
        response.statusCode,
        `Restate admin ${method} ${path} failed (${response.statusCode}): ${reason}`,
      );
    }
    return text ? safeJson(text) : undefined;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
