import { readdir } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, test } from "vitest";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { deployerExits, eventually, isAlive, killDeployer, proofLeftovers, proofsOf, useTestMesh } from "./mesh.ts";

/** A build whose discovery answer sends its headers, then one byte a second (see its index.js). */
const TRICKLE = pathToFileURL(resolve(import.meta.dirname, "fixtures/trickle")).href;
/** A build that fails to load once its console is patched, as attribution does (see its index.js). */
const OWN_CONSOLE = pathToFileURL(resolve(import.meta.dirname, "fixtures/own-console")).href;
/** The proof's deadline for discovery (loadTimeoutMs at the default hang limit). */
const DISCOVERY_DEADLINE = /did not answer Restate discovery at \S+ within 5 s \(HTTP 200 came, but not its whole body/;

/**
 * A build that slows the proof down cannot hold an activation, nor leave the proof's workerd or
 * dir behind: not when its deadline passes, and not when the deployer dies mid-proof.
 */
describe("proof deadlines", () => {
  const fx = useTestMesh({ greeter: ["greeter"] });
  const activate = (name: string, source: string | undefined) =>
    fx.ingress.call<ActivateResult>(`deployer/${name}/activate`, { source, version: "1.0.0" });
  const status = (name: string) => fx.ingress.call<{ builds: { state: string }[] }>(`deployer/${name}/status`);

  /** The PIDs of the workerds serving a proof of this mesh, the spare too (by command line, with ps). */
  const proofProcesses = async () => (await proofsOf(fx.mesh)).workerds.map(({ pid }) => pid);

  /** Everything a refused activation must leave as it was. */
  const snapshot = async () => ({
    greeter: await status("greeter"),
    deployments: await fx.admin.query("SELECT id, endpoint FROM sys_deployment ORDER BY id"),
    services: await fx.admin.query("SELECT name, deployment_id FROM sys_service ORDER BY name"),
    bundles: (await readdir(fx.mesh.settings.bundlesDir)).sort(),
    greeting: await fx.ingress.call("greeter/greet", "still"),
  });

  /** A refused trickle activation: a 400 naming the discovery deadline, and nothing of it left. */
  const expectRefusedAndGone = async (refusal: unknown, before: Awaited<ReturnType<typeof snapshot>>) => {
    expect(refusal).toMatchObject({ status: 400, message: expect.stringMatching(DISCOVERY_DEADLINE) });
    expect(await proofLeftovers(fx.mesh)).toEqual({ workerds: [], dirs: [] });
    expect(await snapshot()).toEqual(before);
    expect(new Set((await status("trickle")).builds.map((b) => b.state))).toEqual(new Set(["failed"]));
  };

  test("a build that trickles its discovery answer fails its activation in bounded time and leaves nothing", async () => {
    await activate("greeter", fx.sources.greeter);
    const before = await snapshot();
    const started = Date.now();
    const refusal = await activate("trickle", TRICKLE).catch((error: unknown) => error);
    const elapsed = Date.now() - started;
    console.info(`[proof deadlines] trickling discovery refused after ${elapsed} ms`);
    // A bound on a hang, not a speed claim: the build would trickle for ten minutes.
    expect(elapsed).toBeLessThan(30_000);
    await expectRefusedAndGone(refusal, before);
  }, 60_000);

  test("a deployer killed mid-proof leaves no proof workerd or dir once it is back", async () => {
    const before = await snapshot();
    const exits = deployerExits(fx.mesh);
    const attempt = activate("trickle", TRICKLE).catch((error: unknown) => error);
    // The proof's workerd gets SIGKILL when the thread that started it ends (proof.ts); its dir is
    // left for the sweep.
    let orphans: number[] = [];
    // Mid-proof: its workerd serves the build (not the spare, which waits for the next proof).
    await eventually(async () => {
      orphans = (await proofLeftovers(fx.mesh)).workerds;
      expect(orphans).not.toEqual([]);
    });
    await killDeployer(fx.mesh);
    const killedAt = Date.now();
    await eventually(async () => {
      expect(orphans.filter(isAlive)).toEqual([]);
    });
    console.info(`[proof deadlines] orphan proof workerd gone ${Date.now() - killedAt} ms after the deployer's kill`);
    // Gone before the deployer is back: its sweep, once it starts, finds only the dir to remove.
    await eventually(async () => {
      expect(deployerExits(fx.mesh)).toBe(exits + 1);
      expect(fx.mesh.output.join("\n")).toMatch(/killed 0 leftover proof workerd\(s\), removed 1 proof dir\(s\)/);
    });
    // Restate retries the proof on the new deployer, which refuses the build as before.
    await expectRefusedAndGone(await attempt, before);
  }, 90_000);

  test("a build is proved as the live workerd loads it: one that fails only behind attribution is refused", async () => {
    const before = await snapshot();
    const refusal = await activate("own-console", OWN_CONSOLE).catch((error: unknown) => error);
    expect(refusal).toMatchObject({ status: 400, message: expect.stringContaining("needs the runtime's own console") });
    expect(await proofLeftovers(fx.mesh)).toEqual({ workerds: [], dirs: [] });
    expect(await snapshot()).toEqual(before);
    expect(await fx.admin.query("SELECT name FROM sys_service WHERE name = 'ownConsole'")).toEqual([]);
  }, 60_000);

  // Last: it stops this describe's mesh.
  test("a mesh stopped mid-proof leaves no proof workerd running", async () => {
    void fx.ingress.send("deployer/trickle/activate", { source: TRICKLE, version: "1.0.0" });
    let proofs: number[] = [];
    await eventually(async () => {
      proofs = (await proofLeftovers(fx.mesh)).workerds;
      expect(proofs).not.toEqual([]);
    });
    // The mesh's stop kills whatever of the mesh outlived it, and says so: the proof must not be.
    expect(await fx.mesh.stop()).toEqual([]);
    expect(await proofProcesses()).toEqual([]);
  }, 60_000);
});
