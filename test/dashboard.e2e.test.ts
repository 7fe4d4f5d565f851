import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { StatusView } from "../control/domain/lifecycle.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { eventually, useTestMesh } from "./mesh.ts";

/** Debian's chromium, installed by .ci/run like runit; the test is skipped where it is missing. */
const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = resolve(import.meta.dirname, "../docs/dashboard.png");

describe.skipIf(!existsSync(CHROMIUM))("the deployments dashboard, in headless Chromium", () => {
  const fx = useTestMesh({
    greeterV1: ["greeter"],
    greeterV2: ["greeter", { GREETING: '"Howdy"' }],
    counterV1: ["counter"],
    counterV2: ["counter", { STEP: "10" }],
  });
  let browser: Browser;
  let page: Page;
  const dashboard = () => `http://127.0.0.1:${fx.mesh.settings.ports.ops}/`;
  const activate = (name: string, source: string | undefined, version: string) =>
    fx.ingress.call<ActivateResult>(`deployer/${name}/activate`, { source, version });
  const states = (bundle: string) =>
    page
      .locator(`[data-bundle="${bundle}"] tr[data-build]`)
      .evaluateAll((rows) =>
        rows.map((row) => [row.children[0]?.textContent?.trim(), row.querySelector(".badge")?.textContent?.trim()]),
      );

  beforeAll(async () => {
    // What `just deploy-demo` and a second greeter build leave behind.
    await activate("greeter", fx.sources.greeterV1, "1.0.0");
    await activate("counter", fx.sources.counterV1, "1.0.0");
    await activate("greeter", fx.sources.greeterV2, "2.0.0");
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("dialog", (dialog) => void dialog.accept());
  }, 120_000);
  afterAll(async () => browser?.close());

  test("lists both bundles and both greeter builds with their states; the screenshot in docs/ is this page", async () => {
    await page.goto(dashboard());
    expect(await states("greeter")).toEqual([
      ["1.0.0", "draining"],
      ["2.0.0", "active"],
    ]);
    expect(await states("counter")).toEqual([["1.0.0", "active"]]);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  test("an action without the admin token is refused and changes nothing", async () => {
    await page.goto(dashboard());
    expect(await page.locator('form[action="actions/rollback"]').count()).toBe(0);
    const status = await page.evaluate(async () => {
      const response = await fetch("actions/rollback", {
        method: "POST",
        body: new URLSearchParams({ bundle: "greeter" }),
      });
      return response.status;
    });
    expect(status).toBe(401);
    expect(await fx.ingress.call<StatusView>("deployer/greeter/status")).toMatchObject({
      active: expect.stringMatching(/^2\.0\.0-/),
    });
    expect(await fx.ingress.call("greeter/greet", "page")).toMatch(/^Howdy, page! /);
  });

  test("signed in, a rollback through the page makes new calls return the first build's greeting", async () => {
    await page.goto(dashboard());
    await page.fill('input[name="token"]', "not the token");
    await page.click("text=Sign in");
    await expect.poll(() => page.locator(".flash").textContent()).toBe("that is not the admin token");
    await page.goto(dashboard());
    await page.fill('input[name="token"]', fx.ingress.token as string);
    await page.click("text=Sign in");
    await expect.poll(() => page.locator(".flash").textContent()).toBe("signed in: actions are available");
    await page.locator('[data-bundle="greeter"] .actions form[action="actions/rollback"] button').click();
    await expect.poll(() => page.locator(".flash").textContent()).toMatch(/^rolled greeter back to 1\.0\.0 /);
    expect(await fx.ingress.call("greeter/greet", "page")).toMatch(/^Hello, page! /);
    expect(await states("greeter")).toEqual([
      ["2.0.0", "draining"],
      ["1.0.0", "active"],
    ]);
  });

  test("the page follows a deploy without a reload", async () => {
    await page.goto(dashboard());
    expect(await states("counter")).toEqual([["1.0.0", "active"]]);
    await activate("counter", fx.sources.counterV2, "2.0.0");
    await eventually(async () =>
      expect(await states("counter")).toEqual([
        ["1.0.0", "draining"],
        ["2.0.0", "active"],
      ]),
    );
  });
});
