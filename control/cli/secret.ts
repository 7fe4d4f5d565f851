import { readFile } from "node:fs/promises";
import { text } from "node:stream/consumers";
import { parseEnv } from "node:util";
import { isCancel, password } from "@clack/prompts";
import type { Command } from "commander";
import { z } from "zod";
import { SecretsKey, type SecretsView, seal } from "../domain/secrets.ts";
import type { SecretsChange } from "../objects/deployer/api.ts";
import { confirmOrStop } from "./ask.ts";
import { attachable, type Connection, deployer, requireToken, sendClient } from "./connection.ts";
import { inert } from "./inert.ts";
import { Progress } from "./progress.ts";
import { formatTable } from "./status.ts";
import { watch } from "./watch.ts";

/**
 * `gridiron secret put|list|delete|bulk`, as wrangler's. Values are read from stdin or a hidden
 * prompt, never from the command line (which other users see in `ps` and shells keep), and are
 * sealed here, to the mesh's public key, before they leave: the mesh stores ciphertext only.
 */

/** What a group of subcommands gets from the program: its connection and its way of printing. */
export interface Helpers {
  connect(): Promise<Connection>;
  print(json: unknown, human: () => string): void;
  json(): boolean;
}

const BulkFile = z.record(z.string(), z.string());

export function secretCommands(program: Command, { connect, print, json }: Helpers): void {
  const secret = program.command("secret").description("a bundle's secrets: put, list, delete, bulk");

  /** Seals each value, sends the change, and shows the rollout's steps as deploy does. */
  const put = async (bundle: string, values: Record<string, string>) => {
    const connection = await connect();
    requireToken(connection);
    const key = SecretsKey.parse(await deployer(connection, bundle).secretsKey());
    const sealed: Record<string, string> = {};
    for (const [name, value] of Object.entries(values)) sealed[name] = await seal(key, bundle, name, value);
    const send = await sendClient(connection, bundle).putSecrets({ secrets: sealed }, attachable());
    const change = await watch(connection, send, new Progress(json()));
    print(change, () => changed(change, `put ${Object.keys(values).join(", ")}`));
  };

  secret
    .command("put")
    .description("set a secret of a bundle; the value comes from stdin, or a hidden prompt in a terminal")
    .argument("<name>", "the secret's name, as the handler reads it from env")
    .requiredOption("--bundle <bundle>", "bundle name")
    .action(async (name: string, options: { bundle: string }) => {
      await put(options.bundle, { [name]: await readValue(name) });
    });

  secret
    .command("bulk")
    .description("set several secrets of a bundle from a file: a JSON object of strings, or .env lines")
    .argument("<bundle>", "bundle name")
    .argument("<file>", "a .json or .env file")
    .action(async (bundle: string, file: string) => {
      await put(bundle, parseSecretsFile(file, await readFile(file, "utf8")));
    });

  secret
    .command("list")
    .description("a bundle's secrets (names, revisions, when each was set) and which build runs with which")
    .argument("<bundle>", "bundle name")
    .action(async (bundle: string) => {
      const view = await deployer(await connect(), bundle).secrets();
      print(view, () => listed(view));
    });

  secret
    .command("delete")
    .description("delete secrets of a bundle; the active build goes on without them as a new build")
    .argument("<names...>", "secret names")
    .requiredOption("--bundle <bundle>", "bundle name")
    .option("--yes", "do not ask for confirmation (needed without a terminal)")
    .action(async (names: string[], options: { bundle: string; yes?: boolean }) => {
      const connection = await connect();
      requireToken(connection);
      if (!options.yes) await confirmOrStop(`Delete ${names.join(", ")} of ${options.bundle}?`);
      const send = await sendClient(connection, options.bundle).deleteSecrets({ names }, attachable());
      const change = await watch(connection, send, new Progress(json()));
      print(change, () => changed(change, `deleted ${names.join(", ")}`));
    });
}

/** A piped value loses one trailing newline (what `echo` and most files end with), nothing else. */
async function readValue(name: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const value = (await text(process.stdin)).replace(/\r?\n$/, "");
    if (!value) throw new Error(`no value for ${name} on stdin`);
    return value;
  }
  const value = await password({ message: `Value of ${inert(name)}`, output: process.stderr });
  if (isCancel(value) || !value) throw new Error("cancelled; nothing changed");
  return value;
}

/** A .json file, or one that starts with `{`, is JSON; anything else is read as .env. */
export function parseSecretsFile(file: string, content: string): Record<string, string> {
  if (file.endsWith(".json") || content.trimStart().startsWith("{")) {
    let raw: unknown;
    try {
      raw = JSON.parse(content);
    } catch (error) {
      throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
    }
    const parsed = BulkFile.safeParse(raw);
    if (!parsed.success) throw new Error(`${file} is not an object of strings (name: value)`);
    return parsed.data;
  }
  const values = BulkFile.parse(parseEnv(content));
  if (!Object.keys(values).length) throw new Error(`${file} holds no NAME=value line`);
  return values;
}

function changed(change: SecretsChange, what: string): string {
  const rolled = change.activated
    ? `${change.name} ${change.activated.version} runs with them as build ${change.activated.buildId}; calls in flight finish on the previous build`
    : `${change.name} has no active build: its next deploy runs with them`;
  return `${what}\n${rolled}\n`;
}

function listed(view: SecretsView): string {
  if (!view.secrets.length && !view.builds.some((b) => Object.keys(b.secrets).length)) {
    return `${view.name} has no secrets\n`;
  }
  const secrets = view.secrets.map((s) => ({
    secret: s.name,
    revision: s.revision,
    set: s.setAt,
    key: s.currentKey ? "current" : "previous: put it again",
  }));
  const builds = view.builds.map((b) => ({
    build: b.buildId,
    state: b.state,
    secrets: Object.entries(b.secrets)
      .map(([name, revision]) => `${name}@${revision}`)
      .join(" "),
  }));
  return `${secrets.length ? formatTable(secrets) : "no secrets set\n"}\n${builds.length ? formatTable(builds) : ""}`;
}
