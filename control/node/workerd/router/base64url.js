// @ts-check
// Restate's request identity keys and tokens, and sealed secrets' JWE parts, are base64url
// without padding; workerd's runtime decodes only plain base64 (atob).

/**
 * @param {string} text base64url, no padding
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function base64urlBytes(text) {
  return Uint8Array.from(atob(text.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0));
}
