import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { BundleError } from "../domain/errors.ts";
import { waitForDiscovery } from "./registration.ts";

let server: Server;
let base: string;
const timers = new Set<NodeJS.Timeout>();

/** `/trickle/discover` sends a manifest's headers, then a byte every 100 ms; `/silent/discover` never answers. */
beforeAll(async () => {
  server = createServer((request, response) => {
    if (!request.url?.startsWith("/trickle/")) return;
    response.writeHead(200, { "content-type": "application/vnd.restate.endpointmanifest.v3+json" });
    const timer = setInterval(() => response.write(" "), 100);
    timers.add(timer);
    response.on("close", () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  for (const timer of timers) clearInterval(timer);
  server.closeAllConnections();
  server.close();
});

test.each([
  ["sends its headers, then trickles its body", "trickle", /HTTP 200 came, but not its whole body within/],
  ["never answers", "silent", /no answer within/],
])("discovery that %s ends at its deadline with a BundleError of the given status", async (_, path, reason) => {
  const started = Date.now();
  const waiting = waitForDiscovery(`${base}/${path}`, {}, { timeoutMs: 1_000, status: 400 });
  await expect(waiting).rejects.toBeInstanceOf(BundleError);
  await expect(waiting).rejects.toMatchObject({ status: 400, message: expect.stringMatching(reason) });
  await expect(waiting).rejects.toThrow(/did not answer Restate discovery at \S+\/discover within 1 s/);
  // The deadline, plus one poll interval at most: never the length of the trickle.
  expect(Date.now() - started).toBeLessThan(1_500);
});
