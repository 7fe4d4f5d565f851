import { HttpCallError } from "@restatedev/restate-sdk-clients";
import { callFailure } from "../restate/ingress-error.ts";

/** What went wrong, as the user reads it: the deployer's own terminal message when there is one, not a stack. */
export function describe(error: unknown): string {
  if (error instanceof HttpCallError) return `${callFailure(error)} (HTTP ${error.status})`;
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: string; address?: string; port?: number } | undefined;
  if (cause?.code === "ECONNREFUSED") {
    const where = cause.address ? ` at ${cause.address}:${cause.port}` : "";
    return `no mesh${where}: nothing answers there; start one with \`npm start\`, or say where it is with GRIDIRON_INGRESS_URL and GRIDIRON_ADMIN_URL (see \`gridiron mesh\`)`;
  }
  return error.message;
}
