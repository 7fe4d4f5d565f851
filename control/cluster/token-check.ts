import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import { setTimeout as sleep } from "node:timers/promises";
import type { TLSSocket } from "node:tls";
import { Agent, request } from "undici";
import { z } from "zod";
import { closeServer } from "../close-server.ts";
import { jsonOr } from "../json.ts";
import type { ClusterMembership, Peer } from "./peers.ts";
import { hostPort } from "./restate-config.ts";
import type { ClusterTlsFiles } from "./tls.ts";
import { sameToken, type TokenAnswer, tokenProof, tokenStep } from "./token-proof.ts";

/**
 * The admin token check between cluster nodes, served by each node's supervisor from before its
 * restate-server starts, so that nodes starting together check each other: on the token port,
 * mutual TLS only, with the same certificates as Restate's node port. The TLS peer certificate is
 * what makes an answer count: a refusal is believed only from a peer that proved its name with a
 * certificate of the cluster's CA, so an anonymous process can neither make a node stop nor ask
 * for a proof to guess the token from.
 */

const PATH = "/token-proof";
const Question = z.object({ nonce: z.string().regex(/^[0-9a-f]{64}$/) });
const Answer = z.object({ proof: z.string().regex(/^[0-9a-f]{64}$/) });
/** Each peer asks over one connection at a time: room for far more peers than a cluster has. */
const MAX_CONNECTIONS = 128;
/** A handshake that stalls, as a flood's would, gives its connection back this soon. */
const HANDSHAKE_TIMEOUT_MS = 5_000;
/** A question is a nonce: anything longer is not one. */
const MAX_BODY_BYTES = 1_024;
/** A peer answers from memory: slower than this, it counts as not answering. */
const ASK_TIMEOUT_MS = 2_000;
/** Between rounds while the node waits to be confirmed. */
const ROUND_PAUSE_MS = 1_000;
/** A waiting node repeats where it stands this often, even when nothing changed. */
const PROGRESS_EVERY_MS = 10_000;
/** How often a running node checks again that the cluster still holds its token. */
export const RECHECK_MS = 30_000;
/** Restate re-reads the TLS files every hour; so does this server (certificates are renewed in place). */
const RELOAD_TLS_MS = 60 * 60_000;

interface TokenCheckSettings {
  cluster: ClusterMembership;
  clusterTls: ClusterTlsFiles;
  /** The token port, the same on every node. */
  port: number;
}

async function readTls(files: ClusterTlsFiles) {
  const [ca, cert, key] = await Promise.all([files.ca, files.cert, files.key].map((path) => readFile(path)));
  return { ca, cert, key };
}

/**
 * Serves this node's proofs to its peers on its cluster address: only to a client presenting a
 * certificate the cluster's CA signed for one of the peers' names, the asker's name bound into
 * the proof.
 */
export async function serveTokenCheck(
  settings: TokenCheckSettings,
  token: string,
): Promise<{ close(): Promise<void> }> {
  const { cluster } = settings;
  const names = new Set(cluster.peers.map((p) => p.name));
  const server: Server = createServer(
    {
      ...(await readTls(settings.clusterTls)),
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    },
    (req, res) => {
      const asker = (req.socket as TLSSocket).getPeerCertificate().subject?.CN;
      if (req.method !== "POST" || req.url !== PATH) return void res.writeHead(404).end();
      if (typeof asker !== "string" || !names.has(asker)) return void res.writeHead(403).end();
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (chunk: string) => {
        body += chunk;
        if (body.length > MAX_BODY_BYTES) req.destroy();
      });
      req.on("end", () => {
        const question = Question.safeParse(jsonOr(body, undefined));
        if (!question.success) return void res.writeHead(400).end();
        const proof = tokenProof(token, cluster.self.name, asker, question.data.nonce);
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ proof }));
      });
    },
  );
  server.headersTimeout = ASK_TIMEOUT_MS;
  server.requestTimeout = ASK_TIMEOUT_MS;
  // Bounds the file descriptors a flood of handshakes can take from the supervisor. A flood that
  // fills them delays its peers' checks (they wait); it cannot pass one or make one fail.
  server.maxConnections = MAX_CONNECTIONS;
  const reload = setInterval(() => {
    readTls(settings.clusterTls).then(
      (tls) => server.setSecureContext(tls),
      () => {},
    );
  }, RELOAD_TLS_MS).unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(
        new Error(
          `the admin token check cannot listen on ${hostPort(cluster.self.address, settings.port)}: ${error.message}`,
        ),
      ),
    );
    server.listen(settings.port, cluster.self.address, resolve);
  });
  return {
    close: () => {
      clearInterval(reload);
      return closeServer(server);
    },
  };
}

