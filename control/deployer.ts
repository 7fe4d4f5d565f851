import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import * as restate from "@restatedev/restate-sdk";
import { request } from "undici";
import { z } from "zod";
import { AdminClient, AdminError } from "./admin-client.ts";
import { BundleName, CompatibilityDate, CompatibilityFlags, Version } from "./bundle.ts";
import { BundleError, inspectBundle, storeBundle } from "./bundle-store.ts";
import { ROUTES_KEY, type RoutesObject } from "./routes.ts";
import type { Settings } from "./settings.ts";

export const ActivateRequest = z.strictObject({
  source: z.url({ protocol: /^file$/, error: "source must be a file:///absolute/path URL of a wrangler outdir" }),
  version: Version,
  compatibilityDate: CompatibilityDate.optional(),
  compatibilityFlags: CompatibilityFlags.optional(),
});
export type ActivateRequest = z.infer<typeof ActivateRequest>;

export type BuildState = "active" | "draining";

export interface BuildRecord {
  version: string;
  buildId: string;
  deploymentId: string;
  uri: string;
  services: string[];
  state: BuildState;
  activatedAt: string;
  replacedAt?: string;
}

export interface ActivateResult {
  name: string;
  version: string;
  buildId: string;
  deploymentId: string;
  uri: string;
  services: string[];
}

type DeployerState = { builds: BuildRecord[] };

const DISCOVERY_TIMEOUT_MS = 15_000;

/** `deployer`, keyed by bundle name: activates builds of that bundle and keeps their records. */
export function deployerObject(settings: Settings) {
  const admin = new AdminClient(settings.adminUrl);

  return restate.object({
    name: "deployer",
    handlers: {
      activate: restate.handlers.object.exclusive(
        { input: restate.serde.schema(ActivateRequest) },
        async (ctx: restate.ObjectContext<DeployerState>, input: ActivateRequest): Promise<ActivateResult> => {
          const name = bundleName(ctx.key);
          const sourceDir = fileURLToPath(input.source);

          const build = await ctx.run("copy bundle", async () => {
            try {
              const inspected = await inspectBundle(sourceDir, name, input.version, input);
              await storeBundle(settings.bundlesDir, sourceDir, inspected);
              return inspected;
            } catch (error) {
              if (error instanceof BundleError) throw new restate.TerminalError(error.message, { errorCode: 400 });
              throw error;
            }
          });

          const records = (await ctx.get("builds")) ?? [];
          const existing = records.find((r) => r.buildId === build.buildId && r.state === "active");
          if (existing) return resultOf(name, existing);

          await ctx.objectClient<RoutesObject>({ name: "routes" }, ROUTES_KEY).add(build);

          const uri = `${settings.workerdUrl}/${name}/${build.buildId}`;
          await ctx.run("wait for discovery", () => waitForDiscovery(uri));
          const registered = await ctx.run("register with Restate", () => register(admin, uri));

          const now = new Date(await ctx.date.now()).toISOString();
          const record: BuildRecord = {
            version: build.version,
            buildId: build.buildId,
            deploymentId: registered.id,
            uri,
            services: registered.services.map((s) => s.name),
            state: "active",
            activatedAt: now,
          };
          const replaced = records
            .filter((r) => r.buildId !== build.buildId)
            .map((r) => (r.state === "active" ? { ...r, state: "draining" as const, replacedAt: now } : r));
          ctx.set("builds", [...replaced, record]);
          return resultOf(name, record);
        },
      ),

      status: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext<DeployerState>) => {
        const builds = (await ctx.get("builds")) ?? [];
        return { name: ctx.key, active: builds.find((b) => b.state === "active")?.buildId ?? null, builds };
      }),
    },
  });
}

function bundleName(key: string): string {
  const parsed = BundleName.safeParse(key);
  if (!parsed.success) {
    throw new restate.TerminalError(`bad bundle name "${key}": ${parsed.error.issues[0]?.message}`, { errorCode: 400 });
  }
  return parsed.data;
}

function resultOf(name: string, record: BuildRecord): ActivateResult {
  const { version, buildId, deploymentId, uri, services } = record;
  return { name, version, buildId, deploymentId, uri, services };
}

async function waitForDiscovery(uri: string): Promise<void> {
  const deadline = Date.now() + DISCOVERY_TIMEOUT_MS;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const response = await request(`${uri}/discover`, {
        headers: { accept: "application/vnd.restate.endpointmanifest.v3+json" },
        headersTimeout: 5_000,
      });
      const body = await response.body.text();
      if (response.statusCode === 200) return;
      last = `HTTP ${response.statusCode}: ${body.slice(0, 500)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(200);
  }
  throw new restate.TerminalError(
    `the build did not answer Restate discovery at ${uri}/discover within ${DISCOVERY_TIMEOUT_MS / 1000} s (${last}); is it a Restate endpoint made with @restatedev/restate-sdk-cloudflare-workers?`,
    { errorCode: 502 },
  );
}

async function register(admin: AdminClient, uri: string) {
  try {
    // A build's uri names its exact content, so overwriting an earlier registration of the
    // same uri (force) can only re-register the same code; it also makes it the latest again.
    return await admin.registerDeployment({ uri, http11: true, force: true });
  } catch (error) {
    if (error instanceof AdminError && error.status >= 400 && error.status < 500) {
      throw new restate.TerminalError(error.message, { errorCode: error.status });
    }
    throw error;
  }
}

export type DeployerObject = ReturnType<typeof deployerObject>;
