import { cpus, totalmem } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { readAdminToken } from "../control/credentials/admin-token.ts";
import { stepsOf } from "../control/domain/journal-steps.ts";
import { AdminClient } from "../control/restate/admin-client.ts";
import { Ingress } from "../test/ingress.ts";
import { activate, answeredBy, bundleName, withSides } from "./sides.ts";
import { versions } from "./versions.ts";

/**
 * `npm run bench:activate`: how soon a new version serves on an idle one-node mesh, the deploy
 * path alone. BENCH_ACTIVATIONS (10) new versions of one small service (bench/deploy-services.ts's
 * ping, whose answer names its version), the sides taking turns, behind one
 * restate-server: Gridiron's `activate`, and what a Restate user does without it, a new Node SDK
 * process registered with `POST /deployments`; then each with its slow part done ahead, untimed:
 * Gridiron's `promote` of a version rolled out at 0% (proved, routed and compiled: an upload), and
 * the registration of a Node process already started. Each is timed from the deploy's start until
 * the deploy call returns and until a call through Restate's ingress is answered by the new
 * version. Prints a table and two lines, `activate to first answer: median <g> ms (Node <n> ms)`
 * and the same for `promote` against the started process, then where Gridiron's time goes: each
 * journaled step of `activate` (read from Restate's journal, as `gridiron deploy` shows them) and
 * what lies between and around them.
 */

const ACTIVATIONS = Number(process.env.BENCH_ACTIVATIONS ?? 10);
/** Between deploys, so each starts on an idle mesh (the replaced versions drain meanwhile). */
const PAUSE_MS = 1_000;

interface Timed {
  returnedMs: number;
  answeredMs: number;
  /** Gridiron's: ms per journaled step of the activation, by the step's name. */
  steps?: Record<string, number>;
}

async function main(): Promise<void> {
  const rows = await withSides({}, async (mesh, fleet, sources) => {
    const ingress = new Ingress(mesh.settings.ingressUrl, await readAdminToken(mesh.settings));
    const admin = new AdminClient({ socketPath: mesh.settings.adminSocket });
    const gridiron: Side = {
      path: "ping1/ping",
      prepare: async (version) => {
        const source = await sources.ping(1, version);
        return () => activate(ingress, bundleName(1), source, version);
      },
      steps: () => stepsOfLast(admin, bundleName(1)),
    };
    // Cloudflare's `versions upload` then `versions deploy`: the build rolled out at 0% (proved,
    // routed, compiled; untimed, as the upload), then `promote`, timed, makes it serve.
    const uploaded: Side = {
      path: "ping2/ping",
      prepare: async (version) => {
        const source = await sources.ping(2, version);
        if (version === FIRST_VERSION) return () => activate(ingress, bundleName(2), source, version);
        await ingress.call(`deployer/${bundleName(2)}/activate`, { source, version, percent: 0 });
        return () => ingress.call(`deployer/${bundleName(2)}/promote`);
      },
    };
    const node: Side = {
      path: "node_ping1/ping",
      prepare: async (version) => () => fleet.deploy("ping", "node_ping1", version),
    };
    // Its peer: the new process started (untimed), then registered.
    const started: Side = {
      path: "node_ping2/ping",
      prepare: (version) => fleet.start("ping", "node_ping2", version),
    };
    return deploys(ingress, {
      Gridiron: gridiron,
      Node: node,
      [UPLOADED]: uploaded,
      [STARTED]: started,
    });
  });
  console.log(await report(rows));
}

/** One side's service: where it answers, and how a version is built, returning its deploy. */
interface Side {
  path: string;
  prepare: (version: string) => Promise<() => Promise<unknown>>;
  /** How long each journaled step of the last deploy took, where a side has them. */
  steps?: () => Promise<Record<string, number>>;
}

/** The journaled steps of the last `activate` of `bundle` (its locked call's, which the admin gate made), in ms. */
async function stepsOfLast(admin: AdminClient, bundle: string): Promise<Record<string, number>> {
  const [last] = await admin.query(
    `SELECT id FROM sys_invocation WHERE target_service_name = 'deployer' AND target_service_key = '${bundle}' AND target_handler_name = 'activate' ORDER BY created_at DESC LIMIT 1`,
  );
  const steps = stepsOf(await admin.journal(String(last?.id)));
  const ms: Record<string, number> = {};
  for (const step of steps) {
    if (step.endedAt) ms[step.label] = (ms[step.label] ?? 0) + Date.parse(step.endedAt) - Date.parse(step.startedAt);
  }
  return ms;
}