/**
 * Asks `peer` to prove which token it holds, over mutual TLS as this node. An answer counts only
 * from a server whose certificate the cluster's CA signed for `peer`'s own name; anything else
 * (no server, another certificate, a malformed answer, this node's TLS files unreadable) is no
 * answer, never a refusal.
 */
export async function askPeer(settings: TokenCheckSettings, token: string, peer: Peer): Promise<TokenAnswer> {
  try {
    return await askOnce(settings, token, peer);
  } catch (error) {
    return { peer: peer.name, outcome: "no-answer", reason: reasonOf(error) };
  }
}

async function askOnce(settings: TokenCheckSettings, token: string, peer: Peer): Promise<TokenAnswer> {
  const nonce = randomBytes(32).toString("hex");
  const dispatcher = new Agent({
    connect: {
      ...(await readTls(settings.clusterTls)),
      timeout: ASK_TIMEOUT_MS,
      // The peer is known by its certificate's name, as Restate's `allowed-subject-names` know it.
      checkServerIdentity: (_host, cert) =>
        cert.subject?.CN === peer.name
          ? undefined
          : new Error(`the certificate is for "${cert.subject?.CN}", not ${peer.name}`),
    },
  });
  try {
    const { statusCode, body } = await request(`https://${hostPort(peer.address, settings.port)}${PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ nonce }),
      dispatcher,
      headersTimeout: ASK_TIMEOUT_MS,
      bodyTimeout: ASK_TIMEOUT_MS,
    });
    const answer = Answer.safeParse(jsonOr(await body.text(), undefined));
    if (statusCode !== 200 || !answer.success) {
      return { peer: peer.name, outcome: "no-answer", reason: `answered ${statusCode} without a proof` };
    }
    const expected = tokenProof(token, peer.name, settings.cluster.self.name, nonce);
    return { peer: peer.name, outcome: sameToken(answer.data.proof, expected) ? "same" : "differs" };
  } finally {
    await dispatcher.close();
  }
}

/** The innermost cause's message: undici wraps a refused connection in "fetch failed"-like errors. */
function reasonOf(error: unknown): string {
  let cause = error;
  while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}

/** Asks every other node at once. */
export type AskAll = () => Promise<TokenAnswer[]>;

export function askPeers(settings: TokenCheckSettings, token: string): AskAll {
  const others = settings.cluster.peers.filter((p) => p !== settings.cluster.self);
  return () => Promise.all(others.map((peer) => askPeer(settings, token, peer)));
}

/**
 * Before this node's restate-server starts: waits, saying where it stands, until a majority of
 * the cluster holds its token; throws, naming the peers, once it cannot.
 */
export async function confirmToken(ask: AskAll, clusterSize: number, log: (line: string) => void): Promise<void> {
  let said = "";
  let saidAt = 0;
  for (;;) {
    const step = tokenStep(await ask(), clusterSize);
    if (step.kind === "confirmed") {
      log(`[gridiron] admin token confirmed${step.by.length ? ` by ${step.by.join(", ")}` : " (a cluster of one)"}`);
      return;
    }
    if (step.kind === "refused") throw new Error(step.message);
    if (step.message !== said || Date.now() - saidAt >= PROGRESS_EVERY_MS) {
      log(`[gridiron] ${step.message}`);
      said = step.message;
      saidAt = Date.now();
    }
    await sleep(ROUND_PAUSE_MS);
  }
}

/**
 * While this node runs: asks again every `everyMs` and calls `refused` once its token can no
 * longer be the cluster's (the others were given another one). Peers that do not answer change
 * nothing.
 */
export async function watchToken(
  ask: AskAll,
  clusterSize: number,
  everyMs: number,
  signal: AbortSignal,
  refused: (message: string) => void,
): Promise<void> {
  while (!signal.aborted) {
    await sleep(everyMs, undefined, { signal }).catch(() => {});
    if (signal.aborted) return;
    const step = tokenStep(await ask(), clusterSize);
    if (step.kind === "refused") return refused(step.message);
  }
}
