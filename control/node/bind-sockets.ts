import type { SendHandle } from "node:child_process";
import { createServer, type Server } from "node:net";

/**
 * Run by cell-sockets.ts as a child with an IPC channel: binds each `host:port` given as JSON in
 * argv[2], sends the listening handle of each back over the channel, one message per address in
 * order, then exits. Only a raw handle crosses unlistened: the parent holds the socket without
 * accepting on it. Nothing connects before the parent starts Restate, so this process accepts
 * nothing either in the moment it holds them.
 */

interface Address {
  host: string;
  port: number;
}

const addresses = JSON.parse(process.argv[2] ?? "[]") as Address[];

function bind({ host, port }: Address): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (error) =>
      reject(new Error(`workerd's address ${host}:${port} is not free: ${error.message}`)),
    );
    server.listen({ host, port }, () => resolve(server));
  });
}

try {
  const servers = await Promise.all(addresses.map(bind));
  for (const server of servers) {
    // `_handle` is the listening socket itself; sent as such it arrives as a bare handle (Node's
    // 'net.Native'), where a Server would arrive listening, accepting in the parent.
    // Node's types take only a Server or Socket as the handle to send, not its `_handle`.
    const { _handle: handle } = server as unknown as { _handle: SendHandle };
    await new Promise<void>((resolve, reject) =>
      process.send?.("socket", handle, (error: Error | null) => (error ? reject(error) : resolve())),
    );
  }
  process.exit(0);
} catch (error) {
  process.send?.({ error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}
