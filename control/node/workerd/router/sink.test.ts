import { expect, test } from "vitest";
import { SINK_BINDING } from "./logs.js";
import { entrySource, LogSink, withAttribution } from "./sink.js";
import type { Build, Env, RouterContext, SinkProps, WorkerCode } from "./types.ts";

/** How the live router loads a build with attribution, and when it loads it as it is. */

const code = (flags: string[] = []): WorkerCode => ({
  compatibilityDate: "2026-11-01",
  compatibilityFlags: flags,
  mainModule: "index.js",
  modules: { "index.js": { js: "export default {}" } },
  env: { GREETING: "hi" },
});
const build = { name: "greeter", buildId: "1.0.0-x" } as Build;
const made: SinkProps[] = [];
const ctx = {
  exports: {
    LogSink: ({ props }: { props: SinkProps }) => {
      made.push(props);
      return { fetch: async () => new Response(null) };
    },
  },
} as unknown as RouterContext;
const live = {
  COLLECTOR: { fetch: async () => new Response(null) },
  ATTRIBUTION: '{"attribute.js":"A"}',
} as unknown as Env;

test("a build on the live workerd gets our entry, our modules, AsyncLocalStorage and a sink for itself alone", () => {
  const wrapped = withAttribution(code(), build, live, ctx);
  expect(wrapped.mainModule).toBe("$gridiron/entry.js");
  expect(wrapped.modules["$gridiron/attribute.js"]).toEqual({ js: "A" });
  expect(wrapped.modules["index.js"]).toEqual({ js: "export default {}" });
  expect(wrapped.compatibilityFlags).toEqual(["nodejs_als"]);
  expect(wrapped.env).toMatchObject({ GREETING: "hi", [SINK_BINDING]: expect.anything() });
  expect(made.at(-1)).toEqual({ bundle: "greeter", build: "1.0.0-x" });
  expect(withAttribution(code(["nodejs_compat"]), build, live, ctx).compatibilityFlags).toEqual(["nodejs_compat"]);
  expect(entrySource("src/index.js")).toContain('export * from "../src/index.js";');
});

test("a proof's workerd (no collector) loads a build as the live one does, and its sink drops the batches", async () => {
  const proof = { ...live, COLLECTOR: undefined } as unknown as Env;
  const { env: _proofSink, ...inProof } = withAttribution(code(), build, proof, ctx);
  const { env: _liveSink, ...inLive } = withAttribution(code(), build, live, ctx);
  expect(inProof).toEqual(inLive);
  expect(inProof.mainModule).toBe("$gridiron/entry.js");
  const sinkCtx = { props: { bundle: "greeter", build: "1.0.0-x" } };
  const dropped = await LogSink.fetch(new Request("http://sink/", { method: "POST", body: "{}" }), proof, sinkCtx);
  expect(dropped.status).toBe(204);
});

test("attribution off, a build that turned AsyncLocalStorage off, a CommonJS main: loaded as they are", () => {
  const off = { ...live, COLLECTOR: undefined, ATTRIBUTION: undefined } as unknown as Env;
  expect(withAttribution(code(), build, off, ctx)).toEqual(code());
  expect(withAttribution(code(["no_nodejs_als"]), build, live, ctx)).toEqual(code(["no_nodejs_als"]));
  const cjs = { ...code(), modules: { "index.js": { cjs: "module.exports = {}" } } };
  expect(withAttribution(cjs, build, live, ctx)).toEqual(cjs);
});
