import * as clients from "@restatedev/restate-sdk-clients";
import { Argument, type Command, Option } from "commander";
import type { ClusterNode } from "../cluster/members.ts";
import { clusterClient } from "../contracts.ts";
import type { BuildView, StatusView } from "../domain/lifecycle.ts";
import { CellRequest } from "../domain/placement.ts";
import { DEFAULT_AUTO } from "../domain/rollout.ts";
import type { ActivateRequest, ActivateResult } from "../objects/deployer/api.ts";
import { loadSettings } from "../settings.ts";
import { activateRequest, DEFAULT_VERSION, type DeployOptions, inSourceTerms } from "./activate-request.ts";
import { confirmOrStop } from "./ask.ts";
import {
  admin,
  attachable,
  type Connection,
  deployer,
  ingress,
  requireToken,
  resolveConnection,
  sendClient,
} from "./connection.ts";
import { devCommand } from "./dev.ts";
import { inertLines } from "./inert.ts";
import { logCommands } from "./logs.ts";
import { Progress } from "./progress.ts";
import { prepareSource, type Source } from "./project.ts";
import { secretCommands } from "./secret.ts";
import { buildRows, formatTable, nodeRows, rolloutSummary } from "./status.ts";
import { uploadBuild } from "./upload.ts";
import { watch } from "./watch.ts";

interface Globals {
  ingressUrl?: string;
  adminUrl?: string;
  opsUrl?: string;
  token?: string;
  json?: boolean;
}

/** A cluster's nodes, or undefined for a mesh of one node (which has no `cluster` service). */
async function clusterNodes(connection: Connection): Promise<ClusterNode[] | undefined> {
  try {
    return await clusterClient(ingress(connection)).nodes();
  } catch (error) {
    if (error instanceof clients.HttpCallError && error.status === 404) return undefined;
    throw error;
  }
}

