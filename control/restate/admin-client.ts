import { Agent, type Dispatcher, request } from "undici";
import { z } from "zod";
import { UserError } from "../domain/errors.ts";
import type { DrainObservation, InvocationCounts } from "../domain/lifecycle.ts";
import { jsonOr } from "../json.ts";
import { answers } from "../wait.ts";

/**
 * Restate's admin API refused a request (4xx), e.g. a schema change it will not accept: the
 * caller's to fix, so a user error. Its 5xx answers are plain errors, retried.
 */
export class AdminRefused extends UserError {}

const Registered = z.object({
  id: z.string(),
  services: z.array(z.object({ name: z.string() })),
});
export type Registered = z.infer<typeof Registered>;

const QueryResult = z.object({ rows: z.array(z.record(z.string(), z.unknown())) });

/** A journal entry as `sys_journal.entry_lite_json` shows it: a command or a notification. */
const JournalEntry = z.union([
  z.object({ Command: z.record(z.string(), z.record(z.string(), z.unknown())) }),
  z.object({ Notification: z.looseObject({ id: z.record(z.string(), z.unknown()) }) }),
]);
export type JournalEntry = z.infer<typeof JournalEntry>;

/** One entry of an invocation's journal, as `sys_journal` lists it. */
export interface JournalRow {
  index: number;
  /** E.g. "Command: Run", "Notification: Call". */
  entryType: string;
  /** A `ctx.run`'s name; empty for other entries. */
  name: string;
  appendedAt: string;
  entry: JournalEntry | undefined;
}

const JournalRowSchema = z.object({
  index: z.number(),
  entry_type: z.string(),
  name: z.string().nullish(),
  appended_at: z.string(),
  entry_lite_json: z.string().nullish(),
});

/** A call to the deployer that is still running (or backing off, or paused). */
export interface DeployerCall {
  id: string;
  bundle: string;
  handler: string;
  status: string;
  since: string;
}

const DeployerCallRow = z.object({
  id: z.string(),
  target_service_key: z.string(),
  target_handler_name: z.string(),
  status: z.string(),
  created_at: z.string(),
});

export interface RunningInvocation {
  id: string;
  target: string;
  /** The endpoint (uri) of the deployment its last attempt ran on. */
  endpoint: string;
  journal: JournalEntry[];
}

function journalEntry(json: unknown): JournalEntry[] {
  const parsed = JournalEntry.safeParse(typeof json === "string" ? jsonOr(json, json) : undefined);
  return parsed.success ? [parsed.data] : [];
}

const ErrorBody = z.object({ message: z.string(), restate_code: z.string().optional() });

/**
 * Where Restate's admin API is reached: its unix socket in the data dir (Gridiron's own processes
 * and local admins), or a URL through Gridiron's authenticated front with the admin token.
 */
export type AdminTarget = { socketPath: string } | { url: string; token: string };

const CALL_TIMEOUT_MS = 60_000;

/** The few calls Gridiron makes to Restate's admin API. */
export class AdminClient {
  private readonly baseUrl: string;
  private readonly headers: Record<string, string>;
  private readonly dispatcher: Dispatcher | undefined;
  private readonly timeoutMs: number;

  /** `timeoutMs` bounds the wait for each call's answer, and then between parts of its body. */
  constructor(target: AdminTarget, { timeoutMs = CALL_TIMEOUT_MS }: { timeoutMs?: number } = {}) {
    this.timeoutMs = timeoutMs;
    if ("socketPath" in target) {
      this.baseUrl = "http://restate-admin";
      this.headers = {};
      this.dispatcher = new Agent({ connect: { socketPath: target.socketPath } });
    } else {
      this.baseUrl = target.url;
      this.headers = { authorization: `Bearer ${target.token}` };
      this.dispatcher = undefined;
    }
  }

  healthy(): Promise<boolean> {
    return answers(`${this.baseUrl}/health`, { headers: this.headers, ...this.via() });
  }

  /**
   * Registers (or re-registers) the endpoint at `uri`. workerd speaks HTTP/1.1 only, so builds
   * are registered with `use_http_11`; the deployer's own Node endpoint speaks HTTP/2.
   */
  async registerDeployment(options: {
    uri: string;
    http11: boolean;
    force: boolean;
    breaking?: boolean;
  }): Promise<Registered> {
    const body = await this.call("POST", "/deployments", {
      uri: options.uri,
      use_http_11: options.http11,
      force: options.force,
      breaking: options.breaking ?? false,
    });
    return Registered.parse(body);
  }

