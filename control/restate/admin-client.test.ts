import { expect, test } from "vitest";
import { AdminClient } from "./admin-client.ts";

// Nothing listens there: a refusal must come before any request is sent.
const admin = new AdminClient({ socketPath: "/nonexistent/admin.sock" });

test.each(["dp_1' OR '1'='1", "dp_1; DROP TABLE x", "inv_123", "", "dp_"])(
  "the deployment id %j never reaches Restate's SQL",
  async (id) => {
    await expect(admin.observeDeployment(id)).rejects.toThrow(/not a deployment id/);
    await expect(admin.hasDeployment(id)).rejects.toThrow(/not a deployment id/);
    await expect(admin.pausedOn(["dp_ok1", id])).rejects.toThrow(/not a deployment id/);
  },
);

test.each(["http://x/'; --", "http://x/\\"])("the uri prefix %j never reaches Restate's SQL", async (prefix) => {
  await expect(admin.runningUnder(prefix)).rejects.toThrow(/not a plain SQL string/);
});

test("a well-formed id is sent on (and here fails to connect)", async () => {
  await expect(admin.hasDeployment("dp_15TcG1wVP14pQnshxTw31Sx")).rejects.toThrow(/ENOENT|connect/);
});

test.each(["inv_1' OR '1'='1", "dp_123", "", "inv_1 --"])(
  "the invocation id %j never reaches Restate's SQL",
  async (id) => {
    await expect(admin.journal(id)).rejects.toThrow(/not an invocation id/);
  },
);
