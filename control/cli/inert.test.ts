import { expect, test } from "vitest";
import { inert, inertLines } from "./inert.ts";

// What the attack wrote: a window title (OSC 0), the clipboard (OSC 52), a cleared screen
// (CSI), a fake line drawn after a carriage return, a bell and backspaces.
const ATTACK =
  "\u001b]0;owned\u0007\u001b]52;c;cm0gLXJmIH4=\u0007\u001b[2J\u001b[H\r✓ activated\u0008\u0008\u007f\u009b31m";

test("every escape sequence and control character is shown escaped, JSON-style", () => {
  expect(inert(ATTACK)).toBe(
    "\\u001b]0;owned\\u0007\\u001b]52;c;cm0gLXJmIH4=\\u0007\\u001b[2J\\u001b[H\\r✓ activated\\b\\b\\u007f\\u009b31m",
  );
  expect(inert(ATTACK)).not.toMatch(/\p{Cc}/u);
  expect(inert("two\nlines\tand\fa feed")).toBe("two\\nlines\\tand\\fa feed");
});

test("bidi overrides and isolates, which reorder what a terminal shows, are escaped", () => {
  expect(inert("abc\u202edcba\u2066x\u2069\u200f")).toBe("abc\\u202edcba\\u2066x\\u2069\\u200f");
});

test("ordinary text, accents, other scripts and emoji are left as they are", () => {
  const text = "café – 日本語 – ✓ done 🚀 (v1.0.0-abc) \\u001b stays literal";
  expect(inert(text)).toBe(text);
});

test("inertLines keeps the line breaks of a block and escapes everything else in each line", () => {
  expect(inertLines("a \u001b[31mred\u001b[0m\nb\r\n")).toBe("a \\u001b[31mred\\u001b[0m\nb\\r\n");
});
