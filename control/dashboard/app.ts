import { randomBytes } from "node:crypto";
import { getConnInfo } from "@hono/node-server/conninfo";
import * as clients from "@restatedev/restate-sdk-clients";
import { type Context, Hono } from "hono";
import { deleteCookie, getSignedCookie, setSignedCookie } from "hono/cookie";
import { csrf } from "hono/csrf";
import { z } from "zod";
import { deployerClient } from "../contracts.ts";
import { adminHeaders, authorized } from "../credentials/admin-token.ts";
import { BundleName } from "../domain/bundle.ts";
import { LogFilterSchema, type LogStore } from "../logs/store.ts";
import { cached } from "../ops/cached.ts";
import { AdminClient } from "../restate/admin-client.ts";
import { callFailure } from "../restate/ingress-error.ts";
import type { Settings } from "../settings.ts";
import { loadDashboard } from "./data.ts";
import { content, linesPage, page, type Viewer } from "./page.ts";
import { Sessions } from "./sessions.ts";
import { SignInLimit } from "./sign-in-limit.ts";

const SESSION = "gridiron_admin";
const FLASH = "gridiron_flash";
const SESSION_SECONDS = 8 * 3600;
/**
 * Anonymous views of the page share one reading of the mesh for this long: a reading calls
 * `status` on every bundle, and the page polls every 2 s, so a flood of views must not turn into
 * a flood of Restate invocations. Signed-in views read afresh, to show an action's effect.
 */
const VIEW_CACHE_MS = 1_500;

const BuildId = z.string().max(100).optional();
/** Lines a build's page shows: the newest. */
const LINES_SHOWN = 200;

type DeployerClient = ReturnType<typeof deployerClient>;

/** The deployer of `bundle`, called with the admin token the dashboard holds. */
function adminDeployer(settings: Pick<Settings, "ingressUrl">, adminToken: string, bundle: string) {
  return deployerClient(clients.connect({ url: settings.ingressUrl, headers: adminHeaders(adminToken) }), bundle);
}

/** An action: the form fields it takes, and the deployer call it makes, saying what it did. */
const defineAction = <S extends z.ZodType<{ bundle: string }>>(
  schema: S,
  run: (deployer: DeployerClient, input: z.infer<S>) => Promise<string>,
) => ({ schema, run });

const ACTIONS = {
  rollback: defineAction(z.object({ bundle: BundleName, buildId: BuildId }), async (deployer, { bundle, buildId }) => {
    const result = await deployer.rollback(buildId ? { buildId } : undefined);
    return `rolled ${bundle} back to ${result.version} (${result.buildId})`;
  }),
  prune: defineAction(
    z.object({ bundle: BundleName, buildId: BuildId, force: z.literal("true").optional() }),
    async (deployer, { bundle, buildId, force }) => {
      const { pruned } = await deployer.prune(buildId ? { buildId, ...(force ? { force: true } : {}) } : undefined);
      if (pruned.length === 0) return `nothing of ${bundle} to prune`;
      return `pruned ${pruned.map((p) => p.buildId).join(", ")} of ${bundle}`;
    },
  ),
  promote: defineAction(z.object({ bundle: BundleName }), async (deployer, { bundle }) => {
    const result = await deployer.promote();
    return `promoted ${result.version} (${result.buildId}): it is the active build of ${bundle}`;
  }),
  abort: defineAction(z.object({ bundle: BundleName }), async (deployer, { bundle }) => {
    const result = await deployer.abort();
    return `aborted the rollout of ${bundle}: ${result.version} (${result.buildId}) takes every new call`;
  }),
  resume: defineAction(z.object({ bundle: BundleName }), async (deployer, { bundle }) => {
    const { resumed } = await deployer.resumePaused();
    return `resumed ${resumed.length} invocation(s) of ${bundle}`;
  }),
};

/**
 * The deployments dashboard: reading is open, like `status`, and anonymous readers share one
 * reading of the mesh a second or so old; actions need a session made by signing in with the
 * admin token (a form, so the token never travels in a URL), a few attempts a second per client
 * address at most (sign-in-limit.ts). The session is a random id kept by this process
 * (sessions.ts: sign-out revokes it, its age is checked here), in a cookie signed with a key that
 * lives as long as this process, HttpOnly and SameSite=Strict, and form posts from other origins
 * are refused with 403, so another site cannot act with it. Every action is a call to the
 * `deployer` object, exactly as the API makes it.
 */