  /** Unregisters a deployment. Restate answers 202; a deployment already gone (404) is fine too. */
  async deleteDeployment(id: string): Promise<void> {
    try {
      await this.call("DELETE", `/deployments/${encodeURIComponent(id)}?force=true`);
    } catch (error) {
      if (!(error instanceof AdminRefused && error.status === 404)) throw error;
    }
  }

  /** Resumes a paused invocation on the latest deployment of its service. */
  async resumeOnLatest(invocationId: string): Promise<void> {
    await this.call("PATCH", `/invocations/${encodeURIComponent(invocationId)}/resume?deployment=latest`);
  }

  /** Ends an invocation for good: its caller gets a failure, and it is never retried. */
  async killInvocation(invocationId: string): Promise<void> {
    await this.call("PATCH", `/invocations/${encodeURIComponent(invocationId)}/kill`);
  }

  /**
   * Invocations with an attempt running right now on a deployment whose uri starts with `prefix`,
   * each with its journal so far (in order; entries of a shape Gridiron does not know are left out).
   */
  async runningUnder(prefix: string): Promise<RunningInvocation[]> {
    const from = "sys_invocation_state s JOIN sys_deployment d ON s.last_attempt_deployment_id = d.id";
    const where = `s.in_flight AND d.endpoint LIKE '${sqlText(prefix)}%'`;
    const rows = await this.query(
      `SELECT s.id AS id, i.target AS target, d.endpoint AS endpoint FROM ${from} JOIN sys_invocation i ON s.id = i.id WHERE ${where}`,
    );
    const entries = await this.query(
      `SELECT j.id AS id, j.entry_lite_json AS entry FROM ${from} JOIN sys_journal j ON j.id = s.id WHERE ${where} ORDER BY j.id, j.index`,
    );
    return rows.map((row) => ({
      id: String(row.id),
      target: String(row.target),
      endpoint: String(row.endpoint),
      journal: entries.filter((e) => e.id === row.id).flatMap((e) => journalEntry(e.entry)),
    }));
  }

  /** Whether Restate knows this deployment. */
  async hasDeployment(deploymentId: string): Promise<boolean> {
    const rows = await this.query(`SELECT id FROM sys_deployment WHERE id = '${sqlId(deploymentId)}'`);
    return rows.length > 0;
  }

  /** What runs on a deployment now: the input to the drain decision (lifecycle.ts). */
  async observeDeployment(deploymentId: string): Promise<DrainObservation> {
    const id = sqlId(deploymentId);
    const latest = await this.query(`SELECT name FROM sys_service WHERE deployment_id = '${id}'`);
    const pinned = await this.pinnedWhere(`pinned_deployment_id = '${id}'`);
    const [running] = await this.query(
      `SELECT count(*) AS n FROM sys_invocation_state WHERE in_flight AND last_attempt_deployment_id = '${id}'`,
    );
    return {
      latestFor: latest.map((row) => String(row.name)),
      ...(pinned.get(id) ?? { pinned: 0, paused: 0 }),
      running: Number(running?.n ?? 0),
    };
  }

  /** Invocations pinned to each deployment that has any, in one query (deployment id -> counts). */
  pinnedByDeployment(): Promise<Map<string, InvocationCounts>> {
    return this.pinnedWhere("pinned_deployment_id IS NOT NULL");
  }

  /** Whether some deployment of Restate's serves the service `name` (it is registered). */
  async hasService(name: string): Promise<boolean> {
    const rows = await this.query(`SELECT name FROM sys_service WHERE name = '${sqlText(name)}'`);
    return rows.length > 0;
  }

  /** Paused invocations pinned to any of these deployments. */
  async pausedOn(deploymentIds: string[]): Promise<string[]> {
    if (deploymentIds.length === 0) return [];
    const ids = deploymentIds.map((id) => `'${sqlId(id)}'`).join(", ");
    const rows = await this.query(
      `SELECT id FROM sys_invocation_status WHERE status = 'paused' AND pinned_deployment_id IN (${ids})`,
    );
    return rows.map((row) => String(row.id));
  }

  /** The bundles the deployer keeps state for: its keys that hold state. */
  async bundles(): Promise<string[]> {
    const rows = await this.query(
      "SELECT DISTINCT service_key FROM state WHERE service_name = 'deployer' ORDER BY service_key",
    );
    return rows.map((row) => String(row.service_key));
  }

  /** Every value virtual object `service` keeps under state key `key`, by object key (JSON as text). */
  async stateValues(service: string, key: string): Promise<{ objectKey: string; value: string }[]> {
    const rows = await this.query(
      `SELECT service_key, value_utf8 FROM state WHERE service_name = '${sqlText(service)}' AND key = '${sqlText(key)}'`,
    );
    return rows.map((row) => ({ objectKey: String(row.service_key), value: String(row.value_utf8) }));
  }

