import type { Server } from "node:http";

/** Stops listening and ends open connections too: a client's keep-alive must not hold up a stop. */
export function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}
