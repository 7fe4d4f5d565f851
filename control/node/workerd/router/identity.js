// @ts-check
// Only requests restate-server signed reach a build. Restate's request
// identity v1 is an EdDSA JWT in `x-restate-jwt-v1` whose audience is the request path below the
// deployment's base (/discover, /invoke/...), valid for a minute either side of now; the Restate
// SDKs check the same. RESTATE_IDENTITY_KEY holds the public key's raw bytes in base64url.

import { base64urlBytes } from "./base64url.js";

/** @import { Env } from "./types.ts" */

/** @param {string} part */
const json = (part) => JSON.parse(new TextDecoder().decode(base64urlBytes(part)));

/** @type {Promise<CryptoKey> | undefined} */
let publicKey;

// Restate signs a token per path and second (no nonce; Ed25519 is deterministic), so under load
// most requests repeat a token already verified. Its claims are kept, not the verdict: audience
// and time are still checked on every request. Plain data only, as workerd requires across requests.
const MAX_VERIFIED = 1024;
/** @typedef {{ aud: string, nbf: number, exp: number }} Claims */
/** @type {Map<string, Claims>} token -> its claims, for tokens whose signature verified. */
const verified = new Map();

/**
 * @param {string} token
 * @param {Pick<Env, "RESTATE_IDENTITY_KEY">} env
 * @returns {Promise<Claims>}
 */
async function verifiedClaims(token, env) {
  const known = verified.get(token);
  if (known) return known;
  const [header = "", claims = "", signature = ""] = token.split(".");
  if (json(header).alg !== "EdDSA") throw new Problem("the request JWT is not EdDSA-signed");
  publicKey ??= crypto.subtle.importKey("raw", base64urlBytes(env.RESTATE_IDENTITY_KEY), { name: "Ed25519" }, false, [
    "verify",
  ]);
  const signed = new TextEncoder().encode(`${header}.${claims}`);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, await publicKey, base64urlBytes(signature), signed))) {
    throw new Problem("the request JWT is not signed by this mesh's Restate");
  }
  const { aud, nbf, exp } = json(claims);
  if (verified.size >= MAX_VERIFIED) forgetExpired();
  verified.set(token, { aud, nbf, exp });
  return { aud, nbf, exp };
}

function forgetExpired() {
  const now = Date.now() / 1000;
  for (const [token, { exp }] of verified) if (!(now <= exp)) verified.delete(token);
  if (verified.size >= MAX_VERIFIED) verified.clear();
}

class Problem extends Error {}

/**
 * Why `request`, to the deployment at path `base`, is not signed by Restate; undefined if it is.
 * @param {Request} request
 * @param {Pick<Env, "RESTATE_IDENTITY_KEY">} env
 * @param {string} base
 * @param {string} pathname the request's, if the caller has parsed its URL already
 * @returns {Promise<string | undefined>}
 */
export async function identityProblem(request, env, base, pathname = new URL(request.url).pathname) {
  if (request.headers.get("x-restate-signature-scheme") !== "v1") return "no Restate request signature (scheme v1)";
  const token = request.headers.get("x-restate-jwt-v1") ?? "";
  if (token.split(".").length !== 3) return "the x-restate-jwt-v1 header is not a JWT";
  try {
    const { aud, nbf, exp } = await verifiedClaims(token, env);
    const now = Date.now() / 1000;
    if (`${base}${aud}` !== pathname) return "the request JWT was signed for another path";
    if (!(nbf <= now && now <= exp)) return "the request JWT has expired or is not valid yet";
  } catch (error) {
    return error instanceof Problem ? error.message : "the request JWT cannot be read";
  }
  return undefined;
}

/** @param {string} problem */
export function refuse(problem) {
  return new Response(`${problem}: calls to workerd must be signed with this mesh's Restate request identity key\n`, {
    status: 401,
  });
}