  /** The deployer's activations, rollbacks and prunes that have not completed yet. */
  async deployerCallsInFlight(): Promise<DeployerCall[]> {
    const rows = await this.query(
      "SELECT id, target_service_key, target_handler_name, status, created_at FROM sys_invocation WHERE target_service_name = 'deployer' AND target_handler_name IN ('activate', 'rollback', 'prune') AND status <> 'completed' ORDER BY created_at",
    );
    return rows.map((row) => {
      const r = DeployerCallRow.parse(row);
      return {
        id: r.id,
        bundle: r.target_service_key,
        handler: r.target_handler_name,
        status: r.status,
        since: r.created_at,
      };
    });
  }

  /** Up to `limit` invocations pinned to a deployment that have not completed. */
  async pinnedInvocations(deploymentId: string, limit: number): Promise<string[]> {
    const rows = await this.query(
      `SELECT id FROM sys_invocation_status WHERE pinned_deployment_id = '${sqlId(deploymentId)}' AND status <> 'completed' LIMIT ${Math.trunc(limit)}`,
    );
    return rows.map((row) => String(row.id));
  }

  /** An invocation's journal so far, in order (empty once Restate no longer keeps it). */
  async journal(invocationId: string): Promise<JournalRow[]> {
    const rows = await this.query(
      `SELECT index, entry_type, name, appended_at, entry_lite_json FROM sys_journal WHERE id = '${sqlInvocationId(invocationId)}' ORDER BY index`,
    );
    return rows.map((row) => {
      const r = JournalRowSchema.parse(row);
      return {
        index: r.index,
        entryType: r.entry_type,
        name: r.name ?? "",
        appendedAt: r.appended_at,
        entry: journalEntry(r.entry_lite_json)[0],
      };
    });
  }

  /**
   * Invocations pinned to deployments, by deployment: every one not completed (paused ones
   * included, as they keep their pin) and the paused ones.
   */
  private async pinnedWhere(where: string): Promise<Map<string, InvocationCounts>> {
    const rows = await this.query(
      `SELECT pinned_deployment_id AS id, status, count(*) AS n FROM sys_invocation_status WHERE ${where} AND status != 'completed' GROUP BY pinned_deployment_id, status`,
    );
    const counts = new Map<string, InvocationCounts>();
    for (const row of rows) {
      const id = String(row.id);
      const n = Number(row.n ?? 0);
      const now = counts.get(id) ?? { pinned: 0, paused: 0 };
      counts.set(id, { pinned: now.pinned + n, paused: now.paused + (row.status === "paused" ? n : 0) });
    }
    return counts;
  }

  /** Runs SQL over Restate's introspection tables (sys_invocation, sys_deployment, ...). */
  async query(sql: string): Promise<Record<string, unknown>[]> {
    const body = await this.call("POST", "/query", { query: sql });
    return QueryResult.parse(body).rows;
  }

  private async call(method: "GET" | "POST" | "DELETE" | "PATCH", path: string, json?: unknown): Promise<unknown> {
    const response = await request(`${this.baseUrl}${path}`, {
      method,
      headers: { ...this.headers, "content-type": "application/json", accept: "application/json" },
      body: json === undefined ? null : JSON.stringify(json),
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      ...this.via(),
    });
    const text = await response.body.text();
    if (response.statusCode >= 400) {
      const parsed = ErrorBody.safeParse(jsonOr(text, text));
      const reason = parsed.success
        ? `${parsed.data.message}${parsed.data.restate_code ? ` (${parsed.data.restate_code})` : ""}`
        : text;
      const message = `Restate admin ${method} ${path} failed (${response.statusCode}): ${reason}`;
      throw response.statusCode < 500 ? new AdminRefused(message, response.statusCode) : new Error(message);
    }
    return text ? jsonOr(text, text) : undefined;
  }

  private via(): { dispatcher?: Dispatcher } {
    return this.dispatcher ? { dispatcher: this.dispatcher } : {};
  }
}

/** Deployment ids are interpolated into SQL, so only Restate's own id shape is let through. */
function sqlId(id: string): string {
  if (!/^dp_[A-Za-z0-9]+$/.test(id)) throw new Error(`not a deployment id: ${id}`);
  return id;
}

function sqlInvocationId(id: string): string {
  if (!/^inv_[A-Za-z0-9]+$/.test(id)) throw new Error(`not an invocation id: ${id}`);
  return id;
}

function sqlText(text: string): string {
  if (/['\\]/.test(text)) throw new Error(`not a plain SQL string: ${text}`);
  return text;
}
