import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { keywords } from "../../src/syntax/tokens.js";
import { PolicyParser } from "../../src/syntax/parser.js";
import { diagramsHtml } from "../../scripts/grammar.js";
import { settingNames } from "../../src/model/build.js";

const root = new URL("../../", import.meta.url).pathname;
const read = (p: string) => readFileSync(root + p, "utf8");
const lexerKeywords = keywords.map((k) => String(k.PATTERN).replace(/\//g, ""));

test("Chevrotain's grammar checks pass (the CLI's parser skips them for start-up time)", () => {
  expect(() => new PolicyParser({ validate: true })).not.toThrow();
});

test("the EBNF's keywords are exactly the lexer's", () => {
  const ebnf = read("grammar/policy.ebnf").replace(/\(\*[\s\S]*?\*\)/g, "");
  const quoted = new Set([...ebnf.matchAll(/"([a-z]+)"/g)].map((m) => m[1]!));
  expect([...quoted].sort()).toEqual([...lexerKeywords].sort());
});

test("the EBNF lists every block's settings as the model builder knows them", () => {
  const ebnf = read("grammar/policy.ebnf");
  for (const [block, names] of Object.entries(settingNames)) {
    const line = ebnf.split("\n").find((l) => l.trim().startsWith(`${block}:`));
    expect(line, block).toBeDefined();
    expect(line!.split(":")[1]!.trim().split(/\s+/).filter((w) => w !== "*)").sort()).toEqual([...names].sort());
  }
});

test("the TextMate grammar highlights every keyword and setting", () => {
  const tm = read("grammar/dockwall.tmLanguage.json");
  for (const k of [...lexerKeywords, ...Object.values(settingNames).flat()]) expect(tm, k).toContain(k);
});

test("the railroad diagrams are up to date (npm run grammar)", () => {
  expect(read("grammar/diagrams.html")).toBe(diagramsHtml());
});