/** Registers every subcommand of `gridiron` on `program`. */
export function commands(program: Command): void {
  const globals = () => program.opts<Globals>();
  const connect = () => resolveConnection(globals());
  // JSON escapes control characters itself; what people read is made inert line by line.
  const print = (json: unknown, human: () => string) =>
    process.stdout.write(globals().json ? `${JSON.stringify(json, null, 2)}\n` : inertLines(human()));

  program
    .command("deploy")
    .description(
      "build a wrangler project (or take a built outdir, or an archive of one at an https:// or s3:// URL) and activate it as a new build",
    )
    .argument(
      "[path]",
      "a wrangler project dir (wrangler.toml/json/jsonc), a built outdir, or an https:// or s3://bucket/key URL of a tar, tar.gz or zip of one (with --sha256 and --name)",
      ".",
    )
    .option("--name <name>", "bundle name (default: the wrangler config's name)")
    .option("--version <version>", `version (default: package.json's version, else ${DEFAULT_VERSION})`)
    .option("--message <text>", "what this build changes; shown by status and builds")
    .option("--breaking", "let Restate accept a schema change it would refuse, like a removed handler")
    .option("--take-over <services...>", "services of other bundles this bundle takes over")
    .option("--env <name>", "use the wrangler config's [env.NAME] (its vars, name and settings), as wrangler does")
    .option("--require <secrets...>", "secrets the build needs (besides the wrangler config's secrets.required)")
    .option(
      "--upload <s3-prefix>",
      "upload the build to s3://bucket/prefix/SHA256.tar.gz and activate it from there (the mesh needs read access)",
    )
    .option("--sha256 <hex>", "the SHA-256 of the archive at an https:// or s3:// URL given as path")
    .option(
      "--egress <hosts...>",
      "where the build's code may fetch: none, or only these hosts (api.example.com, *.example.com); default: the public internet",
    )
    .addOption(
      new Option(
        "--cell <kind>",
        "dedicated: a workerd cell of the bundle's own; shared: back among the others",
      ).choices(CellRequest.options),
    )
    .option(
      "--percent <n>",
      "roll the build out to N% of new calls beside the active build (0-99; 0 uploads it ready to promote)",
      Number,
    )
    .option(
      "--auto [steps]",
      `step the rollout up by itself while the canary's errors stay near the stable build's (default steps ${DEFAULT_AUTO.steps.join(",")}, then promote)`,
    )
    .option(
      "--auto-interval <seconds>",
      `how long each step runs before it is judged (default ${DEFAULT_AUTO.intervalSeconds})`,
      Number,
    )
    .action(async (path: string, options: DeployOptions) => {
      const connection = await connect();
      requireToken(connection);
      const progress = new Progress(Boolean(globals().json));
      const source = await sourceOf(path, options, (line) => progress.note(line));
      try {
        const name = options.name ?? source.name;
        if (!name) throw new Error(`${path} is a built outdir or an archive: pass --name`);
        const request = { ...activateRequest(source, options), ...(await remoteOf(source, options, progress)) };
        progress.note(`activating ${name} ${request.version}`);
        const send = await sendClient(connection, name).activate(request, attachable());
        const result = await watch(connection, send, progress).catch(async (error: unknown) => {
          throw await inSourceTerms(error, source);
        });
        const twins = sameVersion(await deployer(connection, name).status(), result);
        if (twins.length) {
          progress.note(
            `${name} ${result.version} was deployed before as build ${twins.join(", ")}; this is another build of that version (set --version to tell them apart)`,
          );
        }
        print(result, () => activated(result));
      } finally {
        await source.cleanup();
      }
    });

  program
    .command("status")
    .description("every bundle and its builds, or one bundle's")
    .argument("[name]", "bundle name")
    .action(async (name?: string) => {
      const connection = await connect();
      const names = name ? [name] : await admin(connection).bundles();
      const statuses = await Promise.all(names.map((n) => deployer(connection, n).status()));
      // A cluster's nodes first, as `npx just status` shows them.
      const nodes = name || globals().json ? undefined : await clusterNodes(connection);
      print(
        name ? statuses[0] : statuses,
        () =>
          (nodes ? `${formatTable(nodeRows(nodes))}\n` : "") +
          (statuses.length
            ? formatTable(statuses.flatMap(buildRows)) + statuses.map(rolloutSummary).join("")
            : "no bundles deployed yet (try `gridiron deploy`)\n"),
      );
    });

  program
    .command("nodes")
    .description("a cluster's nodes: alive, partitions led, builds served")
    .action(async () => {
      const nodes = await clusterNodes(await connect());
      if (!nodes)
        throw new Error("this mesh runs as one node: `nodes` is for a cluster (see the README's Cluster section)");
      print(nodes, () => formatTable(nodeRows(nodes)));
    });

  program
    .command("builds")
    .description("a bundle's builds: version, state, when each state began, message, source")
    .argument("<name>", "bundle name")
    .action(async (name: string) => {
      const status = await deployer(await connect(), name).status();
      print(status.builds, () =>
        status.builds.length ? formatTable(status.builds.map(historyRow)) : `no builds of ${name}\n`,
      );
    });

  program
    .command("rollback")
    .description("send new calls to the previous build again (or to BUILD)")
    .argument("<name>", "bundle name")
    .argument("[build]", "build id to roll back to (default: the previous active build)")
    .action(async (name: string, buildId?: string) => {
      const connection = await connect();
      requireToken(connection);
      const send = await sendClient(connection, name).rollback(buildId ? { buildId } : undefined, attachable());
      const result = await watch(connection, send, new Progress(Boolean(globals().json)));
      print(
        result,
        () => `rolled ${name} back to ${result.version} (${result.buildId}), deployment ${result.deploymentId}\n`,
      );
    });

  program
    .command("prune")
    .description("unregister and unroute every drained build now, or BUILD (which must be drained unless --force)")
    .argument("<name>", "bundle name")
    .argument("[build]", "build id")
    .option("--force", "prune BUILD even while invocations still run on it (they fail)")
    .option("--yes", "do not ask for confirmation (needed without a terminal)")
    .action(async (name: string, buildId: string | undefined, options: { force?: boolean; yes?: boolean }) => {
      const connection = await connect();
      requireToken(connection);
      const what = buildId
        ? `build ${buildId} of ${name}${options.force ? ", even if calls still run on it" : ""}`
        : `every drained build of ${name}`;
      if (!options.yes) await confirmOrStop(`Prune ${what}?`);
      const body = buildId ? { buildId, ...(options.force ? { force: true } : {}) } : undefined;
      const send = await sendClient(connection, name).prune(body, attachable());
      const result = await watch(connection, send, new Progress(Boolean(globals().json)));
      print(result, () =>
        result.pruned.length
          ? result.pruned.map((p) => `pruned ${p.buildId} (${p.affectedInvocations} invocation(s) affected)\n`).join("")
          : `nothing of ${name} to prune\n`,
      );
    });

  program
    .command("rollout")
    .description("give the canary of a rollout in progress another share of new calls")
    .argument("<name>", "bundle name")
    .requiredOption("--percent <n>", "the canary's share of new calls, 0-99", Number)
    .action(async (name: string, options: { percent: number }) => {
      const connection = await connect();
      requireToken(connection);
      const send = await sendClient(connection, name).rollout({ percent: options.percent }, attachable());
      const result = await watch(connection, send, new Progress(Boolean(globals().json)));
      print(result, () => activated(result));
    });

  program
    .command("promote")
    .description("make the canary of a rollout in progress the active build")
    .argument("<name>", "bundle name")
    .action(async (name: string) => {
      const connection = await connect();
      requireToken(connection);
      const send = await sendClient(connection, name).promote(attachable());
      const result = await watch(connection, send, new Progress(Boolean(globals().json)));
      print(result, () => activated(result));
    });

  program
    .command("abort")
    .description("end a rollout: the stable build takes every new call again, the canary drains")
    .argument("<name>", "bundle name")
    .action(async (name: string) => {
      const connection = await connect();
      requireToken(connection);
      const send = await sendClient(connection, name).abort(attachable());
      const result = await watch(connection, send, new Progress(Boolean(globals().json)));
      print(result, () => `aborted: ${activated(result)}`);
    });

  program
    .command("resume")
    .description("move invocations paused on replaced builds to the active build")
    .argument("<name>", "bundle name")
    .action(async (name: string) => {
      const connection = await connect();
      requireToken(connection);
      const result = await deployer(connection, name).resumePaused();
      print(result, () => `resumed ${result.resumed.length} invocation(s)\n`);
    });

  secretCommands(program, { connect, print, json: () => Boolean(globals().json) });
  logCommands(program, { connect, json: () => Boolean(globals().json), nodes: clusterNodes });
  devCommand(program, { connect, print, json: () => Boolean(globals().json) });

  program
    .command("mesh")
    .description("where the CLI finds the mesh: set URLs, else what a running `npm start` recorded, else defaults")
    .addArgument(new Argument("[url]", "print only this URL, for scripts").choices(["ingress", "admin"]))
    .action(async (only?: "ingress" | "admin") => {
      const { ingressUrl: ingress, adminUrl: admin } = await connect();
      if (only) return void process.stdout.write(`${only === "ingress" ? ingress : admin}\n`);
      print({ ingress, admin }, () => `ingress  ${ingress}\nadmin    ${admin}\n`);
    });

  program
    .command("start")
    .description("run the mesh in the foreground (what `npm start` runs); Ctrl-C stops everything")
    .action(async () => {
      const { runMesh } = await import("../node/supervisor.ts");
      await runMesh(loadSettings());
    });
}

