import { execa } from "execa";
import { expect, test } from "vitest";
import { shellCommand } from "./components.ts";

/** runit's run scripts `eval "exec $(...)"` this line, so every word must survive a shell as it is. */
test("shellCommand's line gives the shell exactly the spec's words and environment", async () => {
  const tricky = ["plain", "two words", "it's", '"quoted"', "$HOME", "`id`", "a\\b", "*", "line\nbreak", ""];
  const line = shellCommand({
    name: "probe",
    file: "/bin/sh",
    args: ["-c", 'printf "%s|" "$@"; printf "%s" "$TRICKY"', "sh", ...tricky],
    env: { TRICKY: "x'; rm -rf / #$(id)" },
  });
  // As the run scripts do it, with the line in a variable instead of `$(node control/main.ts command C)`.
  const { stdout } = await execa("/bin/sh", ["-c", 'eval "exec $LINE"'], { env: { LINE: line } });
  expect(stdout).toBe(`${tricky.join("|")}|x'; rm -rf / #$(id)`);
});

test("a child given its env only (workerd) sees none of ours", async () => {
  const line = shellCommand({
    name: "probe",
    file: "/bin/sh",
    args: ["-c", "env"],
    env: { PATH: "/usr/bin:/bin" },
    envOnly: true,
  });
  const { stdout } = await execa("/bin/sh", ["-c", 'eval "exec $LINE"'], { env: { LINE: line, OURS: "secret" } });
  expect(stdout).toContain("PATH=/usr/bin:/bin");
  expect(stdout).not.toContain("OURS");
  expect(stdout).not.toContain("LINE");
});
