import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { posix } from "node:path";
import * as tar from "tar";
import { s3Client, s3Location, s3Problem, s3Sdk, s3Status } from "../files/s3.ts";

/** Where an uploaded build is, as `activate` takes it. */
export interface UploadedBuild {
  source: string;
  sha256: string;
}

/**
 * Packs a built outdir as a tar.gz and stores it under `prefix` (`s3://bucket/some/prefix`) by its
 * SHA-256, so that any mesh with read access can activate it and the same build is stored once.
 * The tar is made the same way every time (sorted names, one mtime, no owners), so an unchanged
 * build has the same name and is not sent twice.
 */
export async function uploadBuild(outdir: string, prefix: string): Promise<UploadedBuild> {
  const archive = Buffer.from(
    await tar
      .c({ gzip: true, cwd: outdir, portable: true, mtime: new Date(0) }, (await readdir(outdir)).sort())
      .concat(),
  );
  const sha256 = createHash("sha256").update(archive).digest("hex");
  const { bucket, key: prefixKey } = s3Location(prefix);
  const location = { bucket, key: posix.join(prefixKey, `${sha256}.tar.gz`) };
  const client = await s3Client();
  const { PutObjectCommand } = await s3Sdk();
  try {
    // If-None-Match: an archive already there has these bytes (its name is their digest).
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: location.key,
        Body: archive,
        ContentType: "application/gzip",
        IfNoneMatch: "*",
      }),
    );
  } catch (error) {
    const exists = s3Status(error) === 412;
    if (!exists) throw new Error(`could not upload the build: ${s3Problem(error, location)}`);
  } finally {
    client.destroy();
  }
  return { source: `s3://${bucket}/${location.key}`, sha256 };
}
