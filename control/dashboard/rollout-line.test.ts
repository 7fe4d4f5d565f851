import { expect, test } from "vitest";
import type { StatusView } from "../domain/lifecycle.ts";
import type { Dashboard } from "./data.ts";
import { content } from "./page.ts";

const build = (version: string, state: "active" | "canary") => ({
  version,
  buildId: `${version}-a`,
  deploymentId: state === "active" ? "dp_a" : null,
  uri: "",
  services: ["counter"],
  state,
  times: { [state]: "2026-12-05T04:00:00.000Z" },
  filesKept: true,
  pinned: 0,
  paused: 0,
});

const bundle: StatusView = {
  name: "counter",
  active: "1.0.0-a",
  builds: [build("1.0.0", "active"), build("2.0.0", "canary")],
  rollout: {
    stable: "1.0.0-a",
    canary: "2.0.0-a",
    percent: 10,
    split: "split~1.0.0-a~2.0.0-a~10",
    startedAt: "2026-12-05T04:00:00.000Z",
    stepAt: "2026-12-05T04:00:00.000Z",
    deploymentId: "dp_s",
    splits: [{ segment: "split~1.0.0-a~2.0.0-a~10", percent: 10, state: "active", deploymentId: "dp_s", pinned: 0 }],
  },
};
const dashboard: Dashboard = {
  bundles: [bundle],
  pinned: {},
  inFlight: [],
  now: 0,
  graceMs: 1000,
  pollMs: 1000,
  restateUi: "http://admin/ui",
  outcomes: [],
};

test("a rollout shows each build's share, and to an admin promote and abort instead of rollback", async () => {
  const admin = (await content(dashboard, { admin: true })).toString();
  expect(admin).toContain('data-rollout="10"');
  expect(admin).toMatch(
    /canary <code>2\.0\.0-a<\/code> takes <strong>10%<\/strong> of new calls,\s+<code>1\.0\.0-a<\/code> 90%/,
  );
  expect(admin).toContain('action="actions/promote"');
  expect(admin).toContain('action="actions/abort"');
  expect(admin).not.toContain('action="actions/rollback"');
  // A canary cannot be pruned while it takes calls.
  expect(admin).not.toContain('action="actions/prune"');

  const reader = (await content(dashboard, { admin: false })).toString();
  expect(reader).toContain("takes <strong>10%</strong>");
  expect(reader).not.toContain("<form");
});
