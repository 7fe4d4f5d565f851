import { createHash } from "node:crypto";
import { CompactEncrypt, decodeProtectedHeader, importJWK } from "jose";
import { z } from "zod";
import { ENV_NAME, MAX_VARS_BYTES, type SealedSecret, type Vars } from "./bundle.ts";
import type { BuildRecord } from "./lifecycle.ts";

/**
 * Bundles' secrets, sealed before they enter Restate: a JWE (RFC 7516) in compact serialization,
 * the content key wrapped with RSA-OAEP-256 to the mesh's secrets key and the value encrypted
 * with A256GCM. The protected header also names the bundle and the secret, so a sealed value
 * copied to another bundle or name does not open there (workerd's router checks, router/secrets.js).
 * Only the router holds the private key; everything else handles ciphertext.
 */

const SEAL_ALG = "RSA-OAEP-256";
const SEAL_ENC = "A256GCM";

/** The mesh's public key for sealing, as `deployer/{name}/secretsKey` gives it. */
export const SecretsKey = z.object({
  kid: z.string().min(1),
  jwk: z.object({ kty: z.literal("RSA"), n: z.string().min(1), e: z.string().min(1) }),
});
export type SecretsKey = z.infer<typeof SecretsKey>;

/** The public parts of an RSA JWK, all that sealing needs and all its thumbprint covers. */
export function sealingJwk(jwk: { kty?: string; n?: string; e?: string }): SecretsKey["jwk"] {
  return SecretsKey.shape.jwk.parse({ kty: jwk.kty, n: jwk.n, e: jwk.e });
}

const NAME_RULE = "a letter or _ then up to 127 letters, digits or _, like an env var";
export const SecretName = z.string().regex(ENV_NAME, `a secret name is ${NAME_RULE}`);

/** A secret's value may be as large as a build's whole env; sealed, base64url makes that 4/3 and a header. */
const MAX_SEALED_CHARS = Math.ceil((MAX_VARS_BYTES * 4) / 3) + 4096;
const Sealed = z.string().max(MAX_SEALED_CHARS, "a sealed secret is over workerd's 1 MiB limit for a build's env");

/** Seals `value` for secret `name` of `bundle` to the mesh's key (the CLI does this; scripts may too). */
export async function seal(key: SecretsKey, bundle: string, name: string, value: string): Promise<string> {
  const publicKey = await importJWK({ ...key.jwk, alg: SEAL_ALG }, SEAL_ALG);
  return await new CompactEncrypt(new TextEncoder().encode(value))
    .setProtectedHeader({ alg: SEAL_ALG, enc: SEAL_ENC, kid: key.kid, bundle, name })
    .encrypt(publicKey);
}

const SealedHeader = z.object({
  alg: z.literal(SEAL_ALG),
  enc: z.literal(SEAL_ENC),
  kid: z.string(),
  bundle: z.string(),
  name: z.string(),
});

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Why `sealed` is not secret `name` of `bundle` sealed to the key `kid`; undefined if it is. Only
 * the form and the header are checked: nothing outside the router can open it.
 */
export function sealedProblem(sealed: string, bundle: string, name: string, kid: string): string | undefined {
  const parts = sealed.split(".");
  if (parts.length !== 5 || !parts.every((p) => BASE64URL.test(p))) {
    return `${name} is not a sealed secret (a JWE in compact form); seal it with \`gridiron secret put\``;
  }
  let header: z.infer<typeof SealedHeader>;
  try {
    header = SealedHeader.parse(decodeProtectedHeader(sealed));
  } catch {
    return `${name} is not sealed with ${SEAL_ALG} and ${SEAL_ENC} with a bundle and a name in its header`;
  }
  if (header.bundle !== bundle || header.name !== name) {
    return `${name} was sealed as ${JSON.stringify(header.name)} of bundle ${JSON.stringify(header.bundle)}, not as ${name} of ${bundle}`;
  }
  if (header.kid !== kid) return `${name} was sealed to another key (${header.kid}) than the mesh's (${kid})`;
  return undefined;
}

