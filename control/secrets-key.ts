import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { calculateJwkThumbprint } from "jose";
import { type SecretsKey, sealingJwk } from "./secrets.ts";
import type { Settings } from "./settings.ts";

/**
 * The key pair bundles' secrets are sealed to: RSA, made on first start (mode 0600, like the admin
 * token), or the file GRIDIRON_SECRETS_KEY_FILE names. Its public half is handed to whoever seals
 * (the CLI, scripts); its private half only to workerd's router, as a binding in its config.
 */
const MODULUS_BITS = 3072;

export async function ensureSecretsKey(settings: Settings, log: (line: string) => void = console.log): Promise<void> {
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

/** The private key, PEM (PKCS #8), as workerd's cryptoKey binding takes it. */
export async function secretsPrivateKeyPem(settings: Settings): Promise<string> {
  return await readFile(settings.secretsKeyPath, "utf8");
}

/** The public key and its id (the JWK thumbprint, RFC 7638), which sealed secrets name as `kid`. */
export async function secretsPublicKey(settings: Settings): Promise<SecretsKey> {
  const jwk = createPublicKey(createPrivateKey(await secretsPrivateKeyPem(settings))).export({ format: "jwk" });
  const publicJwk = sealingJwk(jwk);
  return { kid: await calculateJwkThumbprint(publicJwk), jwk: publicJwk };
}
