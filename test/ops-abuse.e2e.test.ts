import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeAll, describe, expect, test } from "vitest";
import type { StatusView } from "../control/domain/lifecycle.ts";
import { eventually, useTestMesh } from "./mesh.ts";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** The ops port of a real mesh under the attacks: slow sockets, page floods, cross-site posts, guessing. */
describe("the ops port under abuse", () => {
  const fx = useTestMesh({ greeter: ["greeter"], counter: ["counter"] });
  const port = () => fx.mesh.settings.ports.ops;
  const origin = () => `http://127.0.0.1:${port()}`;

  /** One request on a connection of its own, as a load balancer's probe or a browser's post makes it. */
  const send = (
    path: string,
    options: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {},
  ) =>
    new Promise<Answer>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: port(),
          path,
          method: options.method ?? "GET",
          headers: options.headers,
          agent: false,
          localAddress: options.from ?? "127.0.0.1",
          timeout: 5_000,
        },
        (response) => {
          let body = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => {
            body += chunk;
          });
          response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
        },
      );
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", reject);
      req.end(options.body);
    });
  const formPost = (
    path: string,
    fields: Record<string, string>,
    headers: Record<string, string> = {},
    from?: string,
  ) =>
    send(path, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: origin(), ...headers },
      body: new URLSearchParams(fields).toString(),
      ...(from ? { from } : {}),
    });
  const cookieOf = (answer: Answer, name: string) => {
    const set = [answer.headers["set-cookie"] ?? []].flat().find((c) => c.startsWith(`${name}=`));
    return set?.split(";")[0];
  };
  beforeAll(async () => {
    await fx.ingress.call("deployer/greeter/activate", { source: fx.sources.greeter, version: "1.0.0" });
    await fx.ingress.call("deployer/counter/activate", { source: fx.sources.counter, version: "1.0.0" });
  }, 60_000);
  const activeBuilds = async () =>
    Promise.all(
      ["greeter", "counter"].map(async (name) => (await fx.ingress.call<StatusView>(`deployer/${name}/status`)).active),
    );

  test("probes keep answering while 80 slow sockets trickle their headers and reopen when cut", async () => {
    const SLOW = 80;
    const MAX_OPENS = 5_000;
    let opened = 0;
    let cut = 0;
    let attacking = true;
    const sockets = new Set<Socket>();
    // Each slow socket sends a request line and then one header line every half second, never ending them.
    const open = () => {
      if (!attacking || opened >= MAX_OPENS) return;
      opened++;
      const socket = connect({ host: "127.0.0.1", port: port() });
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("connect", () => socket.write("GET / HTTP/1.1\r\nHost: x\r\n"));
      const drip = setInterval(() => socket.write("X-Slow: 1\r\n"), 500);
      socket.on("close", () => {
        clearInterval(drip);
        sockets.delete(socket);
        cut++;
        setTimeout(open, 50);
      });
    };
    try {
      for (let i = 0; i < SLOW; i++) open();
      await eventually(async () => expect(opened).toBeGreaterThanOrEqual(SLOW));
      await sleep(500);
      const answers: number[] = [];
      const held: number[] = [];
      for (let i = 0; i < 28; i++) {
        held.push(sockets.size);
        answers.push(
          await send(i % 2 ? "/readyz" : "/livez").then(
            (a) => a.status,
            () => 0,
          ),
        );
        await sleep(100);
      }
      const answered = answers.filter((s) => s === 200).length;
      console.log(
        `probes answered 200: ${answered} of 28; slow sockets open at each probe ${Math.min(...held)}-${Math.max(...held)}, opened ${opened}, cut by the server ${cut}`,
      );
      expect(answers).toEqual(Array(28).fill(200));
      // The attack lasted the whole time (80 wanted, never out of sockets to open), crowding the
      // port at every probe (64-80 open in the runs seen; a reconnect takes 50 ms).
      expect(Math.min(...held)).toBeGreaterThanOrEqual(56);
      expect(opened).toBeLessThan(MAX_OPENS);
    } finally {
      attacking = false;
      for (const socket of sockets) socket.destroy();
    }
  }, 60_000);

  test("a connection that never finishes its headers is cut within seconds, with no other load", async () => {
    const started = Date.now();
    const socket = connect({ host: "127.0.0.1", port: port() });
    socket.on("error", () => {});
    socket.on("connect", () => socket.write("GET / HTTP/1.1\r\n"));
    const drip = setInterval(() => socket.write("X-Slow: 1\r\n"), 500);
    await new Promise((resolve) => socket.once("close", resolve));
    clearInterval(drip);
    const took = Date.now() - started;
    console.log(`a slow-header connection was cut after ${took} ms`);
    expect(took).toBeLessThan(5_000);
  });

  test("odd request targets are answered and the port keeps serving", async () => {
    const raw = (target: string) =>
      new Promise<string>((resolve) => {
        const socket = connect({ host: "127.0.0.1", port: port() });
        let answer = "";
        socket.on("data", (chunk) => {
          answer += chunk.toString();
        });
        socket.on("error", () => resolve(answer));
        socket.on("close", () => resolve(answer));
        socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      });
    for (const target of ["//", "http://x/readyz", "/readyz?%", "*"]) {
      expect(await raw(target)).toMatch(/^HTTP\/1\.1 \d{3} /);
    }
    expect((await send("/livez")).status).toBe(200);
  });

  test("a flood of anonymous page views starts at most a few status invocations", async () => {
    const before = await activeBuilds();
    const statusCalls = async () => {
      const [row] = await fx.admin.query(
        "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'deployer' AND target_handler_name = 'status'",
      );
      return Number(row?.n);
    };
    const first = await statusCalls();
    const VIEWS = 200;
    const started = Date.now();
    // In waves of 20 at once: more at once than the connection budget would cut some (they give way).
    const views: number[] = [];
    for (let wave = 0; wave < VIEWS / 20; wave++) {
      const paths = Array.from({ length: 20 }, (_, i) => (i % 4 ? "/fragment" : "/"));
      views.push(...(await Promise.all(paths.map(async (path) => (await send(path)).status))));
    }
    const seconds = (Date.now() - started) / 1000;
    expect(views).toEqual(Array(VIEWS).fill(200));
    const started2 = await statusCalls();
    console.log(`${VIEWS} anonymous views in ${seconds.toFixed(1)} s started ${started2 - first} status invocations`);
    // Two bundles: one reading calls status twice; the cache allows a reading per 1.5 s.
    expect(started2 - first).toBeLessThanOrEqual(2 * (Math.ceil(seconds / 1.5) + 1));
    expect(await activeBuilds()).toEqual(before);
  });

  test("a cross-site post is 403 and changes nothing", async () => {
    const before = await activeBuilds();
    const elsewhere = { origin: "http://evil.example", "sec-fetch-site": "cross-site" };
    const login = await formPost("/login", { token: fx.ingress.token as string }, elsewhere);
    expect(login.status).toBe(403);
    expect(cookieOf(login, "gridiron_admin")).toBeUndefined();
    expect((await formPost("/actions/rollback", { bundle: "greeter" }, elsewhere)).status).toBe(403);
    expect((await formPost("/logout", {}, elsewhere)).status).toBe(403);
    expect(await activeBuilds()).toEqual(before);
  });

  test("a session cookie kept after sign-out is refused", async () => {
    const signedIn = await formPost("/login", { token: fx.ingress.token as string });
    expect(signedIn.status).toBe(303);
    const cookie = cookieOf(signedIn, "gridiron_admin") as string;
    expect(cookie).toMatch(/^gridiron_admin=/);
    const page = async () => (await send("/", { headers: { cookie } })).body;
    // Signed in, the page offers sign-out (rollback only where there is a build to roll back to).
    expect(await page()).toContain('action="logout"');
    expect((await formPost("/actions/no-such-action", { bundle: "greeter" }, { cookie })).status).toBe(404);

    expect((await formPost("/logout", {}, { cookie })).status).toBe(303);
    const before = await activeBuilds();
    const replayed = await formPost("/actions/rollback", { bundle: "greeter" }, { cookie });
    expect(replayed.status).toBe(401);
    expect(await page()).not.toContain('action="logout"');
    expect(await activeBuilds()).toEqual(before);
  });

  test("guessing the token from one address is 429 with Retry-After past the first tries; another address signs in", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 300; i++) {
      statuses.push((await formPost("/login", { token: `guess-${i}` }, {}, "127.0.0.2")).status);
    }
    const refused = statuses.filter((s) => s === 429).length;
    console.log(`of 300 wrong tokens: ${statuses.filter((s) => s === 303).length} answered, ${refused} refused 429`);
    expect(statuses.filter((s) => s !== 429 && s !== 303)).toEqual([]);
    expect(statuses.filter((s) => s === 303).length).toBeLessThanOrEqual(10);
    // The 301st attempt carries the right token: still refused, before the token is looked at.
    const right = await formPost("/login", { token: fx.ingress.token as string }, {}, "127.0.0.2");
    expect(right.status).toBe(429);
    expect(Number(right.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(cookieOf(right, "gridiron_admin")).toBeUndefined();
    const elsewhere = await formPost("/login", { token: fx.ingress.token as string });
    expect(elsewhere.status).toBe(303);
    expect(cookieOf(elsewhere, "gridiron_admin")).toMatch(/^gridiron_admin=/);
  });
});