/** The size of a sealed value once opened: AES-GCM's ciphertext is exactly as long as the value. */
export function openedBytes(sealed: string): number {
  const ciphertext = sealed.split(".")[3] ?? "";
  return Math.floor((ciphertext.length * 3) / 4);
}

/** A secret's revision: a short hash of its sealed form (each sealing is new, so each put is another). */
export function revisionOf(sealed: string): string {
  return createHash("sha256").update(sealed).digest("hex").slice(0, 12);
}

/** A secret as the deployer keeps it for its bundle. */
export interface SecretRecord extends SealedSecret {
  setAt: string;
}
export type Secrets = Record<string, SecretRecord>;

export const PutSecretsRequest = z.strictObject({
  secrets: z.record(z.string(), Sealed).superRefine((secrets, ctx) => {
    const names = Object.keys(secrets);
    if (!names.length) ctx.addIssue({ code: "custom", message: "name at least one secret" });
    for (const name of names.filter((n) => !ENV_NAME.test(n))) {
      ctx.addIssue({
        code: "custom",
        message: `${JSON.stringify(name.slice(0, 40))} is not a secret name: ${NAME_RULE}`,
      });
    }
  }),
});
export type PutSecretsRequest = z.infer<typeof PutSecretsRequest>;

export const DeleteSecretsRequest = z.strictObject({ names: z.array(SecretName).min(1).max(1000) });
export type DeleteSecretsRequest = z.infer<typeof DeleteSecretsRequest>;

/** How big a build's env is, as workerd's loader counts it near enough: vars as JSON plus each secret. */
function envBytes(vars: Vars | undefined, secrets: Record<string, SealedSecret>): number {
  const varBytes = vars ? Buffer.byteLength(JSON.stringify(vars)) : 0;
  return Object.entries(secrets).reduce((sum, [name, s]) => sum + name.length + openedBytes(s.sealed) + 6, varBytes);
}

/** Why a build cannot run with these vars and secrets; undefined if it can. */
export function envProblem(vars: Vars | undefined, secrets: Record<string, SealedSecret>): string | undefined {
  const both = Object.keys(secrets).filter((name) => vars && name in vars);
  if (both.length) return `${both.join(", ")} ${both.length > 1 ? "are" : "is"} both a var and a secret; keep one`;
  if (envBytes(vars, secrets) > MAX_VARS_BYTES) {
    return `vars and secrets hold over ${MAX_VARS_BYTES / 1024 / 1024} MiB together, over workerd's limit for a build's env`;
  }
  return undefined;
}

/** The sealed values and revisions a build gets: what `secrets` holds, without when each was set. */
export function sealedOf(secrets: Secrets): Record<string, SealedSecret> {
  return Object.fromEntries(
    Object.entries(secrets).map(([name, { revision, sealed }]) => [name, { revision, sealed }]),
  );
}

/** Each secret's revision; what status shows of a build's secrets. */
export function revisionsOf(secrets: Record<string, SealedSecret>): Record<string, string> {
  return Object.fromEntries(Object.entries(secrets).map(([name, s]) => [name, s.revision]));
}

/**
 * What `secret list` shows: names, revisions, when each was set, whether it is sealed to the
 * mesh's current key (after a rotation, those that are not must be put again), and which build
 * runs with which.
 */
export interface SecretsView {
  name: string;
  secrets: { name: string; revision: string; setAt: string; currentKey: boolean }[];
  builds: { buildId: string; version: string; state: string; secrets: Record<string, string> }[];
}

export function secretsView(bundle: string, secrets: Secrets, records: BuildRecord[], kid: string): SecretsView {
  return {
    name: bundle,
    secrets: Object.entries(secrets)
      .map(([name, { revision, setAt, sealed }]) => ({
        name,
        revision,
        setAt,
        currentKey: decodeProtectedHeader(sealed).kid === kid,
      }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    builds: records
      .filter((r) => r.state !== "pruned" && r.state !== "failed")
      .map((r) => ({
        buildId: r.buildId,
        version: r.version,
        state: r.state,
        secrets: revisionsOf(r.secrets ?? {}),
      })),
  };
}
