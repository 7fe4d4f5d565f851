/**
 * Text from a build or a user (names, messages, errors, anything the deployer answers), made
 * inert for a terminal: every control character (C0 with ESC, BEL, backspace, CR and newline,
 * DEL, C1 with its one-byte CSI and OSC) and every Unicode bidi control is shown escaped, the way
 * JSON writes it (`\u001b`, `\n`), so nothing in it can move the cursor, recolour, retitle the
 * window, write the clipboard (OSC 52) or reorder what is shown, and the reader still sees that
 * something was there. Libraries like strip-ansi delete known sequences instead (a lone CR or
 * BEL stays, and the reader never learns), and jsesc escapes every non-ASCII letter too.
 */

/** Control characters (Unicode's Cc: C0, DEL, C1), bidi marks, embeddings, overrides and isolates, line separators. */
const UNSAFE = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
const SHORT: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };

/** One value, on one line: every unsafe character escaped, newlines too. */
export function inert(text: string): string {
  return text.replace(UNSAFE, (char) => SHORT[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A whole block of output: each of its lines made inert, the line breaks kept. */
export function inertLines(text: string): string {
  return text.split("\n").map(inert).join("\n");
}