const UPLOADED = "Gridiron, uploaded at 0% first";
const STARTED = "Node, process started first";
type Sides = "Gridiron" | "Node" | typeof UPLOADED | typeof STARTED;
/** Each side's first version, deployed untimed. */
const FIRST_VERSION = "0.0.0";

/**
 * On each side a first version, untimed (what a side starts once, such as Gridiron's first proof
 * workerd), then ACTIVATIONS new ones, each timed, the sides taking turns so that both see the
 * same machine (a shared one's load comes and goes).
 */
async function deploys(ingress: Ingress, sides: Record<Sides, Side>): Promise<Record<Sides, Timed[]>> {
  const timed: Record<Sides, Timed[]> = { Gridiron: [], Node: [], [UPLOADED]: [], [STARTED]: [] };
  for (const side of Object.values(sides)) {
    await (await side.prepare(FIRST_VERSION))();
    await answeredBy(ingress, side.path, `pong ${FIRST_VERSION}`);
  }
  for (let k = 1; k <= ACTIVATIONS; k++) {
    for (const [name, side] of Object.entries(sides) as [Sides, Side][]) {
      const version = `1.0.${k}`;
      const deploy = await side.prepare(version);
      await sleep(PAUSE_MS);
      const started = performance.now();
      await deploy();
      const returnedMs = performance.now() - started;
      await answeredBy(ingress, side.path, `pong ${version}`);
      const answeredMs = performance.now() - started;
      timed[name].push({ returnedMs, answeredMs, ...(side.steps ? { steps: await side.steps() } : {}) });
    }
  }
  return timed;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? Number.NaN) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

async function report(rows: Record<Sides, Timed[]>): Promise<string> {
  const line = (side: Sides) => {
    const answered = rows[side].map((t) => t.answeredMs);
    return `| ${side} | ${median(rows[side].map((t) => t.returnedMs)).toFixed(0)} | ${median(answered).toFixed(0)} | ${Math.min(...answered).toFixed(0)}-${Math.max(...answered).toFixed(0)} |`;
  };
  const answered = (side: Sides) => median(rows[side].map((t) => t.answeredMs));
  const compared = (what: string, gridiron: Sides, node: Sides) =>
    `${what} to first answer: median ${answered(gridiron).toFixed(0)} ms (${node} ${answered(node).toFixed(0)} ms, ${(answered(node) / answered(gridiron)).toFixed(2)}x)`;
  return [
    `${await versions()}; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GB; one run. ${ACTIVATIONS} new versions of one small service per side, one at a time on an idle mesh, the sides taking turns, each timed from its start (the version built). Gridiron: \`activate\`; Node: a new process registered with \`POST /deployments\`. Ahead of the timed part, untimed: ${UPLOADED}, \`activate\` at 0% (proved, routed, compiled), then \`promote\` timed; ${STARTED}, then its registration timed. Medians.`,
    "",
    "| side | deploy call returned ms | first call answered by the new version ms | range ms |",
    "|---|---|---|---|",
    line("Gridiron"),
    line("Node"),
    line(UPLOADED),
    line(STARTED),
    "",
    compared("activate", "Gridiron", "Node"),
    compared("promote of a build uploaded at 0%", UPLOADED, STARTED),
    "",
    ...breakdown(rows.Gridiron),
  ].join("\n");
}

/**
 * Gridiron's activations step by step: the median of each journaled step, and of the rest (the
 * admin gate's hop, journal entries between the steps, the answer's way back and the first call).
 */
function breakdown(rows: Timed[]): string[] {
  const labels = [...new Set(rows.flatMap((t) => Object.keys(t.steps ?? {})))];
  const stepMs = (t: Timed, label: string) => t.steps?.[label] ?? 0;
  const outside = rows.map((t) => t.answeredMs - labels.reduce((sum, label) => sum + stepMs(t, label), 0));
  return [
    "| Gridiron step | median ms |",
    "|---|---|",
    ...labels.map((label) => `| ${label} | ${median(rows.map((t) => stepMs(t, label))).toFixed(0)} |`),
    `| between and around the steps, to the first answer | ${median(outside).toFixed(0)} |`,
  ];
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
