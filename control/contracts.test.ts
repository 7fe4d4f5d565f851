import { expect, test } from "vitest";
import { buildKey, buildPath, parseBuildKey } from "./contracts.ts";

const build = { name: "greeter", buildId: "1.0.0+dirty-0123456789ab" };

test("a build key is name@buildId and parses back", () => {
  expect(buildKey(build)).toBe("greeter@1.0.0+dirty-0123456789ab");
  expect(parseBuildKey(buildKey(build))).toEqual(build);
});

test("what is not a build key parses to undefined", () => {
  for (const key of ["greeter", "@1.0.0-a", "greeter@", ""]) expect(parseBuildKey(key)).toBeUndefined();
});

test("a build's path is name/buildId", () => expect(buildPath(build)).toBe("greeter/1.0.0+dirty-0123456789ab"));
