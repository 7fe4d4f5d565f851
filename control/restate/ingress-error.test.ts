import { HttpCallError } from "@restatedev/restate-sdk-clients";
import { expect, test } from "vitest";
import { callFailure, ingressMessage } from "./ingress-error.ts";

test("a terminal error's message is taken from Restate's JSON body", () => {
  const body = '{"code":409,"message":"build 1-a is active","source":"invocation"}';
  expect(ingressMessage(body)).toBe("build 1-a is active");
  expect(callFailure(new HttpCallError(409, body, `Request failed: 409\n${body}`))).toBe("build 1-a is active");
});

test("a body without a message leaves the error's own text", () => {
  expect(ingressMessage("<html>bad gateway</html>")).toBeUndefined();
  expect(callFailure(new HttpCallError(502, "<html>", "Request failed: 502"))).toBe("Request failed: 502");
  expect(callFailure(new Error("fetch failed"))).toBe("fetch failed");
  expect(callFailure("odd")).toBe("odd");
});
