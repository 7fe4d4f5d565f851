import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import bs58 from "bs58";
import { SignJWT } from "jose";
import type { Settings } from "../settings.ts";

/** Where the key is: all these functions need of the settings. */
type KeyPath = Pick<Settings, "identityKeyPath">;

/**
 * Restate request identity (scheme v1): restate-server signs every request it sends to a
 * deployment with an Ed25519 key, as a JWT whose audience is the request path below the deployment's base. Gridiron makes the
 * key on first start (mode 0600 in the data dir) and gives its public half to the deployer's
 * endpoint and to workerd's router, so only Restate can call either.
 */
export async function ensureIdentityKey(settings: KeyPath, log: (line: string) => void = console.log): Promise<void> {
  if (await readFile(settings.identityKeyPath).catch(() => undefined)) return;
  const { privateKey } = generateKeyPairSync("ed25519");
  await mkdir(dirname(settings.identityKeyPath), { recursive: true });
  await writeFile(settings.identityKeyPath, privateKey.export({ format: "pem", type: "pkcs8" }), {
    mode: 0o600,
    flag: "wx",
  });
  log(`[gridiron] generated Restate's request identity key in ${settings.identityKeyPath}`);
}

async function privateKey(settings: KeyPath): Promise<KeyObject> {
  return createPrivateKey(await readFile(settings.identityKeyPath));
}

const rawPublicKey = (key: KeyObject) =>
  Buffer.from(createPublicKey(key).export({ format: "jwk" }).x ?? "", "base64url");
/** As the Restate SDKs take it (`identityKeys`) and restate-server names it (`kid`). */
const restateKeyId = (key: KeyObject) => `publickeyv1_${bs58.encode(rawPublicKey(key))}`;

/** The public key as raw bytes. */
export async function identityPublicKeyBytes(settings: KeyPath): Promise<Buffer> {
  return rawPublicKey(await privateKey(settings));
}

/** The public key as the Restate SDKs take it (`identityKeys`): `publickeyv1_` and base58. */
export async function identityPublicKey(settings: KeyPath): Promise<string> {
  return restateKeyId(await privateKey(settings));
}

/**
 * Headers that sign a request the way restate-server does, for Gridiron's own calls. `path` is
 * below the deployment's base, e.g. `/discover`.
 */
export async function identityHeaders(settings: KeyPath, path: string): Promise<Record<string, string>> {
  const key = await privateKey(settings);
  const now = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT({ aud: path, nbf: now - 60, iat: now, exp: now + 60 })
    .setProtectedHeader({ alg: "EdDSA", typ: "JWT", kid: restateKeyId(key) })
    .sign(key);
  return { "x-restate-signature-scheme": "v1", "x-restate-jwt-v1": jwt };
}
