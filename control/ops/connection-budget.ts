import type { IncomingMessage, Server } from "node:http";
import type { Socket } from "node:net";

/**
 * What a connection to the ops port is doing: `waiting` for its first request's headers,
 * `idle` between requests, `busy` with a request that is not a probe, or answering a `probe`.
 */
export type Use = "waiting" | "idle" | "busy" | "probe";

/** The order in which connections give way to a new one; a probe being answered never does. */
const GIVES_WAY: Use[] = ["waiting", "idle", "busy"];

/**
 * A fixed number of connections, in which a new connection always finds room unless every one
 * is answering a probe: when all are taken, the one that has waited longest without sending a
 * request gives way (then the longest idle, then the oldest non-probe request). A client that
 * opens connections and trickles or withholds its headers (slowloris) therefore only ever evicts
 * its own sockets, while a probe, which sends its request at once and is answered from a cache,
 * finishes long before its connection's turn to give way comes. Node's `maxConnections`, which
 * refuses the newcomer instead, let 80 slow sockets shut out every probe.
 */
export class ConnectionBudget<Key = Socket> {
  /** In the order they entered their current use, oldest first. */
  private readonly uses = new Map<Key, Use>();

  private readonly max: number;
  private readonly evict: (key: Key) => void;

  constructor(max: number, evict: (key: Key) => void) {
    this.max = max;
    this.evict = evict;
  }

  /** A new connection: true if it may stay, after evicting another one if the budget is spent. */
  admit(key: Key): boolean {
    if (this.uses.size >= this.max && !this.evictOne()) return false;
    this.uses.set(key, "waiting");
    return true;
  }

  /** Marks what a connection does now; a connection no longer tracked is left alone. */
  mark(key: Key, use: Use): void {
    if (!this.uses.delete(key)) return;
    this.uses.set(key, use);
  }

  release(key: Key): void {
    this.uses.delete(key);
  }

  private evictOne(): boolean {
    for (const use of GIVES_WAY) {
      for (const [key, current] of this.uses) {
        if (current !== use) continue;
        this.uses.delete(key);
        this.evict(key);
        return true;
      }
    }
    return false;
  }
}

/**
 * Puts `server`'s connections under a budget of `max`, telling probes (by `isProbe`) from other
 * requests. Replaces `server.maxConnections`, which must stay unset.
 */
export function budgetConnections(
  server: Server,
  max: number,
  isProbe: (request: IncomingMessage) => boolean,
): ConnectionBudget {
  const budget = new ConnectionBudget<Socket>(max, (socket) => socket.destroy());
  server.on("connection", (socket: Socket) => {
    if (!budget.admit(socket)) {
      socket.destroy();
      return;
    }
    socket.once("close", () => budget.release(socket));
  });
  server.on("request", (request: IncomingMessage, response) => {
    const socket = request.socket;
    budget.mark(socket, isProbe(request) ? "probe" : "busy");
    response.once("finish", () => budget.mark(socket, "idle"));
  });
  return budget;
}