export function dashboardApp(
  settings: Pick<Settings, "adminSocket" | "adminUrl" | "ingressUrl" | "drainGraceMs" | "drainPollMs">,
  adminToken: string,
  logs?: LogStore,
): Hono {
  const secret = randomBytes(32);
  const admin = new AdminClient({ socketPath: settings.adminSocket });
  const sessions = new Sessions(SESSION_SECONDS * 1000);
  const signIns = new SignInLimit();
  const outcomes = () => logs?.outcomes() ?? [];
  const sharedView = cached(() => loadDashboard(settings, admin, outcomes), VIEW_CACHE_MS);
  const signedIn = async (c: Context) => sessions.valid(await getSignedCookie(c, secret, SESSION));
  const viewer = async (c: Context): Promise<Viewer> => {
    const flash = await getSignedCookie(c, secret, FLASH);
    if (flash) deleteCookie(c, FLASH, { path: "/" });
    return { admin: await signedIn(c), ...(flash ? { flash } : {}) };
  };
  const view = async (c: Context) => {
    const who = await viewer(c);
    return { data: await (who.admin ? loadDashboard(settings, admin, outcomes) : sharedView()), who };
  };
  /** Back to the page, which says once what happened (post, redirect, get). */
  const back = async (c: Context, flash: string) => {
    await setSignedCookie(c, FLASH, flash, secret, { httpOnly: true, sameSite: "Strict", path: "/" });
    return c.redirect("/", 303);
  };

  const app = new Hono();
  app.use(csrf());
  app.get("/", async (c) => {
    const { data, who } = await view(c);
    return c.html(page(data, who));
  });
  app.get("/fragment", async (c) => {
    const { data, who } = await view(c);
    return c.html(content(data, who));
  });

  // A build's recent lines, newest last: only for a signed-in admin, as lines may hold anything.
  app.get("/builds/:bundle/:build/lines", async (c) => {
    if (!(await signedIn(c))) return c.text("sign in with the admin token first: lines need it\n", 401);
    const filter = LogFilterSchema.pick({ invocation: true, status: true }).safeParse(c.req.query());
    if (!filter.success) return c.text(`bad filter: ${z.prettifyError(filter.error)}\n`, 400);
    const { bundle, build } = c.req.param();
    const lines = (logs?.query(bundle, { ...filter.data, build }) ?? []).slice(-LINES_SHOWN);
    return c.html(linesPage({ bundle, build, lines, filter: filter.data, restateUi: `${settings.adminUrl}/ui` }));
  });

  app.post("/login", async (c) => {
    const address = getConnInfo(c).remote.address ?? "unknown";
    const wait = await signIns.wait(address);
    if (wait !== undefined) {
      c.header("retry-after", String(wait));
      return c.text(`too many sign-in attempts from ${address}: try again in ${wait} s\n`, 429);
    }
    const token = String((await c.req.parseBody()).token ?? "");
    if (!authorized(`Bearer ${token}`, adminToken)) {
      await signIns.failed(address);
      return back(c, "that is not the admin token");
    }
    await signIns.succeeded(address);
    await setSignedCookie(c, SESSION, sessions.open(), secret, {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      maxAge: SESSION_SECONDS,
    });
    return back(c, "signed in: actions are available");
  });
  app.post("/logout", async (c) => {
    sessions.revoke(await getSignedCookie(c, secret, SESSION));
    deleteCookie(c, SESSION, { path: "/" });
    return back(c, "signed out");
  });

  app.post("/actions/:action", async (c) => {
    if (!(await signedIn(c))) {
      return c.text("sign in with the admin token first: actions need it\n", 401);
    }
    const name = c.req.param("action");
    const action = Object.hasOwn(ACTIONS, name) ? ACTIONS[name as keyof typeof ACTIONS] : undefined;
    if (!action) return c.text(`no action ${name}\n`, 404);
    const input = action.schema.safeParse(await c.req.parseBody());
    if (!input.success) return c.text(`bad ${name} request: ${z.prettifyError(input.error)}\n`, 400);
    const deployer = adminDeployer(settings, adminToken, input.data.bundle);
    // Each action's schema and run belong together; TypeScript cannot follow that through the lookup.
    const run = action.run as (deployer: DeployerClient, input: unknown) => Promise<string>;
    const outcome = await run(deployer, input.data).catch((error: unknown) => `${name} failed: ${callFailure(error)}`);
    return back(c, outcome);
  });
  return app;
}
