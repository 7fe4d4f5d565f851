import { join, resolve } from "node:path";
import { execa } from "execa";
import type { TestMesh } from "./mesh.ts";

export const ROOT = resolve(import.meta.dirname, "..");
export const CLI = join(ROOT, "control/cli/main.ts");

/**
 * `npx gridiron ARGS` against a test mesh, found the way a user's shell finds it: its settings
 * (read when called, so `mesh` may be filled in by a beforeAll).
 */
export const gridironOf =
  (mesh: () => TestMesh) =>
  (args: string[], env: Record<string, string> = {}) =>
    execa(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      reject: false,
      timeout: 120_000,
      env: {
        GRIDIRON_DATA_DIR: mesh().settings.dataDir,
        GRIDIRON_INGRESS_PORT: String(mesh().settings.ports.ingress),
        GRIDIRON_ADMIN_PORT: String(mesh().settings.ports.admin),
        GRIDIRON_OPS_PORT: String(mesh().settings.ports.ops),
        ...env,
      },
    });
