// @ts-check
// Attribution of builds' lines on the live workerd, the router's side. A build is loaded with
// attribute.js (and what it imports) beside its own modules, and an entry module of ours as its
// main module, which passes every request through attribute.js and then to the build's own
// default export. Its env gets a log sink, LogSink below with the build's name as props, so a
// build's batches reach the node's collector (control/logs/collector.ts) stamped with the bundle
// and build the router loaded, whatever the build's code writes into them. A proof's workerd
// loads builds the same way, with no collector: its sink drops the batches.

import { BATCH_PATH, SINK_BINDING } from "./logs.js";

/** @import { Build, Env, RouterContext, SinkProps, WorkerCode } from "./types.ts" */

/** Where our modules go in a build: a name no build's module can have (`$` is not allowed in them, domain/bundle.ts). */
const DIR = "$gridiron";
const ENTRY = `${DIR}/entry.js`;
/** What our modules need: AsyncLocalStorage (node:async_hooks), which nodejs_compat also gives. */
const NEEDED_FLAG = "nodejs_als";

/** Passes a build's batch on to the node's collector under the bundle and build the router gave it. */
export const LogSink = {
  /**
   * @param {Request} request
   * @param {Env} env
   * @param {{ props: SinkProps }} ctx
   */
  async fetch(request, env, ctx) {
    const { bundle, build } = ctx.props;
    if (!env.COLLECTOR) return new Response(null, { status: 204 });
    const path = `${BATCH_PATH}/${encodeURIComponent(bundle)}/${encodeURIComponent(build)}`;
    // While the collector is down (the ops process restarts), the batch is lost.
    const response = await env.COLLECTOR.fetch(`http://collector${path}`, {
      method: "POST",
      body: await request.text(),
    }).catch(() => new Response(null, { status: 502 }));
    await response.body?.cancel();
    return new Response(null, { status: response.status });
  },
};

/**
 * The code a build is loaded with when attribution is on (live and in proofs): its own, behind
 * our entry. A build whose main module is not an ES module is served as it is (wrangler makes ES
 * modules), and so is one with `no_nodejs_als`.
 * @param {WorkerCode} code
 * @param {Build} build
 * @param {Env} env
 * @param {RouterContext} ctx
 * @returns {WorkerCode}
 */
export function withAttribution(code, build, env, ctx) {
  const main = code.modules[code.mainModule];
  if (!env.ATTRIBUTION || !main || !("js" in main)) return code;
  // A build that turned AsyncLocalStorage off cannot have it back: it is served as it is.
  if (code.compatibilityFlags.includes(`no_${NEEDED_FLAG}`)) return code;
  /** @type {Record<string, string>} */
  const sources = JSON.parse(env.ATTRIBUTION);
  /** @type {WorkerCode["modules"]} */
  const modules = { ...code.modules, [ENTRY]: { js: entrySource(code.mainModule) } };
  for (const [name, js] of Object.entries(sources)) modules[`${DIR}/${name}`] = { js };
  const flags = code.compatibilityFlags;
  const hasAls = flags.includes(NEEDED_FLAG) || flags.includes("nodejs_compat");
  const sink = ctx.exports.LogSink({ props: { bundle: build.name, build: build.buildId } });
  return {
    ...code,
    mainModule: ENTRY,
    modules,
    compatibilityFlags: hasAls ? flags : [...flags, NEEDED_FLAG],
    env: { ...code.env, [SINK_BINDING]: sink },
  };
}

/**
 * Our main module: console is patched first (install.js is evaluated before the build's modules),
 * the build's named exports stay as they are, and its default export is wrapped.
 * @param {string} mainModule
 */
export function entrySource(mainModule) {
  const main = JSON.stringify(`../${mainModule}`);
  return [
    'import "./install.js";',
    'import { attributed } from "./attribute.js";',
    `import * as build from ${main};`,
    `export * from ${main};`,
    "export default attributed(build.default);",
    "",
  ].join("\n");
}
