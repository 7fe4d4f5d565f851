import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import getPort from "get-port";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeCa, makeNodeCertificate } from "../../tools/local-cluster/certificates.ts";
import { parseMembership } from "./peers.ts";
import { clusterTlsFiles } from "./tls.ts";
import { askPeer, confirmToken, serveTokenCheck, watchToken } from "./token-check.ts";
import type { TokenAnswer } from "./token-proof.ts";

const PEERS = "n1=127.0.0.1,n2=127.0.0.2,n3=127.0.0.3";
const TOKEN = "a".repeat(64);
const WRONG = "b".repeat(64);

const membership = (self: string) => {
  const parsed = parseMembership(PEERS, self);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed;
};

describe("the admin token check between cluster nodes, over mutual TLS on loopback", () => {
  let dir: string;
  let port: number;
  /** Node `self`'s settings, with the TLS files in `tls` (its own by default). */
  const node = (self: string, tls = self) => ({
    cluster: membership(self),
    clusterTls: clusterTlsFiles(join(dir, tls)),
    port,
  });
  const peer = (name: string) => membership(name).self;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "gridiron-token-check-"));
    port = await getPort();
    await makeCa(join(dir, "ca"), "test-ca");
    await makeCa(join(dir, "other-ca"), "other-ca");
    for (const [name, address] of [
      ["n1", "127.0.0.1"],
      ["n2", "127.0.0.2"],
      ["n3", "127.0.0.3"],
    ] as const) {
      await makeNodeCertificate(join(dir, "ca"), name, address, join(dir, name));
    }
    // An impostor: a certificate for n2 from another CA, beside the cluster's CA (so it takes n1's).
    await makeNodeCertificate(join(dir, "other-ca"), "n2", "127.0.0.2", join(dir, "forged"));
    await copyFile(join(dir, "ca", "ca.pem"), join(dir, "forged", "ca.pem"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("tells a peer holding the same token from one holding another", async () => {
    const server = await serveTokenCheck(node("n2"), TOKEN);
    try {
      expect(await askPeer(node("n1"), TOKEN, peer("n2"))).toEqual({ peer: "n2", outcome: "same" });
      expect(await askPeer(node("n1"), WRONG, peer("n2"))).toEqual({ peer: "n2", outcome: "differs" });
      // Its own TLS files gone: no answer, and no exception for the loops that ask.
      expect((await askPeer(node("n1", "missing"), TOKEN, peer("n2"))).outcome).toBe("no-answer");
    } finally {
      await server.close();
    }
  });

  it("takes no refusal from a server that is not the peer: another CA's certificate, or another peer's", async () => {
    for (const tls of ["forged", "n3"]) {
      // It holds another token, so were it believed, n1 would be refused.
      const impostor = await serveTokenCheck(node("n2", tls), WRONG);
      try {
        const answer = await askPeer(node("n1"), TOKEN, peer("n2"));
        expect(answer.outcome).toBe("no-answer");
      } finally {
        await impostor.close();
      }
    }
  });

  it("answers no client without a peer's certificate of the cluster's CA, so none learns a proof", async () => {
    const server = await serveTokenCheck(node("n2"), TOKEN);
    try {
      // Anonymous: TLS without a client certificate, and plain HTTP.
      const anonymous = request(`https://127.0.0.2:${port}/token-proof`, {
        method: "POST",
        body: JSON.stringify({ nonce: "ab".repeat(32) }),
        headersTimeout: 2_000,
      });
      await expect(anonymous).rejects.toThrow();
      await expect(request(`http://127.0.0.2:${port}/token-proof`, { method: "POST", body: "{}" })).rejects.toThrow();
      // A client whose certificate another CA signed, for a peer's name.
      expect((await askPeer(node("n1", "forged"), TOKEN, peer("n2"))).outcome).toBe("no-answer");
      // The handshake itself fails without a certificate: not one byte of an HTTP answer comes back
      // (a server that took the client would answer "x" with a 400).
      let received = "";
      const ended = await new Promise<string>((resolve) => {
        const socket = connect({ host: "127.0.0.2", port, rejectUnauthorized: false }, () => socket.write("x\r\n\r\n"));
        socket.on("data", (chunk: Buffer) => {
          received += chunk.toString();
        });
        socket.on("error", (error) => resolve(error.message));
        socket.on("close", () => resolve("closed"));
      });
      expect(received).toBe("");
      expect(ended).toMatch(/closed|certificate|alert|reset/i);
    } finally {
      await server.close();
    }
  });

  it("answers a peer's question only if it is a nonce", async () => {
    const server = await serveTokenCheck(node("n2"), TOKEN);
    const files = clusterTlsFiles(join(dir, "n1"));
    const [ca, cert, key] = await Promise.all([files.ca, files.cert, files.key].map((path) => readFile(path)));
    const asN1 = new Agent({ connect: { ca, cert, key, checkServerIdentity: () => undefined } });
    try {
      const ask = async (body: string) =>
        (await request(`https://127.0.0.2:${port}/token-proof`, { method: "POST", body, dispatcher: asN1 })).statusCode;
      expect(await ask(JSON.stringify({ nonce: "ab".repeat(32) }))).toBe(200);
      for (const body of ["", "{", JSON.stringify({ nonce: "short" }), JSON.stringify({ nonce: "x".repeat(5_000) })]) {
        expect(await ask(body).catch(() => "cut off")).not.toBe(200);
      }
    } finally {
      await asN1.close();
      await server.close();
    }
  });
});

describe("waiting for the peers to confirm this node's token", () => {
  const rounds = (...answers: TokenAnswer[][]) => {
    let round = 0;
    return async () => answers[Math.min(round++, answers.length - 1)] as TokenAnswer[];
  };
  const silent = (peer: string): TokenAnswer => ({ peer, outcome: "no-answer", reason: "connect ECONNREFUSED" });

  it("waits, with progress lines, while nobody answers, and goes on once a peer confirms", async () => {
    const lines: string[] = [];
    const ask = rounds([silent("n2"), silent("n3")], [silent("n2"), { peer: "n3", outcome: "same" }]);
    await confirmToken(ask, 3, (line) => lines.push(line));
    expect(lines[0]).toMatch(
      /waiting for 1 more peer\(s\) to confirm this node's admin token before restate-server starts/,
    );
    expect(lines.at(-1)).toBe("[gridiron] admin token confirmed by n3");
  });

  it("throws, naming the peers, once they refuse it", async () => {
    const ask = rounds([
      { peer: "n1", outcome: "differs" },
      { peer: "n2", outcome: "differs" },
    ]);
    await expect(confirmToken(ask, 3, () => {})).rejects.toThrow(/^n1, n2 refused this node's admin token/);
  });

  it("a running node stops once refused, not while peers merely do not answer", async () => {
    const ask = rounds(
      [silent("n1"), silent("n2")],
      [silent("n1"), silent("n2")],
      [
        { peer: "n1", outcome: "differs" },
        { peer: "n2", outcome: "differs" },
      ],
    );
    const refused: string[] = [];
    await watchToken(ask, 3, 1, new AbortController().signal, (message) => refused.push(message));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(/^n1, n2 refused/);
  });
});
