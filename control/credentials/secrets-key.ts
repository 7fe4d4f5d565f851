import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { calculateJwkThumbprint } from "jose";
import { type SecretsKey, sealingJwk } from "../domain/secrets.ts";
import type { Settings } from "../settings.ts";

/**
 * The key pair bundles' secrets are sealed to: RSA, made on first start (mode 0600, like the admin
 * token), or the file GRIDIRON_SECRETS_KEY_FILE names. Its public half is handed to whoever seals
 * (the CLI, scripts); its private half only to workerd's router, as a binding in its config.
 */
const MODULUS_BITS = 3072;

export async function ensureSecretsKey(
  settings: Pick<Settings, "secretsKeyPath">,
  log: (line: string) => void = console.log,
): Promise<void> {
  if (await readFile(settings.secretsKeyPath).catch(() => undefined)) return;
  await generateSecretsKey(settings.secretsKeyPath);
  log(`[gridiron] generated the key bundles' secrets are sealed to in ${settings.secretsKeyPath}`);
}

/** Writes a new private key to `path` (which must not exist), owner only. */
export async function generateSecretsKey(path: string): Promise<void> {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: MODULUS_BITS });
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600, flag: "wx" });
}

/** A private key, PEM (PKCS #8) as workerd's cryptoKey binding takes it, and its id. */
export interface SecretsPrivateKey {
  pem: string;
  kid: string;
}

/**
 * The keys workerd's router opens secrets with: the current one, and while a rotation is under
 * way the previous one (`{key file}.previous`), so builds sealed to it still load.
 */
export async function secretsPrivateKeys(
  settings: Pick<Settings, "secretsKeyPath" | "secretsPreviousKeyPath">,
): Promise<SecretsPrivateKey[]> {
  const current = await readFile(settings.secretsKeyPath, "utf8");
  const previous = await readFile(settings.secretsPreviousKeyPath, "utf8").catch(() => undefined);
  const keys = [current, ...(previous ? [previous] : [])];
  return await Promise.all(keys.map(async (pem) => ({ pem, kid: (await publicKeyOf(pem)).kid })));
}

/** The current public key and its id, which sealed secrets name as `kid`. */
export async function secretsPublicKey(settings: Pick<Settings, "secretsKeyPath">): Promise<SecretsKey> {
  return await publicKeyOf(await readFile(settings.secretsKeyPath, "utf8"));
}

/** A key's public half, and its id: the JWK thumbprint (RFC 7638). */
async function publicKeyOf(pem: string): Promise<SecretsKey> {
  const jwk = sealingJwk(createPublicKey(createPrivateKey(pem)).export({ format: "jwk" }));
  return { kid: await calculateJwkThumbprint(jwk), jwk };
}
