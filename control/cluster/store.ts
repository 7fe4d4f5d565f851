import * as restate from "@restatedev/restate-sdk";
import { BUNDLES } from "../contracts.ts";
import { adminOnly } from "../credentials/admin-token.ts";
import { asTerminalError } from "../objects/error-policy.ts";
import { Chunk, ChunkId, Manifest } from "./store-schema.ts";

/**
 * `bundles`, keyed by `{name}@{buildId}`: every build's modules in Restate's own replicated state,
 * in chunks, so each node of a cluster can fetch any build without a shared disk. The deployer
 * writes a build here (through the ingress, so 50 MB never sits in a journal) before any node is
 * asked to serve it; nodes read it back through the ingress too, a chunk at a time.
 *
 * With an S3 bucket for builds (GRIDIRON_CLUSTER_BUILDS), the files go there instead, each once,
 * named by its SHA-256, and Restate keeps only the manifest, which says where they are.
 */

const chunkKey = (file: string, index: number) => `chunk:${file}:${index}`;

type Ctx = restate.ObjectContext;
type SharedCtx = restate.ObjectSharedContext;

export function bundlesObject(adminToken: string) {
  const what = "bundles is internal to Gridiron's control plane: a call to it";
  return restate.object({
    name: BUNDLES,
    handlers: {
      // The key is public (the dashboard shows it), but an anonymous call never waits on it: the
      // ingress front refuses it before Restate sees it (ingress-front.ts).
      put: restate.handlers.object.exclusive({ input: restate.serde.schema(Chunk) }, async (ctx: Ctx, chunk: Chunk) => {
        ctx.set(chunkKey(chunk.file, chunk.index), chunk.data);
      }),
      /** Written last: a build without a manifest is not (yet) stored. */
      seal: restate.handlers.object.exclusive(
        { input: restate.serde.schema(Manifest) },
        async (ctx: Ctx, manifest: Manifest) => {
          ctx.set("manifest", manifest);
        },
      ),
      remove: restate.handlers.object.exclusive(async (ctx: Ctx) => {
        ctx.clearAll();
      }),
      manifest: restate.handlers.object.shared(async (ctx: SharedCtx): Promise<Manifest | null> => {
        return (await ctx.get<Manifest>("manifest")) ?? null;
      }),
      chunk: restate.handlers.object.shared(
        { input: restate.serde.schema(ChunkId) },
        async (ctx: SharedCtx, id: ChunkId): Promise<string | null> => {
          return (await ctx.get<string>(chunkKey(id.file, id.index))) ?? null;
        },
      ),
    },
    // Lazy: a build's chunks add up to 50 MB, which Restate would otherwise load into every call;
    // each handler reads the one key it needs.
    options: { asTerminalError, enableLazyState: true, hooks: [adminOnly(adminToken, what)] },
  });
}

export type BundlesObject = ReturnType<typeof bundlesObject>;
