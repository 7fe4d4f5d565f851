import { connect, createServer } from "node:net";
import { execa } from "execa";
import getPort from "get-port";
import { expect, test } from "vitest";
import { holdCellSockets } from "./cell-sockets.ts";
import { execaFds } from "./child-fds.ts";

const oneCell = async () => ({ cells: 1, ports: { workerd: await getPort({ host: "127.0.0.1" }) } });

test("a cell's socket is held unaccepted: a child given its fd accepts the connection made meanwhile", async () => {
  const settings = await oneCell();
  const [fd = -1] = await holdCellSockets(settings);
  const reply = new Promise<string>((resolve, reject) => {
    const socket = connect(settings.ports.workerd, "127.0.0.1");
    socket.once("data", (data) => resolve(data.toString()));
    socket.once("error", reject);
  });
  // Accepts on its fd 3 and answers once: it, not this process, took the connection.
  const child = `require("net").createServer((s) => s.end("from the child", () => process.exit(0))).listen({ fd: 3 });`;
  const accepting = execa(process.execPath, ["-e", child], {
    stdio: ["ignore", "inherit", "inherit", ...execaFds([fd, "ignore"])],
  });
  expect(await reply).toBe("from the child");
  await accepting;
});

test("an address already taken is a clear error", async () => {
  const settings = await oneCell();
  const taken = createServer().listen(settings.ports.workerd, "127.0.0.1");
  await new Promise((resolve) => taken.once("listening", resolve));
  try {
    await expect(holdCellSockets(settings)).rejects.toThrow(/workerd's address 127\.0\.0\.1:\d+ is not free/);
  } finally {
    taken.close();
  }
});
