import { join, resolve } from "node:path";
import { execa } from "execa";

const ROOT = resolve(import.meta.dirname, "..");

/** "Restate x, workerd y, Node z": the versions a benchmark ran on, for its table's caption. */
export async function versions(): Promise<string> {
  return `Restate ${await version("restate-server")}, workerd ${await version("workerd")}, Node ${process.version}`;
}

async function version(binary: "restate-server" | "workerd"): Promise<string> {
  const { stdout } = await execa(join(ROOT, "node_modules/.bin", binary), ["--version"], { reject: false });
  return stdout.trim().split(" ").pop() ?? "?";
}
