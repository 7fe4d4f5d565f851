// @ts-check
// Opens a build's sealed secrets, here and nowhere else: each is a JWE in compact serialization
// (RFC 7516) that control/domain/secrets.ts describes, RSA-OAEP-256 + A256GCM, decrypted as RFC 7516
// section 5.2 says with WebCrypto: unwrap the content key with the router's private key, then
// AES-GCM over ciphertext and tag, the protected header (as sent, base64url) being the
// additional authenticated data. The header must name this key, this bundle and this secret.

import { base64urlBytes } from "./base64url.js";

/** @import { SealedSecret } from "../../../domain/bundle.ts" */

const ALG = "RSA-OAEP-256";
const ENC = "A256GCM";

/**
 * @param {string} bundle
 * @param {string} name
 * @param {string} sealed
 * @param {Map<string, CryptoKey | undefined>} keys private keys by id, usable to unwrap keys with RSA-OAEP and SHA-256
 */
async function open(bundle, name, sealed, keys) {
  const [header, wrappedKey, iv, ciphertext, tag] = sealed.split(".");
  if (tag === undefined || header === undefined || wrappedKey === undefined || iv === undefined || !ciphertext) {
    throw new Error("it is not a JWE in compact form");
  }
  const fields = JSON.parse(new TextDecoder().decode(base64urlBytes(header)));
  if (fields.alg !== ALG || fields.enc !== ENC) throw new Error(`it is not sealed with ${ALG} and ${ENC}`);
  if (fields.bundle !== bundle || fields.name !== name) throw new Error("it was sealed for another bundle or name");
  const key = keys.get(fields.kid);
  if (!key) throw new Error(`it was sealed to a key this mesh does not have (${fields.kid}); put it again`);
  const contentKey = await crypto.subtle.unwrapKey(
    "raw",
    base64urlBytes(wrappedKey),
    key,
    { name: "RSA-OAEP" },
    { name: "AES-GCM" },
    false,
    ["decrypt"],
  );
  const body = base64urlBytes(ciphertext);
  const mac = base64urlBytes(tag);
  const sealedBody = new Uint8Array(body.length + mac.length);
  sealedBody.set(body);
  sealedBody.set(mac, body.length);
  const value = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: base64urlBytes(iv), additionalData: new TextEncoder().encode(header), tagLength: 128 },
    contentKey,
    sealedBody,
  );
  return new TextDecoder().decode(value);
}

/**
 * A build's secrets, opened: name -> value. Errors name the secret, never its value.
 * @param {string} bundle
 * @param {Record<string, SealedSecret>} secrets
 * @param {Map<string, CryptoKey | undefined>} keys by id: the current key, and the previous one during a rotation
 * @returns {Promise<Record<string, string>>}
 */
export async function openSecrets(bundle, secrets, keys) {
  /** @type {Record<string, string>} */
  const opened = {};
  for (const [name, { sealed }] of Object.entries(secrets)) {
    try {
      opened[name] = await open(bundle, name, sealed, keys);
    } catch (error) {
      // Neither WebCrypto's errors nor these carry the value.
      throw new Error(`cannot open secret ${name} of ${bundle}: ${error instanceof Error ? error.message : error}`);
    }
  }
  return opened;
}
