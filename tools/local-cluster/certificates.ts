import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { CA_FILE, clusterTlsFiles } from "../../control/cluster/tls.ts";

/**
 * Certificates for the local cluster, made with the system's openssl: a CA of its own, and for
 * each node a certificate whose CN is the node's name (what its peers' `allowed-subject-names`
 * match), valid as server and as client. The CA's key stays in the cluster's dir, outside every
 * node's data dir.
 */

const CA_KEY_FILE = "ca-key.pem";
const CA_DAYS = "3650";
const NODE_DAYS = "825";
/** P-256 keys: small, quick to make, and what rustls (restate-server's TLS) takes. */
const KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"];

const openssl = (...args: string[]) => execa("openssl", args);

/** A new CA in `caDir`: `ca.pem` and its key. */
export async function makeCa(caDir: string, name: string): Promise<void> {
  await mkdir(caDir, { recursive: true, mode: 0o700 });
  await openssl(
    "req",
    "-x509",
    ...KEY_ARGS,
    "-keyout",
    join(caDir, CA_KEY_FILE),
    "-out",
    join(caDir, CA_FILE),
    "-days",
    CA_DAYS,
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
}

/**
 * A certificate for node `name` at `address` signed by the CA in `caDir`, written with the CA's
 * certificate into `tlsDir` under the names a node reads (tls.ts).
 */
export async function makeNodeCertificate(caDir: string, name: string, address: string, tlsDir: string): Promise<void> {
  const files = clusterTlsFiles(tlsDir);
  await mkdir(tlsDir, { recursive: true, mode: 0o700 });
  await openssl(
    "req",
    "-x509",
    ...KEY_ARGS,
    "-CA",
    join(caDir, CA_FILE),
    "-CAkey",
    join(caDir, CA_KEY_FILE),
    "-keyout",
    files.key,
    "-out",
    files.cert,
    "-days",
    NODE_DAYS,
    "-subj",
    `/CN=${name}`,
    "-addext",
    `subjectAltName=DNS:${name},IP:${address}`,
    "-addext",
    "extendedKeyUsage=serverAuth,clientAuth",
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-addext",
    "keyUsage=critical,digitalSignature",
  );
  await copyFile(join(caDir, CA_FILE), files.ca);
}
