import { expect, test } from "vitest";
import { parseSecretsFile } from "./secret.ts";

test("a bulk file is a JSON object of strings, or .env lines", () => {
  expect(parseSecretsFile("s.json", '{"A": "1", "B": "two words"}')).toEqual({ A: "1", B: "two words" });
  expect(parseSecretsFile("s.env", '# a comment\nA=1\nexport B="two words"\n')).toEqual({ A: "1", B: "two words" });
  expect(() => parseSecretsFile("s.json", '{"A": 1}')).toThrow(/an object of strings/);
  expect(() => parseSecretsFile("s.json", "{nope")).toThrow(/not valid JSON/);
  expect(() => parseSecretsFile("s.env", "# nothing\n")).toThrow(/no NAME=value line/);
});
