import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeCa, makeNodeCertificate } from "../../tools/local-cluster/certificates.ts";
import { parseMembership } from "./peers.ts";
import { checkClusterTls, clusterTlsFiles } from "./tls.ts";

const membership = (self: string) => {
  const parsed = parseMembership("n1=10.0.0.1,n2=10.0.0.2", self);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed;
};

describe("a cluster node's TLS files, as the local cluster makes them", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "gridiron-tls-"));
    await makeCa(join(dir, "ca"), "test-ca");
    await makeCa(join(dir, "other-ca"), "other-ca");
    await makeNodeCertificate(join(dir, "ca"), "n1", "10.0.0.1", join(dir, "n1"));
    await makeNodeCertificate(join(dir, "other-ca"), "n1", "10.0.0.1", join(dir, "foreign"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("are this node's, signed by the cluster's CA", async () => {
    await expect(checkClusterTls(clusterTlsFiles(join(dir, "n1")), membership("n1"))).resolves.toBeUndefined();
  });

  it("are refused at start when missing, for another node, or signed by another CA", async () => {
    await expect(checkClusterTls(clusterTlsFiles(join(dir, "none")), membership("n1"))).rejects.toThrow(
      /needs the cluster's CA certificate at .*none\/ca\.pem.*GRIDIRON_CLUSTER_TLS_DIR/,
    );
    await expect(checkClusterTls(clusterTlsFiles(join(dir, "n1")), membership("n2"))).rejects.toThrow(
      /is for "n1", not for this node "n2"/,
    );
    // The foreign CA's node certificate beside the cluster's CA.
    await copyFile(join(dir, "ca", "ca.pem"), join(dir, "foreign", "ca.pem"));
    await expect(checkClusterTls(clusterTlsFiles(join(dir, "foreign")), membership("n1"))).rejects.toThrow(
      /not signed by the cluster's CA/,
    );
  });
});
