/** `text` parsed as JSON, or `otherwise` when it is not JSON: for bodies a schema checks next. */
export function jsonOr(text: string, otherwise: unknown): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return otherwise;
  }
}
