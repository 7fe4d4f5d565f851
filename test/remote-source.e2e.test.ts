import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import * as tar from "tar";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { emptyFiles, tarOf, withUncompressedSize } from "./archives.ts";
import { buildWorker, useTestMesh } from "./mesh.ts";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/**
 * https:// sources: a local HTTPS server with a throwaway certificate authority the mesh trusts
 * (NODE_EXTRA_CA_CERTS) serves archives of real builds, and some that must be refused.
 */
describe("activating from https:// archives", () => {
  const certDir = join(tmpdir(), `gridiron-https-${process.pid}`);
  let server: Server;
  let base: string;
  const archives = new Map<string, Buffer>();

  // Before the mesh starts (hooks run in order), since the mesh must trust the certificate.
  beforeAll(async () => {
    await mkdir(certDir, { recursive: true });
    await execa("openssl", [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
      ...["-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem")],
      ...["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
    ]);
    await buildWorker("greeter", join(certDir, "greeter"));
    const counter = fileURLToPath(await buildWorker("counter", join(certDir, "counter")));
    const tgz = async (cwd: string, entries: string[]) =>
      Buffer.from(await tar.c({ gzip: true, cwd, portable: true }, entries).concat());
    archives.set("/greeter.tgz", await tgz(certDir, ["greeter"]));
    await execa("zip", ["-qr", join(certDir, "counter.zip"), "."], { cwd: counter });
    archives.set("/counter.zip", await readFile(join(certDir, "counter.zip")));
    // Both its headers say index.js is 10 bytes: extract-zip once waited on it forever.
    archives.set("/under-stated.zip", withUncompressedSize(archives.get("/counter.zip") as Buffer, "index.js", 10));
    // 20,000 empty files in 140 kB: unpacking them before counting took seconds (200,000: 91 s).
    archives.set("/many-files.tgz", tarOf(emptyFiles(20_000)));
    const linked = join(certDir, "linked");
    await mkdir(linked, { recursive: true });
    await writeFile(join(linked, "index.js"), "export default {};");
    await symlink("/etc/passwd", join(linked, "passwd.txt"));
    archives.set("/link.tgz", await tgz(linked, ["index.js", "passwd.txt"]));
    archives.set("/not-an-archive", Buffer.from("hello"));

    server = createServer(
      { key: await readFile(join(certDir, "key.pem")), cert: await readFile(join(certDir, "cert.pem")) },
      (request, response) => {
        const archive = archives.get(request.url ?? "");
        if (archive) return void response.end(archive);
        if (request.url === "/big") return void response.end(Buffer.alloc(4 * 1024 * 1024));
        if (request.url === "/big-unannounced") {
          // Chunked, no content-length: the limit must hold while reading.
          for (let i = 0; i < 8; i++) response.write(Buffer.alloc(512 * 1024));
          return void response.end();
        }
        if (request.url === "/silent") return; // never answers
        // Redirects a hostile source could send: to the ops port's metrics over plain http, and
        // to loopback over https (to an archive with the right sha256, even).
        if (request.url === "/to-metrics") {
          return void response
            .writeHead(302, { location: `http://127.0.0.1:${fx.mesh.settings.ports.ops}/metrics` })
            .end();
        }
        if (request.url === "/to-self") return void response.writeHead(302, { location: `${base}/greeter.tgz` }).end();
        response.writeHead(404).end();
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 240_000);

  const fx = useTestMesh(
    {},
    {
      NODE_EXTRA_CA_CERTS: join(certDir, "cert.pem"),
      GRIDIRON_MAX_BUNDLE_MB: "3",
      GRIDIRON_FETCH_TIMEOUT_SECONDS: "2",
    },
  );

  afterAll(async () => {
    server?.closeAllConnections();
    server?.close();
    await rm(certDir, { recursive: true, force: true });
  });

  const activate = (name: string, path: string, hash: string) =>
    fx.ingress.call(`deployer/${name}/activate`, { source: `${base}${path}`, sha256: hash, version: "1.0.0" });

  test("a tar.gz and a zip with the right sha256 are activated and serve", async () => {
    await activate("greeter", "/greeter.tgz", sha256(archives.get("/greeter.tgz") as Buffer));
    await activate("counter", "/counter.zip", sha256(archives.get("/counter.zip") as Buffer));
    expect(await fx.ingress.call("greeter/greet", "https")).toMatch(/^Hello, https! /);
    expect(await fx.ingress.call("counter/https/add")).toBe(1);
    expect(await readdir(fx.mesh.settings.downloadsDir)).toEqual([]);
  });

  const greeterHash = () => sha256(archives.get("/greeter.tgz") as Buffer);

  test.each([
    ["a wrong sha256", "/greeter.tgz", "0".repeat(64), /does not have the expected sha256 0{64}$/],
    ["an archive over the size limit", "/big", "0".repeat(64), /4\.0 MB, over the limit of 3\.0 MB/],
    ["an unannounced body over the size limit", "/big-unannounced", "0".repeat(64), /more than the limit of 3\.0 MB/],
    ["a server that never answers", "/silent", "0".repeat(64), /no answer within 2 s/],
    ["a missing file", "/gone.tgz", "0".repeat(64), /answered HTTP 404/],
    ["a file that is no archive", "/not-an-archive", "", /not a tar, tar\.gz or zip/],
    ["an archive holding a symbolic link", "/link.tgz", "", /passwd\.txt is a link/],
    [
      "a redirect to the ops port's /metrics over plain http",
      "/to-metrics",
      "0".repeat(64),
      /redirects to http:\/\/127\.0\.0\.1:\d+\/metrics, a downgrade from https to plain http$/,
    ],
    [
      "a redirect to loopback over https",
      "/to-self",
      "greeter",
      /redirects to https:\/\/127\.0\.0\.1:\d+\/greeter\.tgz, a loopback, link-local or private address/,
    ],
    ["a zip whose headers under-state a size", "/under-stated.zip", "", /too many bytes in the stream\. expected 10\./],
    ["an archive of 20,000 empty files", "/many-files.tgz", "", /holds more than 1001 entries/],
  ])("%s is refused with a 400, within seconds, and changes nothing", async (_, path, given, message) => {
    const before = await fx.ingress.call("deployer/refused/status");
    const hash = given === "greeter" ? greeterHash() : given || sha256(archives.get(path) as Buffer);
    const started = performance.now();
    const error = await activate("refused", path, hash).then(
      () => expect.fail("activated"),
      (thrown: unknown) => thrown as Error,
    );
    const elapsedMs = performance.now() - started;
    expect(error).toMatchObject({ status: 400 });
    expect(error.message).toMatch(message);
    // No digest but the one given: not what was fetched (the ops port's metrics, say).
    expect(error.message.replaceAll(hash, "")).not.toMatch(/[0-9a-f]{64}/i);
    console.log(`${path}: refused in ${Math.round(elapsedMs)} ms`);
    expect(elapsedMs).toBeLessThan(5_000);
    expect(await fx.ingress.call("deployer/refused/status")).toEqual(before);
    expect(await readdir(join(fx.mesh.settings.bundlesDir, "refused")).catch(() => [])).toEqual([]);
    expect(await readdir(fx.mesh.settings.downloadsDir).catch(() => [])).toEqual([]);
  });
});
