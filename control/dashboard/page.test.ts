import { describe, expect, test } from "vitest";
import type { BuildView, StatusView } from "../domain/lifecycle.ts";
import type { Dashboard } from "./data.ts";
import { content, DONE_SHOWN, page } from "./page.ts";
import { relativeTime } from "./relative-time.ts";

const NOW = Date.parse("2026-12-05T12:00:00.000Z");
const minutesAgo = (m: number) => new Date(NOW - m * 60_000).toISOString();

function build(n: number, state: BuildView["state"], filesKept = true): BuildView {
  return {
    version: `1.0.${n}`,
    buildId: `1.0.${n}-${String(n).padStart(12, "0")}`,
    deploymentId: state === "failed" ? null : `dp_${n}`,
    uri: "",
    services: ["greeter"],
    state,
    times: { active: minutesAgo(100 - n), ...(state === "pruned" ? { pruned: minutesAgo(99 - n) } : {}) },
    filesKept,
    pinned: 0,
    paused: 0,
  };
}

function dashboardOf(builds: BuildView[]): Dashboard {
  const bundle: StatusView = {
    name: "greeter",
    active: builds.find((b) => b.state === "active")?.buildId ?? null,
    builds,
  };
  return {
    bundles: [bundle],
    pinned: {},
    inFlight: [],
    now: NOW,
    graceMs: 60_000,
    pollMs: 30_000,
    restateUi: "http://admin.test/ui",
    outcomes: [],
  };
}

async function render(builds: BuildView[], admin = true): Promise<string> {
  return (await content(dashboardOf(builds), { admin })).toString();
}

const rows = (page: string) => [...page.matchAll(/<tr data-build="([^"]+)"/g)].map((m) => m[1]);

describe("the dashboard", () => {
  test("folds replaced builds: every live one, the latest done ones, then how many more", async () => {
    const pruned = Array.from({ length: 40 }, (_, i) => build(i, "pruned"));
    const shown = await render([...pruned, build(40, "draining"), build(41, "active")]);
    const latest = pruned
      .slice(-DONE_SHOWN)
      .reverse()
      .map((b) => b.buildId);
    expect(rows(shown)).toEqual(["1.0.40-000000000040", "1.0.41-000000000041", ...latest]);
    expect(shown).toMatch(`${40 - DONE_SHOWN} more pruned or failed builds: <code>npx gridiron builds greeter</code>`);
  });

  test("shows no folding line when the done builds all fit", async () => {
    const shown = await render([build(1, "pruned"), build(2, "active")]);
    expect(rows(shown)).toHaveLength(2);
    expect(shown).not.toMatch(/more pruned or failed/);
  });

  test("offers no rollback where there is nothing to roll back to, by lifecycle's rule", async () => {
    const alone = await render([build(1, "active")]);
    expect(alone).not.toMatch(/Roll back/);
    // A build whose files are gone, and a failed one, are no rollback targets either.
    const nothing = await render([build(1, "pruned", false), build(2, "failed", false), build(3, "active")]);
    expect(nothing).not.toMatch(/Roll back/);
    const one = await render([build(1, "draining"), build(2, "active")]);
    expect(one).toMatch(/>Roll back<\/button>/);
    expect(one).toMatch(/>Roll back to this<\/button>/);
  });

  test("marks a build the routers refuse, saying why, escaped", async () => {
    const refused = { ...build(1, "active"), refused: "bundle greeter hung this cell <alone>" };
    const shown = await render([refused]);
    expect(shown).toContain(
      '<span class="badge failed">refused</span> <span class="muted">bundle greeter hung this cell &lt;alone&gt;</span>',
    );
    expect(await render([build(1, "active")])).not.toMatch(/refused/);
  });

  test("tells times relative to now, the exact time on hover, unwrapped", async () => {
    const shown = await render([build(97, "active")]);
    expect(shown).toMatch(`active <time datetime="${minutesAgo(3)}" title="${minutesAgo(3)}">3 min. ago</time>`);
    const whole = (await page(dashboardOf([build(97, "active")]), { admin: false })).toString();
    expect(whole).toContain("time{white-space:nowrap}");
  });
});

test("relativeTime picks the largest unit that fits", () => {
  const at = (ms: number) => new Date(NOW + ms).toISOString();
  expect(relativeTime(at(-2_000), NOW)).toBe("just now");
  expect(relativeTime(at(-30_000), NOW)).toBe("30 sec. ago");
  expect(relativeTime(at(-3 * 3_600_000), NOW)).toBe("3 hr. ago");
  expect(relativeTime(at(-2 * 86_400_000), NOW)).toBe("2 days ago");
  expect(relativeTime(at(40_000), NOW)).toBe("in 40 sec.");
  expect(relativeTime("not a time", NOW)).toBe("not a time");
});
