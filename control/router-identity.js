// Shared by both routers: only requests restate-server signed reach a build. Restate's request
// identity v1 is an EdDSA JWT in `x-restate-jwt-v1` whose audience is the request path below the
// deployment's base (/discover, /invoke/...), valid for a minute either side of now; the Restate
// SDKs check the same. RESTATE_IDENTITY_KEY holds the public key's raw bytes in base64url.

const decode = (base64url) =>
  Uint8Array.from(atob(base64url.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const json = (part) => JSON.parse(new TextDecoder().decode(decode(part)));

let publicKey;

/** Why `request`, to the deployment at path `base`, is not signed by Restate; undefined if it is. */
export async function identityProblem(request, env, base) {
  if (request.headers.get("x-restate-signature-scheme") !== "v1") return "no Restate request signature (scheme v1)";
  const parts = (request.headers.get("x-restate-jwt-v1") ?? "").split(".");
  if (parts.length !== 3) return "the x-restate-jwt-v1 header is not a JWT";
  const [header, claims, signature] = parts;
  try {
    if (json(header).alg !== "EdDSA") return "the request JWT is not EdDSA-signed";
    publicKey ??= crypto.subtle.importKey("raw", decode(env.RESTATE_IDENTITY_KEY), { name: "Ed25519" }, false, [
      "verify",
    ]);
    const signed = new TextEncoder().encode(`${header}.${claims}`);
    if (!(await crypto.subtle.verify({ name: "Ed25519" }, await publicKey, decode(signature), signed))) {
      return "the request JWT is not signed by this mesh's Restate";
    }
    const { aud, nbf, exp } = json(claims);
    const now = Date.now() / 1000;
    if (`${base}${aud}` !== new URL(request.url).pathname) return "the request JWT was signed for another path";
    if (!(nbf <= now && now <= exp)) return "the request JWT has expired or is not valid yet";
  } catch {
    return "the request JWT cannot be read";
  }
  return undefined;
}

export function refuse(problem) {
  return new Response(`${problem}: calls to workerd must be signed with this mesh's Restate request identity key\n`, {
    status: 401,
  });
}
