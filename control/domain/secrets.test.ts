import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { calculateJwkThumbprint, compactDecrypt } from "jose";
import { beforeAll, describe, expect, test } from "vitest";
import { openSecrets } from "../node/workerd/router/secrets.js";
import { envProblem, openedBytes, revisionOf, type SecretsKey, seal, sealedProblem, sealingJwk } from "./secrets.ts";

describe("sealed secrets", () => {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  let key: SecretsKey;
  let routerKey: CryptoKey;
  beforeAll(async () => {
    const jwk = sealingJwk(createPublicKey(privateKey).export({ format: "jwk" }));
    key = { kid: await calculateJwkThumbprint(jwk), jwk };
    // As workerd's cryptoKey binding makes it from the PEM.
    routerKey = await crypto.subtle.importKey(
      "pkcs8",
      privateKey.export({ format: "der", type: "pkcs8" }),
      { name: "RSA-OAEP", hash: "SHA-256" },
      false,
      ["unwrapKey"],
    );
  });
  const value = "s3cr3t-ünïcode-✓";
  const open = (sealed: string, bundle = "shop", name = "API_KEY") =>
    openSecrets(bundle, { [name]: { revision: revisionOf(sealed), sealed } }, new Map([[key.kid, routerKey]]));

  test("a sealed value is a standard JWE (jose opens it) and the router's WebCrypto code opens it too", async () => {
    const sealed = await seal(key, "shop", "API_KEY", value);
    expect(sealed).not.toContain(Buffer.from(value).toString("base64url"));
    const opened = await compactDecrypt(sealed, privateKey);
    expect(new TextDecoder().decode(opened.plaintext)).toBe(value);
    expect(opened.protectedHeader).toMatchObject({ alg: "RSA-OAEP-256", enc: "A256GCM", bundle: "shop" });
    expect(await open(sealed)).toEqual({ API_KEY: value });
    expect(openedBytes(sealed)).toBe(Buffer.byteLength(value));
    expect(sealedProblem(sealed, "shop", "API_KEY", key.kid)).toBeUndefined();
  });

  test("each sealing is another revision", async () => {
    const [a, b] = await Promise.all([seal(key, "shop", "K", "v"), seal(key, "shop", "K", "v")]);
    expect(revisionOf(a)).not.toBe(revisionOf(b));
  });

  test("a value sealed for another bundle or name, to another key, or tampered with, does not open", async () => {
    const sealed = await seal(key, "shop", "API_KEY", value);
    expect(sealedProblem(sealed, "other", "API_KEY", key.kid)).toMatch(/sealed as "API_KEY" of bundle "shop"/);
    expect(sealedProblem(sealed, "shop", "API_KEY", "another-kid")).toMatch(/another key/);
    expect(sealedProblem("plain text", "shop", "API_KEY", key.kid)).toMatch(/not a sealed secret/);
    await expect(open(sealed, "other")).rejects.toThrow(/cannot open secret API_KEY of other: .*another bundle/);
    const unknownKey = openSecrets("shop", { API_KEY: { revision: "r", sealed } }, new Map());
    await expect(unknownKey).rejects.toThrow(/sealed to a key this mesh does not have/);
    const parts = sealed.split(".");
    const flipped = parts[3]?.startsWith("A") ? `B${parts[3].slice(1)}` : `A${parts[3]?.slice(1)}`;
    const tampered = [parts[0], parts[1], parts[2], flipped, parts[4]].join(".");
    await expect(open(tampered)).rejects.toThrow(/cannot open secret API_KEY/);
  });

  test("vars and secrets must fit workerd's 1 MiB env together, and not share a name", async () => {
    const big = await seal(key, "shop", "BIG", "x".repeat(1024 * 1024 - 100));
    const secrets = { BIG: { revision: revisionOf(big), sealed: big } };
    expect(envProblem(undefined, secrets)).toBeUndefined();
    expect(envProblem({ MORE: "y".repeat(200) }, secrets)).toMatch(/over 1 MiB together/);
    expect(envProblem({ BIG: "y" }, secrets)).toMatch(/BIG is both a var and a secret/);
  });
});
