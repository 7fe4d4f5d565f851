/**
 * workerd's config in Cap'n Proto's text format, which `workerd serve` reads as it reads the
 * binary one (it compiles its own schema, `/workerd/workerd.capnp`, built in).
 *
 * Written by hand, on purpose: the one library that writes workerd's config, miniflare's
 * `serializeConfig`, comes only with the whole of miniflare, which holds about 115 MB resident in
 * every process that imports it (the supervisor's node agent and the deployer's proofs both
 * write configs). The text format needs only structs, lists, text, numbers, booleans and enums.
 */

/** An enumerant, written as its bare name (e.g. `unwrapKey`), where a text would be quoted. */
export class CapnpEnum {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

export type CapnpValue =
  | string
  | number
  | boolean
  | CapnpEnum
  | readonly CapnpValue[]
  | { readonly [field: string]: CapnpValue | undefined };

/** Cap'n Proto's text escapes: C's, with every other control character as `\xHH`. */
const ESCAPES: Record<string, string> = { "\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function text(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point
  const escaped = value.replace(/[\\"\u0000-\u001f\u007f]/g, (char) => {
    return ESCAPES[char] ?? `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
  return `"${escaped}"`;
}

/** One value as a text-format literal; fields left undefined are left out, as unset. */
export function capnpLiteral(value: CapnpValue): string {
  if (typeof value === "string") return text(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value instanceof CapnpEnum) return value.name;
  if (Array.isArray(value)) return `[${value.map(capnpLiteral).join(", ")}]`;
  const fields = Object.entries(value as Record<string, CapnpValue | undefined>).flatMap(([field, fieldValue]) =>
    fieldValue === undefined ? [] : [`${field} = ${capnpLiteral(fieldValue)}`],
  );
  return `(${fields.join(", ")})`;
}

/** A config file `workerd serve` reads: one constant of workerd's `Config` type. */
export function workerdConfigFile(config: CapnpValue): string {
  return `using Workerd = import "/workerd/workerd.capnp";\n\nconst config :Workerd.Config = ${capnpLiteral(config)};\n`;
}
