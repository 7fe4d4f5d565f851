import type { S3Client } from "@aws-sdk/client-s3";
import { S3PathStyle } from "../settings.ts";

/**
 * Gridiron's one way to an S3-compatible store. Credentials, region and endpoint come from the
 * AWS SDK's standard chain (environment, shared config and credentials files, instance roles);
 * the SDK itself reads `AWS_ENDPOINT_URL_S3` and `AWS_ENDPOINT_URL` for a store that is not AWS.
 */

/**
 * The AWS SDK's S3 client, loaded on first use: loaded, it holds ~25 MB in every process, and a
 * mesh that never uses S3 should not pay for it (its supervisor and deployer import this module).
 */
export const s3Sdk = () => import("@aws-sdk/client-s3");

/**
 * Path-style when GRIDIRON_S3_PATH_STYLE says so, or else when the endpoint is set in the
 * environment: stores other than AWS (Ceph's gateway, MinIO) serve buckets in the path, and a
 * bucket as a host name would need DNS for every bucket.
 */
export async function s3Client(env: NodeJS.ProcessEnv = process.env): Promise<S3Client> {
  const { S3Client } = await s3Sdk();
  const endpointSet = Boolean(env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL);
  return new S3Client({
    forcePathStyle: S3PathStyle.parse(env.GRIDIRON_S3_PATH_STYLE) ?? endpointSet,
    // Checksums on every request break streamed bodies on some stores (Ceph answers 411), and
    // Gridiron checks each object's SHA-256 itself.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

export interface S3Location {
  bucket: string;
  key: string;
}

/** `s3://bucket/key/with/slashes`: the key may be empty (a bucket, or a prefix's root). */
export function s3Location(url: string | URL): S3Location {
  const parsed = new URL(url);
  if (parsed.protocol !== "s3:" || !parsed.hostname) throw new Error(`${url} is not an s3://bucket/key URL`);
  return { bucket: parsed.hostname, key: decodeURIComponent(parsed.pathname.replace(/^\//, "")) };
}

/**
 * Whether the store refused a request for good (no such bucket, access denied): asking again
 * will not help. Timeouts, throttling and 5xx may pass.
 */
export function isS3Refusal(error: unknown): boolean {
  const status = s3Status(error);
  return status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/** What went wrong with an S3 request, in words an operator can act on. */
export function s3Problem(error: unknown, { bucket, key }: S3Location): string {
  const where = `s3://${bucket}/${key}`;
  const status = s3Status(error);
  if (error instanceof Error && status !== undefined) {
    if (error.name === "NoSuchBucket") return `no such bucket ${bucket}`;
    // A HEAD's 404 carries no error code: the key, since the bucket would be NoSuchBucket on GET.
    if (error.name === "NoSuchKey" || (status === 404 && error.name === "NotFound")) return `no such key ${where}`;
    if (status === 403) {
      return `access denied to ${where} (${error.name}): check the AWS credentials the mesh runs with`;
    }
    return `${where}: the store answered HTTP ${status} ${error.name}: ${error.message}`;
  }
  if (error instanceof Error && error.name === "CredentialsProviderError") {
    return `no AWS credentials for ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`;
  }
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `no answer from the store for ${where} in time`;
  }
  return `${where}: ${error instanceof Error ? error.message : String(error)}`;
}

/**
 * The HTTP status the store answered an S3 request with (the SDK's S3ServiceException carries it
 * in `$metadata`), else undefined. Known by its shape, so the SDK need not be loaded to ask.
 */
export function s3Status(error: unknown): number | undefined {
  if (!(error instanceof Error) || !("$metadata" in error)) return undefined;
  const metadata = error.$metadata as { httpStatusCode?: number } | undefined;
  return metadata?.httpStatusCode;
}
