// @ts-check
// A rollout step is a "split" deployment: one Restate deployment whose path segment names the
// stable build, the canary build and the canary's percentage, `split~{stable}~{canary}~{percent}`.
// The router sends each request to one of the two by a fixed hash, so the same segment always
// routes a given key (or invocation) the same way: an invocation Restate pinned to the split
// replays on the build it started on, and a higher percentage only moves keys to the canary.

const PREFIX = "split~";

/** @typedef {{ stable: string, canary: string, percent: number }} Split */

/**
 * The path segment of a split. Build ids never hold "~" (a version is letters, digits, dots,
 * dashes and pluses), so the segment reads back unambiguously.
 * @param {Split} split
 */
export function splitSegment({ stable, canary, percent }) {
  return `${PREFIX}${stable}~${canary}~${percent}`;
}

/**
 * The split a path segment names, or undefined if it names a build.
 * @param {string} segment
 * @returns {Split | undefined}
 */
export function parseSplit(segment) {
  if (!segment.startsWith(PREFIX)) return undefined;
  const [stable = "", canary = "", percent = "", ...rest] = segment.slice(PREFIX.length).split("~");
  if (rest.length || !stable || !canary || !/^(0|[1-9][0-9]?)$/.test(percent)) return undefined;
  return { stable, canary, percent: Number(percent) };
}

/**
 * What a request sticks by: an object's or workflow's key (restate-server sends it URL-encoded in
 * x-restate-service-key on every request to a keyed handler), else the invocation id, the same
 * on every attempt of an invocation.
 * @param {Headers} headers
 */
export function affinityOf(headers) {
  return headers.get("x-restate-service-key") ?? headers.get("x-restate-invocation-id") ?? "";
}

/**
 * Whether `affinity` goes to the canary: its bucket of 100 (FNV-1a of the canary's build id and
 * the affinity, so each rollout spreads keys afresh) is below the percentage.
 * @param {Split} split
 * @param {string} affinity
 */
export function toCanary(split, affinity) {
  return bucketOf(`${split.canary}\n${affinity}`) < split.percent;
}

/**
 * 32-bit FNV-1a of the UTF-8 bytes, modulo 100.
 * @param {string} text
 */
export function bucketOf(text) {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % 100;
}
