import { createHash, randomUUID } from "node:crypto";
import { lookup } from "node:dns";
import { readdir, rm, stat } from "node:fs/promises";
import { isIP, type LookupFunction } from "node:net";
import { join } from "node:path";
import { addAbortSignal, Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import ipaddr from "ipaddr.js";
import { Agent, type Dispatcher, request } from "undici";
import { BundleError } from "../domain/errors.ts";
import { mb } from "../memory.ts";
import { unpack } from "./archive.ts";
import { s3Client, s3Location, s3Problem, s3Sdk } from "./s3.ts";

export interface FetchLimits {
  /** The largest download. */
  maxBytes: number;
  /** The most an archive may unpack to, its files' sizes summed. */
  maxUnpackedBytes: number;
  /** How long the download may take, all redirects and the body included; unpacking gets as long again. */
  timeoutMs: number;
  /** Whether a redirect may lead to a loopback, link-local or private address. */
  privateRedirects: boolean;
}

const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * A source as status, the dashboard and errors show it, which anyone on the node may read: without
 * the credentials a URL can carry (`user:password@`, a presigned query), which only the download needs.
 */
export function shownSource(source: string | URL): string {
  const url = new URL(source);
  return url.protocol === "file:" ? url.href : `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * Makes a bundle source available as a local directory for `use`, then cleans up. A file:// URL
 * is used in place. An https:// or s3:// URL is an archive (tar, tar.gz or zip) of a wrangler
 * outdir: it is downloaded into memory within the limits, its SHA-256 is checked before anything
 * is written, and it is unpacked into a fresh directory under `workDir`.
 */
export async function withSourceDir<T>(
  source: string,
  sha256: string | undefined,
  workDir: string,
  limits: FetchLimits,
  use: (dir: string) => Promise<T>,
): Promise<T> {
  const url = new URL(source);
  if (url.protocol === "file:") return use(localPath(url));
  if (!sha256) throw new BundleError(`an ${url.protocol === "s3:" ? "s3" : "https"}:// source needs sha256`);
  const archive = url.protocol === "s3:" ? await downloadS3(url, limits) : await download(url, limits);
  // The digest of what was fetched is not shown: the server may have sent something that is
  // not its to show (last round, a redirect to loopback read a private page's digest this way).
  if (createHash("sha256").update(archive).digest("hex") !== sha256.toLowerCase()) {
    throw new BundleError(
      `the archive at ${shownSource(url)} does not have the expected sha256 ${sha256.toLowerCase()}`,
    );
  }
  const dir = join(workDir, randomUUID());
  try {
    await unpack(archive, dir, limits);
    return await use(await outdirIn(dir));
  } finally {
    // Retried: a write a failed unpack had under way may land while the tree is being removed.
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** A file:// URL's path on this machine; one Node cannot map to a path (a host, an encoded `/`) is refused. */
function localPath(url: URL): string {
  try {
    return fileURLToPath(url);
  } catch (error) {
    throw new BundleError(`${url.href} is not a path on this machine: ${(error as Error).message}`);
  }
}

async function download(url: URL, limits: FetchLimits): Promise<Buffer> {
  const { timeoutMs } = limits;
  const timeouts = { headersTimeout: timeoutMs, bodyTimeout: timeoutMs };
  // The admin chose the first URL; where it redirects to, the server chose.
  const dispatchers = {
    first: new Agent(timeouts),
    redirected: new Agent(limits.privateRedirects ? timeouts : { ...timeouts, connect: { lookup: publicLookup(url) } }),
  };
  try {
    const response = await follow(url, dispatchers, limits.privateRedirects, AbortSignal.timeout(timeoutMs));
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new BundleError(`${shownSource(url)} answered HTTP ${response.statusCode}`);
    }
    return await readWithin(url, Number(response.headers["content-length"] ?? 0), response.body, limits.maxBytes);
  } catch (error) {
    throw downloadError(url, error, timeoutMs);
  } finally {
    await Promise.all([dispatchers.first.close(), dispatchers.redirected.close()]);
  }
}

/**
 * Reads an s3:// object with the credentials and endpoint of the AWS SDK's standard chain. What
 * the store refuses (no such bucket or key, access denied) is a BundleError saying so.
 */
async function downloadS3(url: URL, limits: FetchLimits): Promise<Buffer> {
  const location = s3Location(url);
  if (!location.key) throw new BundleError(`${shownSource(url)} names no key: an s3:// source is s3://bucket/key`);
  const client = await s3Client();
  const { GetObjectCommand } = await s3Sdk();
  const signal = AbortSignal.timeout(limits.timeoutMs);
  try {
    const object = await client
      .send(new GetObjectCommand({ Bucket: location.bucket, Key: location.key }), { abortSignal: signal })
      .catch((error: unknown) => {
        throw signal.aborted ? error : new BundleError(s3Problem(error, location));
      });
    if (!(object.Body instanceof Readable)) throw new BundleError(`${shownSource(url)}: the store sent no body`);
    return await readWithin(url, object.ContentLength ?? 0, addAbortSignal(signal, object.Body), limits.maxBytes);
  } catch (error) {
    throw downloadError(url, error, limits.timeoutMs);
  } finally {
    client.destroy();
  }
}

/** Reads a body into memory, refusing one that says or turns out to be over `maxBytes`. */
async function readWithin(url: URL, declared: number, body: Readable, maxBytes: number): Promise<Buffer> {
  if (declared > maxBytes) {
    // undici's body emits an AbortError when destroyed unread; with no reader left, that error
    // would be an uncaught exception in the process.
    body.once("error", () => {});
    body.destroy();
    throw new BundleError(`${shownSource(url)} is ${mb(declared)} MB, over the limit of ${mb(maxBytes)} MB`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      throw new BundleError(`${shownSource(url)} sent more than the limit of ${mb(maxBytes)} MB`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A download's failure as a BundleError: the deadline passing, or whatever else it was. */
function downloadError(url: URL, error: unknown, timeoutMs: number): BundleError {
  if (error instanceof BundleError) return error;
  const reason =
    error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")
      ? `no answer within ${timeoutMs / 1000} s`
      : String(error);
  return new BundleError(`could not download ${shownSource(url)}: ${reason}`);
}

/** Requests `url`, following redirects one by one so each target is checked before it is asked. */
async function follow(
  url: URL,
  dispatchers: { first: Dispatcher; redirected: Dispatcher },
  privateRedirects: boolean,
  signal: AbortSignal,
): Promise<Dispatcher.ResponseData> {
  let current = url;
  for (let redirects = 0; ; redirects++) {
    const dispatcher = redirects === 0 ? dispatchers.first : dispatchers.redirected;
    const response = await request(current, { dispatcher, signal });
    const location = response.headers.location;
    if (!REDIRECT_STATUSES.has(response.statusCode) || typeof location !== "string") return response;
    await response.body.dump();
    if (redirects === MAX_REDIRECTS)
      throw new BundleError(`${shownSource(url)} redirects more than ${MAX_REDIRECTS} times`);
    const next = new URL(location, current);
    const refusal = redirectRefusal(current, next, privateRedirects);
    if (refusal) throw new BundleError(`${shownSource(url)} redirects to ${shownSource(next)}, ${refusal}`);
    current = next;
  }
}

/**
 * Why a redirect from `from` to `to` is not followed; undefined when it is. A target named by
 * a host name is checked when it is resolved (publicLookup), every time it is connected to.
 */
export function redirectRefusal(from: URL, to: URL, privateRedirects: boolean): string | undefined {
  if (to.protocol !== "https:" && to.protocol !== "http:") return `which is not an http(s) URL`;
  if (from.protocol === "https:" && to.protocol !== "https:") return "a downgrade from https to plain http";
  // An IPv6 host comes in brackets: [::1].
  const host = to.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!privateRedirects && isIP(host) && !isPublicAddress(host)) return PRIVATE_REFUSAL;
  return undefined;
}

const PRIVATE_REFUSAL =
  "a loopback, link-local or private address, where redirects may not lead (see GRIDIRON_FETCH_PRIVATE_REDIRECTS)";

/**
 * Whether an IP address is a public unicast one: not loopback, private, link-local (the cloud
 * metadata service), unique-local, carrier-grade NAT, unspecified, multicast or reserved, and
 * no IPv4 address of those kinds inside an IPv6 one.
 */
function isPublicAddress(address: string): boolean {
  return ipaddr.process(address).range() === "unicast";
}

/**
 * Resolves a redirect target's host as the socket would, and fails if any of its addresses is
 * not public; `url` is the source that redirected, for the message.
 */
function publicLookup(url: URL): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, "");
      const refused = addresses.find((address) => !isPublicAddress(address.address));
      if (refused) {
        const message = `a redirect of ${shownSource(url)} leads to ${hostname} (${refused.address}), ${PRIVATE_REFUSAL}`;
        return callback(new BundleError(message), "");
      }
      const [first] = addresses;
      if (options.all || !first) return callback(null, addresses);
      return callback(null, first.address, first.family);
    });
  };
}

/** The archive's own top directory when it holds just one, as `tar czf x.tgz dist` makes. */
async function outdirIn(dir: string): Promise<string> {
  const entries = await readdir(dir);
  if (entries.length === 1 && entries[0] && (await stat(join(dir, entries[0]))).isDirectory()) {
    return join(dir, entries[0]);
  }
  return dir;
}
