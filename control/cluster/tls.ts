import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ClusterMembership } from "./peers.ts";

/**
 * Node-to-node mutual TLS: every node's restate-server takes only TLS on its node port, and only
 * from a client whose certificate the cluster's CA signed for one of the peers' names (Restate's
 * `[tls]`, since 1.7.3). These are the files a node needs, in GRIDIRON_CLUSTER_TLS_DIR.
 */
export interface ClusterTlsFiles {
  /** The cluster's CA certificate: the one issuer every node trusts. */
  ca: string;
  /** This node's certificate, its common name the node's name; it is both server and client. */
  cert: string;
  key: string;
}

export const CA_FILE = "ca.pem";
const CERT_FILE = "node.pem";
const KEY_FILE = "node-key.pem";

export function clusterTlsFiles(dir: string): ClusterTlsFiles {
  return { ca: join(dir, CA_FILE), cert: join(dir, CERT_FILE), key: join(dir, KEY_FILE) };
}

/**
 * Checks at start what restate-server would otherwise refuse with a less helpful message, or not
 * at all until a peer hangs up on it: the files are there, the certificate is this node's, the CA
 * signed it, and it is valid now.
 */
export async function checkClusterTls(files: ClusterTlsFiles, cluster: ClusterMembership): Promise<void> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch {
      throw new Error(
        `a cluster node needs ${what} at ${path} for node-to-node mutual TLS (GRIDIRON_CLUSTER_TLS_DIR; see Cluster in the README)`,
      );
    }
  };
  const ca = new X509Certificate(await read(files.ca, "the cluster's CA certificate"));
  const cert = new X509Certificate(await read(files.cert, "this node's certificate"));
  await read(files.key, "this node's private key");
  const name = cert.subject.match(/^CN=(.*)$/m)?.[1];
  if (name !== cluster.self.name) {
    throw new Error(
      `${files.cert} is for "${name ?? cert.subject}", not for this node "${cluster.self.name}": its peers would refuse it`,
    );
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new Error(`${files.cert} is not signed by the cluster's CA ${files.ca}: its peers would refuse it`);
  }
  const now = Date.now();
  if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) {
    throw new Error(`${files.cert} is valid from ${cert.validFrom} to ${cert.validTo}, not now`);
  }
}

/** restatectl's flags to reach a node port that takes only mutual TLS, as this node. */
export function restatectlTlsArgs(files: ClusterTlsFiles): string[] {
  return ["--tls-ca", files.ca, "--tls-cert", files.cert, "--tls-key", files.key];
}
