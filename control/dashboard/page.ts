import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { duration, type Step } from "../domain/journal-steps.ts";
import { type BuildView, canRollBackTo, type StatusView } from "../domain/lifecycle.ts";
import type { RolloutView } from "../domain/rollout.ts";
import type { LogRecord } from "../logs/records.ts";
import type { BuildOutcomes, LogFilter } from "../logs/store.ts";
import type { Dashboard } from "./data.ts";
import { relativeTime } from "./relative-time.ts";

/** The dashboard's HTML, rendered on the server; a small script polls `fragment` and confirms actions. */

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export interface Viewer {
  /** Whether this browser signed in with the admin token: only then are actions offered. */
  admin: boolean;
  /** What the last action did, or why it failed. */
  flash?: string;
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{display:flex;gap:1rem;align-items:center;padding:.7rem 1.2rem;background:#1d2330;color:#fff}
header h1{font-size:1.05rem;margin:0;flex:1} header a{color:#9cc3ff}
main{padding:1rem 1.2rem;max-width:1200px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:0 0 1rem;padding:.8rem 1rem}
h2{font-size:1.05rem;margin:.1rem 0 .6rem} table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-top:1px solid #eef0f3;vertical-align:top}
th{font-weight:600;color:#56607a;border-top:0}
.badge{display:inline-block;padding:0 .5rem;border-radius:9px;font-size:12px;font-weight:600}
.active{background:#d7f5df;color:#116329}.draining{background:#fff1c7;color:#7a5300}
.drained{background:#e3e8ff;color:#2e3d99}.pruned{background:#eceef2;color:#56607a}
.failed,.drifted{background:#ffdede;color:#9b1c1c}.canary{background:#ffe3c2;color:#8a3b00}
code{font-size:12px;background:#f1f3f6;padding:0 .25rem;border-radius:3px}
button{font:inherit;cursor:pointer} form{display:inline} .muted{color:#6b7488}
.flash{background:#fffbe6;border:1px solid #f0d98a;padding:.5rem .8rem;border-radius:6px;margin-bottom:1rem}
ol.steps{margin:.2rem 0;padding-left:1.3rem} .actions{margin:0 0 .5rem}
time{white-space:nowrap}
`;

const SCRIPT = `
document.addEventListener("submit", (event) => {
  const form = event.target;
  for (const key of ["confirm", "confirmAgain"]) {
    const question = form.dataset[key];
    if (question && !window.confirm(question)) return event.preventDefault();
  }
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (button) navigator.clipboard?.writeText(button.dataset.copy);
});
setInterval(async () => {
  const response = await fetch("fragment", { credentials: "same-origin" }).catch(() => undefined);
  if (response?.ok) document.getElementById("content").innerHTML = await response.text();
}, 2000);
`;

export function page(dashboard: Dashboard, viewer: Viewer): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gridiron deployments</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${raw(STYLE)}</style></head>
<body><header><h1>Gridiron deployments</h1>${account(viewer)}<a href="${dashboard.restateUi}/">Restate UI</a></header>
<main>${viewer.flash ? html`<p class="flash" role="status">${viewer.flash}</p>` : ""}
<div id="content">${content(dashboard, viewer)}</div></main>
<script>${raw(SCRIPT)}</script></body></html>`;
}

/** What the page polls: everything below the header. */
export function content(dashboard: Dashboard, viewer: Viewer): Html {
  if (dashboard.bundles.length === 0 && dashboard.inFlight.length === 0) {
    return html`<section><p>No bundles deployed yet. Try <code>npx gridiron deploy demo/greeter</code>.</p></section>`;
  }
  return html`${dashboard.inFlight.length ? inFlight(dashboard) : ""}${dashboard.bundles.map((bundle) => bundleSection(bundle, dashboard, viewer))}`;
}

function account(viewer: Viewer): Html {
  if (viewer.admin) return html`<form method="post" action="logout"><button>Sign out</button></form>`;
  return html`<form method="post" action="login"><input type="password" name="token" placeholder="admin token" aria-label="admin token" required> <button>Sign in</button></form>`;
}

function inFlight(dashboard: Dashboard): Html {
  return html`<section><h2>Running now</h2>${dashboard.inFlight.map(
    (
      call,
    ) => html`<p><strong>${call.handler} ${call.bundle}</strong> <span class="muted">${call.status} since ${when(call.since, dashboard.now)}</span>
      <a href="${dashboard.restateUi}/invocations/${call.id}">${call.id}</a></p>
      <ol class="steps">${call.steps.map(stepItem)}</ol>`,
  )}</section>`;
}

function stepItem(step: Step): Html {
  const state = step.failed ? "failed" : step.endedAt ? duration(step) : "running…";
  return html`<li>${step.label} <span class="muted">${state}</span></li>`;
}

/** Replaced builds that are done (pruned or failed) shown in full; older ones are only counted. */
export const DONE_SHOWN = 3;

/** A build that nothing runs on and nothing will: pruned, or failed before it served. */
const isDone = (build: BuildView) => build.state === "pruned" || build.state === "failed";
/** When the build last changed state. */
const lastChange = (build: BuildView) => Object.values(build.times).sort().at(-1) ?? "";

function bundleSection(bundle: StatusView, dashboard: Dashboard, viewer: Viewer): Html {
  const active = bundle.builds.find((b) => b.buildId === bundle.active);
  const drained = bundle.builds.filter((b) => b.state === "drained");
  const paused = bundle.builds.reduce((n, b) => n + b.paused, 0);
  // The builds that matter now, then the few latest done ones: the page stays short however many came before.
  const live = bundle.builds.filter((b) => !isDone(b));
  const done = bundle.builds.filter(isDone).sort((a, b) => lastChange(b).localeCompare(lastChange(a)));
  const folded = done.length - DONE_SHOWN;
  const columns = viewer.admin ? 7 : 6;
  return html`<section data-bundle="${bundle.name}"><h2>${bundle.name}
    ${active ? html`<span class="badge ${active.state}">${active.version} ${active.state}</span>` : html`<span class="badge pruned">no active build</span>`}</h2>
    ${bundle.rollout ? rolloutLine(bundle.name, bundle.rollout, viewer) : ""}
    ${viewer.admin ? bundleActions(bundle, drained, paused) : ""}
    <table><thead><tr><th>version</th><th>build</th><th>state</th><th>since</th><th>invocations</th><th>message / source</th>${viewer.admin ? html`<th></th>` : ""}</tr></thead>
    <tbody>${[...live, ...done.slice(0, DONE_SHOWN)].map((build) => buildRow(bundle.name, build, dashboard, viewer))}
    ${folded > 0 ? html`<tr class="folded"><td colspan="${columns}" class="muted">${folded} more pruned or failed build${folded === 1 ? "" : "s"}: <code>npx gridiron builds ${bundle.name}</code></td></tr>` : ""}</tbody></table></section>`;
}

/** The rollout in progress: each build's share of new calls, the next automatic step, promote and abort. */
function rolloutLine(name: string, rollout: RolloutView, viewer: Viewer): Html {
  const next = rollout.auto
    ? `next: ${rollout.auto.next.percent === "promote" ? "promote" : `${rollout.auto.next.percent}%`} at ${rollout.auto.next.at}${rollout.auto.waiting ? ` (waiting: ${rollout.auto.waiting})` : ""}`
    : "promoted or aborted by hand";
  const older = rollout.splits.filter((s) => s.state !== "active");
  return html`<div class="actions" data-rollout="${rollout.percent}"><span class="badge canary">rollout</span>
    canary <code>${rollout.canary}</code> takes <strong>${rollout.percent}%</strong> of new calls,
    <code>${rollout.stable}</code> ${100 - rollout.percent}%, since ${rollout.stepAt}; <span class="muted">${next}</span>
    ${older.map((s) => html`<br><span class="muted">${s.percent}% split ${s.state}, ${s.pinned} pinned</span>`)}
    ${
      viewer.admin
        ? html`<br>${action("promote", { bundle: name }, "Promote", `Make ${rollout.canary} the active build of ${name}? It takes every new call.`)}
    ${action("abort", { bundle: name }, "Abort", `Abort the rollout of ${name}? ${rollout.stable} takes every new call again; calls running on the canary finish there.`)}`
        : ""
    }</div>`;
}

function bundleActions(bundle: StatusView, drained: BuildView[], paused: number): Html {
  const name = bundle.name;
  const list = drained.map((b) => `${b.version} (${b.buildId})`).join(", ");
  // Offered by the deployer's own rule: only where a build to go back to exists.
  return html`<div class="actions">
    ${bundle.rollout || !bundle.builds.some(canRollBackTo) ? "" : action("rollback", { bundle: name }, "Roll back", `Roll ${name} back? New calls go to its previous build; calls running now finish where they are.`)}
    ${drained.length ? action("prune", { bundle: name }, `Prune ${drained.length} drained`, `Prune these drained builds of ${name}: ${list}? They are unregistered from Restate; their files stay for rollback while kept.`) : ""}
    ${paused ? action("resume", { bundle: name }, `Resume ${paused} paused`, `Move the ${paused} invocation(s) paused on replaced builds of ${name} to its active build?`) : ""}
  </div>`;
}

function buildRow(name: string, build: BuildView, dashboard: Dashboard, viewer: Viewer): Html {
  const ids = build.deploymentId ? (dashboard.pinned[build.deploymentId] ?? []) : [];
  return html`<tr data-build="${build.buildId}"><td>${build.version}</td>
    <td><code>${build.buildId}</code> <button type="button" data-copy="${build.buildId}" title="copy">copy</button>
      ${build.deploymentId ? html`<br><code>${build.deploymentId}</code> <button type="button" data-copy="${build.deploymentId}" title="copy">copy</button>` : ""}</td>
    <td><span class="badge ${build.state}">${build.state}</span>${build.cell === undefined ? "" : html`<br><span class="muted">cell ${build.cell}</span>`}${build.drift ? html`<br><span class="muted">${build.drift.join("; ")}</span>` : ""}${build.refused ? html`<br><span class="badge failed">refused</span> <span class="muted">${build.refused}</span>` : ""}</td>
    <td>${timeline(build, dashboard)}</td>
    <td>${build.pinned} pinned, ${build.paused} paused${ids.map((id) => html`<br><a href="${dashboard.restateUi}/invocations/${id}">${id}</a>`)}${rates(dashboard.outcomes.find((o) => o.bundle === name && o.build === build.buildId))}${viewer.admin ? html`<br><a href="builds/${name}/${build.buildId}/lines">lines</a> · <a href="builds/${name}/${build.buildId}/lines?status=error">errors</a>` : ""}</td>
    <td>${build.error ? html`<strong>${build.error}</strong>` : (build.message ?? "")}${build.source ? html`<br><span class="muted">${build.source}</span>` : ""}${envLine(build)}</td>
    ${viewer.admin ? html`<td>${buildActions(name, build)}</td>` : ""}</tr>`;
}

/** A build's calls on this node in the last minute, and how many of them failed. */
function rates(outcomes: BuildOutcomes | undefined): Html | string {
  if (!outcomes) return "";
  const { ok, error, exception, killed } = outcomes.lastMinute;
  const failed = error + exception + killed;
  return html`<br><span class="calls" data-calls="${ok + failed}" data-errors="${failed}">${ok + failed} calls/min, ${failed} errors/min</span>`;
}

/** A build's recent lines: each invocation id filters to its lines, and opens it in Restate's UI. */
export function linesPage(view: {
  bundle: string;
  build: string;
  lines: LogRecord[];
  filter: Pick<LogFilter, "invocation" | "status">;
  restateUi: string;
}): Html {
  const { bundle, build, lines, filter, restateUi } = view;
  const title = `${bundle} ${build}${filter.invocation ? ` ${filter.invocation}` : ""}${filter.status ? ` (${filter.status})` : ""}`;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lines of ${title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${raw(STYLE)}</style></head>
<body><header><h1>Lines of ${title}</h1><a href="/">Deployments</a></header><main><section>
<p class="muted">The newest ${lines.length} lines this node kept, oldest first. <a href="lines">all</a> · <a href="lines?status=error">errors</a>${filter.invocation ? html` · <a href="${restateUi}/invocations/${filter.invocation}">${filter.invocation} in Restate's UI</a>` : ""}</p>
<table><thead><tr><th>time</th><th>call</th><th>invocation</th><th>level</th><th>line</th></tr></thead><tbody>
${lines.map(
  (
    line,
  ) => html`<tr class="${line.outcome === "ok" ? "" : "failed"}"><td>${new Date(line.time).toISOString()}</td><td>${line.target ?? "-"}</td>
  <td>${line.invocationId ? html`<a href="lines?invocation=${line.invocationId}">${line.invocationId}</a> <a href="${restateUi}/invocations/${line.invocationId}" title="in Restate's UI">↗</a>` : "-"}</td>
  <td>${line.level}</td><td><pre style="margin:0;white-space:pre-wrap">${line.text}</pre></td></tr>`,
)}</tbody></table></section></main></body></html>`;
}

/** The names in the build's env: its vars, and its secrets with their revisions, never a value. */
function envLine(build: BuildView): Html | string {
  const vars = Object.keys(build.vars ?? {});
  const secrets = Object.entries(build.secrets ?? {}).map(([name, revision]) => `${name}@${revision}`);
  if (!vars.length && !secrets.length) return "";
  const parts = [vars.length ? `vars: ${vars.join(", ")}` : "", secrets.length ? `secrets: ${secrets.join(", ")}` : ""];
  return html`<br><span class="muted">${parts.filter(Boolean).join("; ")}</span>`;
}

/** When the build entered each state, and for a replaced build what the drain check waits for. */
function timeline(build: BuildView, dashboard: Dashboard): Html {
  const entries = Object.entries(build.times).sort(([, a], [, b]) => (a ?? "").localeCompare(b ?? ""));
  const drainedAt = build.times.drained ? Date.parse(build.times.drained) : undefined;
  const graceLeft = drainedAt === undefined ? 0 : Math.max(0, drainedAt + dashboard.graceMs - dashboard.now);
  const checked = build.lastDrainCheck ? `; last checked ${relativeTime(build.lastDrainCheck, dashboard.now)}` : "";
  const note =
    build.state === "draining"
      ? `checked every ${dashboard.pollMs / 1000} s until nothing runs on it${checked}`
      : build.state === "drained"
        ? `pruned in about ${Math.ceil(graceLeft / 1000)} s unless it gets work again${checked}`
        : "";
  return html`${entries.map(([state, at]) => html`${state} ${when(at, dashboard.now)}<br>`)}${note ? html`<span class="muted">${note}</span>` : ""}`;
}

/** A time as people read it, "3 min. ago", the exact time on hover. */
function when(iso: string | undefined, now: number): Html | string {
  if (!iso) return "";
  return html`<time datetime="${iso}" title="${iso}">${relativeTime(iso, now)}</time>`;
}

function buildActions(name: string, build: BuildView): Html {
  const rollback = canRollBackTo(build)
    ? action(
        "rollback",
        { bundle: name, buildId: build.buildId },
        "Roll back to this",
        `Make ${build.version} (${build.buildId}) receive all new calls of ${name}?`,
      )
    : "";
  const unprunable: BuildView["state"][] = ["active", "drifted", "pruned", "canary"];
  if (unprunable.includes(build.state)) return html`${rollback}`;
  const prune =
    build.state === "drained"
      ? action(
          "prune",
          { bundle: name, buildId: build.buildId },
          "Prune",
          `Prune ${build.version} (${build.buildId}) of ${name}?`,
        )
      : action(
          "prune",
          { bundle: name, buildId: build.buildId, force: "true" },
          "Force prune",
          `Prune ${build.version} (${build.buildId}) of ${name} although it is ${build.state}?`,
          `${build.pinned} invocation(s) still pinned to it will fail. Prune it anyway?`,
        );
  return html`${rollback} ${prune}`;
}

function action(
  name: string,
  fields: Record<string, string>,
  label: string,
  confirm: string,
  confirmAgain?: string,
): Html {
  return html`<form method="post" action="actions/${name}" data-confirm="${confirm}"${confirmAgain ? html` data-confirm-again="${confirmAgain}"` : ""}>
    ${Object.entries(fields).map(([key, value]) => html`<input type="hidden" name="${key}" value="${value}">`)}<button>${label}</button></form>`;
}
