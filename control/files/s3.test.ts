import { NoSuchBucket, NoSuchKey, S3ServiceException } from "@aws-sdk/client-s3";
import { expect, test } from "vitest";
import { isS3Refusal, s3Client, s3Location, s3Problem } from "./s3.ts";

const at = { bucket: "b", key: "k/x.tgz" };
const metadata = (httpStatusCode: number) => ({ $metadata: { httpStatusCode }, message: "m" });
const serviceError = (name: string, status: number) =>
  new S3ServiceException({ name, $fault: "client", ...metadata(status) });

test("s3:// URLs name a bucket and a key, which may hold slashes and escapes", () => {
  expect(s3Location("s3://b/k/x.tgz")).toEqual(at);
  expect(s3Location("s3://b/a%20b")).toEqual({ bucket: "b", key: "a b" });
  expect(s3Location("s3://b")).toEqual({ bucket: "b", key: "" });
  expect(() => s3Location("https://b/k")).toThrow(/not an s3:\/\/bucket\/key URL/);
});

test("what the store said, in words an operator acts on", () => {
  expect(s3Problem(new NoSuchBucket(metadata(404)), at)).toBe("no such bucket b");
  expect(s3Problem(new NoSuchKey(metadata(404)), at)).toBe("no such key s3://b/k/x.tgz");
  expect(s3Problem(serviceError("NotFound", 404), at)).toBe("no such key s3://b/k/x.tgz");
  expect(s3Problem(serviceError("AccessDenied", 403), at)).toMatch(
    /^access denied to s3:\/\/b\/k\/x\.tgz \(AccessDenied\)/,
  );
  expect(s3Problem(serviceError("InternalError", 500), at)).toMatch(/answered HTTP 500 InternalError/);
});

test("only a 4xx other than a timeout or throttling is a refusal for good", () => {
  expect(isS3Refusal(serviceError("AccessDenied", 403))).toBe(true);
  expect(isS3Refusal(serviceError("NoSuchBucket", 404))).toBe(true);
  expect(isS3Refusal(serviceError("SlowDown", 429))).toBe(false);
  expect(isS3Refusal(serviceError("InternalError", 503))).toBe(false);
  expect(isS3Refusal(new Error("socket hang up"))).toBe(false);
});

test("buckets go in the path when an endpoint is set, unless GRIDIRON_S3_PATH_STYLE says otherwise", async () => {
  const pathStyle = async (env: NodeJS.ProcessEnv) => (await s3Client(env)).config.forcePathStyle;
  expect(await pathStyle({})).toBe(false);
  expect(await pathStyle({ AWS_ENDPOINT_URL_S3: "http://127.0.0.1:7480" })).toBe(true);
  expect(await pathStyle({ AWS_ENDPOINT_URL: "http://127.0.0.1:7480" })).toBe(true);
  expect(await pathStyle({ AWS_ENDPOINT_URL: "http://x", GRIDIRON_S3_PATH_STYLE: "false" })).toBe(false);
  expect(await pathStyle({ GRIDIRON_S3_PATH_STYLE: "true" })).toBe(true);
});
