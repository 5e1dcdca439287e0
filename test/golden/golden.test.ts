// Golden files next to their inputs. For each test/golden/<case>/policy.dw: the model
// the parser builds (model.json), the diagnostics (stderr.txt) and every output format.
// For each examples/<name>.dw: its outputs beside it (<name>.ferm, .v4, .v6), so a reader
// of the examples sees what they compile to.
// DOCKWALL_UPDATE_GOLDEN=1 (npm run golden:update) rewrites them; nothing else does: a
// missing or different golden fails, with the output written beside it as <name>.actual.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { describe, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { modelJson } from "../support/model-json.js";

const update = process.env.DOCKWALL_UPDATE_GOLDEN === "1";
const root = new URL("../../", import.meta.url).pathname;

function golden(path: string, actual: string): void {
  if (update) {
    writeFileSync(path, actual);
    rmSync(`${path}.actual`, { force: true });
    return;
  }
  const expected = existsSync(path) ? readFileSync(path, "utf8") : undefined;
  if (expected === actual) {
    rmSync(`${path}.actual`, { force: true });
    return;
  }
  // Never approved by the test itself: the output goes beside the golden for a person to compare.
  writeFileSync(`${path}.actual`, actual);
  if (expected === undefined) throw new Error(`${path} is missing; the output is in ${path}.actual — review it, then npm run golden:update`);
  expect(actual, `${path} differs; the output is in ${path}.actual (npm run golden:update if the change is intended)`).toBe(expected);
}

function outputs(text: string, file: string) {
  const ferm = compile(text, { format: "ferm", file });
  return {
    ferm,
    v4: compile(text, { format: "iptables", file }),
    v6: compile(text, { format: "ip6tables", file }),
  };
}

const caseDir = join(root, "test/golden");
const cases = readdirSync(caseDir).filter((d) => existsSync(join(caseDir, d, "policy.dw")));

describe.each(cases)("test/golden/%s", (name) => {
  const dir = join(caseDir, name);
  const text = readFileSync(join(dir, "policy.dw"), "utf8");
  const o = outputs(text, "policy.dw");
  test("model.json", () => golden(join(dir, "model.json"), modelJson(text)));
  test("stderr.txt", () => golden(join(dir, "stderr.txt"), formatDiagnostics(o.ferm.diagnostics, "policy.dw", text)));
  test("ferm.conf", () => golden(join(dir, "ferm.conf"), o.ferm.output ?? ""));
  test("rules.v4", () => golden(join(dir, "rules.v4"), o.v4.output ?? ""));
  test("rules.v6", () => golden(join(dir, "rules.v6"), o.v6.output ?? ""));
});

const examples = readdirSync(join(root, "examples")).filter((f) => f.endsWith(".dw"));

describe.each(examples)("examples/%s", (file) => {
  const text = readFileSync(join(root, "examples", file), "utf8");
  const base = join(root, "examples", basename(file, ".dw"));
  const o = outputs(text, file);
  test("compiles without error", () => {
    expect(o.ferm.ok, formatDiagnostics(o.ferm.diagnostics, file, text)).toBe(true);
  });
  test(".ferm", () => golden(`${base}.ferm`, o.ferm.output ?? ""));
  test(".v4", () => golden(`${base}.v4`, o.v4.output ?? ""));
  test(".v6", () => golden(`${base}.v6`, o.v6.output ?? ""));
});