const REMOTE = /^(https|s3):\/\//;

/** What `path` names: a project or outdir to build or take, or an archive at a URL to take as it is. */
async function sourceOf(path: string, options: DeployOptions, log: (line: string) => void): Promise<Source> {
  if (!REMOTE.test(path)) {
    if (options.sha256) throw new Error("--sha256 is for an https:// or s3:// URL given as path");
    return prepareSource(path, options.env, log);
  }
  if (!options.sha256) throw new Error(`${path} needs --sha256: the SHA-256 of the archive (\`sha256sum FILE\`)`);
  if (options.upload || options.env) throw new Error(`${path} is built already: --upload and --env are for a project`);
  // Nothing to build or clean up: the URL stands in for the outdir, and remoteOf sends it as it is.
  return {
    outdir: path,
    name: undefined,
    version: undefined,
    settings: {},
    project: undefined,
    requiredSecrets: [],
    positions: async (text) => text,
    cleanup: async () => {},
  };
}

/** The archive `activate` fetches instead of the outdir: one named as path, or the build uploaded now. */
async function remoteOf(
  source: Source,
  options: DeployOptions,
  progress: Progress,
): Promise<Pick<ActivateRequest, "source" | "sha256"> | undefined> {
  if (REMOTE.test(source.outdir)) return { source: source.outdir, sha256: options.sha256 };
  if (!options.upload) return undefined;
  progress.note(`uploading the build to ${options.upload}`);
  const uploaded = await uploadBuild(source.outdir, options.upload);
  progress.note(`uploaded ${uploaded.source}`);
  return uploaded;
}

/** `--egress none` or `--egress HOST...`, as activate takes it (it checks the hosts). */

/** Other builds of the bundle with the version `result` has: a redeploy of changed code under the same version. */
function sameVersion(view: StatusView, result: ActivateResult): string[] {
  return view.builds.filter((b) => b.version === result.version && b.buildId !== result.buildId).map((b) => b.buildId);
}

function rolloutLine({ name, version, rollout }: ActivateResult): string {
  if (!rollout) return `${name} ${version} is active`;
  return rollout.percent === 0
    ? `${name} ${version} is uploaded beside ${rollout.stable}: proved, routed and compiled, sent no call (promote it to serve, or abort)`
    : `${name} ${version} takes ${rollout.percent}% of new calls beside ${rollout.stable} (promote or abort it)`;
}

function activated(result: ActivateResult): string {
  const lines = [
    rolloutLine(result),
    `  build       ${result.buildId}`,
    `  deployment  ${result.deploymentId}`,
    `  cell        ${result.cell}`,
    `  services    ${result.services.join(", ")}`,
    `  protocol    ${result.protocolMode ?? "unknown"}`,
  ];
  if (result.protocolMode === "REQUEST_RESPONSE") {
    lines.push(
      "  warning: request-response mode costs Restate a request and a replay per ctx.run, call or sleep;",
      "  pass bidirectional: true to createEndpointHandler to keep one stream per invocation",
    );
  }
  return `${lines.join("\n")}\n`;
}

function historyRow(build: BuildView): Record<string, string> {
  return {
    version: build.version,
    build: build.buildId,
    state: build.state,
    activated: build.times.active ?? "",
    // A drifted build is still the active one by its record.
    since: build.times[build.state === "drifted" ? "active" : build.state] ?? "",
    message: build.message ?? build.error ?? "",
    source: build.source ?? "",
    "last event": lastEvent(build),
  };
}

/** The build's latest history entry: what made it what it is, e.g. "rolled back to at …". */
function lastEvent(build: BuildView): string {
  const last = build.history?.at(-1);
  if (!last) return "";
  const took = last.durationMs === undefined ? "" : ` in ${(last.durationMs / 1000).toFixed(2)} s`;
  return `${last.event} at ${last.at}${took}`;
}
