import * as restate from "@restatedev/restate-sdk";
import { expect, test } from "vitest";
import { BundleError, UserError } from "../domain/errors.ts";
import { AdminRefused } from "../restate/admin-client.ts";
import { asTerminalError } from "./error-policy.ts";

test.each([
  [new UserError("bad name"), 400],
  [new UserError("not yours", 409), 409],
  [new BundleError("no main module"), 400],
  [new AdminRefused("Restate refused the schema change", 409), 409],
])("%s is terminal with its status", (error, status) => {
  const terminal = asTerminalError(error);
  expect(terminal).toBeInstanceOf(restate.TerminalError);
  expect(terminal).toMatchObject({ message: error.message, code: status });
});

test.each([new Error("ECONNREFUSED"), new TypeError("fetch failed"), "a string"])(
  "%s is left to Restate to retry",
  (error) => expect(asTerminalError(error)).toBeUndefined(),
);
