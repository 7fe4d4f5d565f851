import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import getPort from "get-port";
import { expect, test } from "vitest";
import { waitFor } from "../../wait.ts";
import { binaries } from "../binaries.ts";
import { CapnpEnum, capnpLiteral, workerdConfigFile } from "./capnp-text.ts";

test("structs, lists, enums and escaped text; unset fields left out", () => {
  const literal = capnpLiteral({
    name: 'a "b"\\c\n\t\u0001é',
    list: [1, true, new CapnpEnum("unwrapKey")],
    empty: {},
    unset: undefined,
  });
  expect(literal).toBe('(name = "a \\"b\\"\\\\c\\n\\t\\x01é", list = [1, true, unwrapKey], empty = ())');
});

test("workerd reads a config written so, text as it was given", async () => {
  const dir = await mkdtemp(join(tmpdir(), "capnp-text-"));
  const port = await getPort();
  const tricky = 'quotes " backslash \\ newline \n tab \t bell \u0007 del \u007f unicode é ✓ $ {}';
  const config = workerdConfigFile({
    services: [
      {
        name: "main",
        worker: {
          compatibilityDate: "2025-01-01",
          modules: [{ name: "main.js", esModule: "export default { fetch: (_r, env) => new Response(env.T) };" }],
          bindings: [{ name: "T", text: tricky }],
        },
      },
    ],
    sockets: [{ name: "http", address: `127.0.0.1:${port}`, http: {}, service: { name: "main" } }],
  });
  await writeFile(join(dir, "config.capnp"), config);
  const workerd = execa(binaries.workerd(), ["serve", join(dir, "config.capnp")], { reject: false });
  try {
    let body = "";
    await waitFor(
      "workerd",
      async () => {
        body = await (await fetch(`http://127.0.0.1:${port}/`)).text();
        return true;
      },
      10_000,
    );
    expect(body).toBe(tricky);
  } finally {
    workerd.kill("SIGKILL");
    await workerd;
    await rm(dir, { recursive: true, force: true });
  }
}, 30_000);
