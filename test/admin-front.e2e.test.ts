import { Agent, type RequestOptions, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { describe, expect, test } from "vitest";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { ROOT } from "./cli.ts";
import { useTestMesh } from "./mesh.ts";

/** An HTTP request with node:http, whose agent decides whether connections are kept alive. */
function send(url: string, options: RequestOptions, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const sent = request(url, { ...options, timeout: 30_000 }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        text += chunk;
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
      response.on("error", reject);
    });
    sent.on("timeout", () => sent.destroy(new Error("no answer within 30 s")));
    sent.on("error", reject);
    sent.end(body);
  });
}

/** Requests sent 50 at a time, then one at a time: 5,000 in all. */
const CONCURRENT = 4_000;
const SEQUENTIAL = 1_000;
const AT_ONCE = 50;

/**
 * The admin front on GRIDIRON_ADMIN_PORT loses nothing: every read gets Restate's own answer,
 * whether 50 come at once or one after another, while the `restate` CLI uses the same front.
 * Restate may close its socket connection before the request's body is written (it answered
 * early, or closed it at once); the front writes the whole request at once and sends it again on
 * a new connection when nothing was answered (`write EPIPE`, seen on 8 of 900 reads before).
 */
describe("the admin front under load", () => {
  const fx = useTestMesh({ greeter: ["greeter"] });

  test("5,000 reads, 50 at a time and one at a time, mixed with the restate CLI: 0 failures", async () => {
    const { settings } = fx.mesh;
    const { deploymentId } = await fx.ingress.call<ActivateResult>("deployer/greeter/activate", {
      source: fx.sources.greeter,
      version: "1.0.0",
    });
    const invocation = await fx.ingress.send("greeter/greet", "load");
    const token = await readAdminToken(settings);
    const headers = { authorization: `Bearer ${token}`, accept: "application/json" };
    const query = JSON.stringify({ query: "SELECT id, status FROM sys_invocation LIMIT 10" });
    // What the CLI, the dashboard and `gridiron status` ask: lists, one deployment, now and then a
    // SQL query; and a query Restate refuses before it reads the body (no content type), whose
    // answer must be Restate's 415, not a 502 from a body written to a connection Restate closed.
    const json = { "content-type": "application/json" };
    const reads: { method: string; path: string; body?: string; type?: object; status: number }[] = [
      { method: "GET", path: "/deployments", status: 200 },
      { method: "GET", path: "/services", status: 200 },
      { method: "GET", path: `/deployments/${deploymentId}`, status: 200 },
      { method: "POST", path: "/query", body: query, type: json, status: 200 },
      { method: "GET", path: "/health", status: 200 },
      { method: "POST", path: "/query", body: query, status: 415 },
    ];
    const failures: string[] = [];
    /** One read: on a kept-alive connection (as the CLI's and dashboard's clients) or a fresh one (as curl). */
    const one = async (i: number, agent: Agent | false) => {
      const read = reads[i % reads.length] as (typeof reads)[number];
      const what = `${read.method} ${read.path}`;
      try {
        const options = { method: read.method, headers: { ...headers, ...read.type }, agent };
        const { status, text } = await send(`${settings.adminUrl}${read.path}`, options, read.body);
        if (status !== read.status) failures.push(`${what}: ${status} ${text.trim()}`);
      } catch (error) {
        failures.push(`${what}: ${String(error)}`);
      }
    };

    const cliRuns: string[] = [];
    let loading = true;
    const cli = (async () => {
      const commands = [
        ["deployments", "list"],
        ["services", "list"],
        ["invocations", "describe", invocation],
      ];
      for (let i = 0; loading || i < commands.length; i++) {
        const args = commands[i % commands.length] as string[];
        const run = await execa(`${ROOT}/node_modules/.bin/restate`, args, {
          env: { RESTATE_ADMIN_URL: settings.adminUrl, RESTATE_AUTH_TOKEN: token },
          reject: false,
          timeout: 30_000,
        });
        cliRuns.push(args.join(" "));
        if (run.exitCode !== 0) failures.push(`restate ${args.join(" ")}: ${run.stderr.trim()}`);
        // A few runs a second are the mix; more would only load the two cores.
        await sleep(500);
      }
    })();

    const started = Date.now();
    const pooled = new Agent({ keepAlive: true, maxSockets: AT_ONCE });
    let next = 0;
    await Promise.all(
      Array.from({ length: AT_ONCE }, async () => {
        while (next < CONCURRENT) await one(next++, pooled);
      }),
    );
    pooled.destroy();
    for (let i = 0; i < SEQUENTIAL; i++) await one(i, false);
    loading = false;
    await cli;

    console.log(
      `admin front: ${CONCURRENT + SEQUENTIAL} requests and ${cliRuns.length} restate CLI runs in ${(Date.now() - started) / 1000} s`,
    );
    expect(failures).toEqual([]);
    expect(cliRuns.length).toBeGreaterThanOrEqual(3);
  }, 240_000);
});
