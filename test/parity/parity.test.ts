// Parity: for every scenario captured from a real dockerd, the policy that describes it
// compiles to exactly what dockerd wrote (table by table, chain by chain, rule by rule in
// order: every capture's order, per-port rules included, is dockerd's stable order).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { forwardDropped, parseSave } from "../support/save.js";
import { parityGroups, skipped } from "../support/policies.js";

const root = new URL(".", import.meta.url).pathname;

const groups = parityGroups();
const all = groups.flatMap((dir) => readdirSync(join(root, dir)).map((name) => ({ dir, name, path: join(root, dir, name) })));
const cases = all.filter((c) => !skipped(c.path));

test("every layout folder has fixtures, and skips are few", () => {
  expect(groups).toEqual(expect.arrayContaining(["corpus", "legacy-20.10", "v27", "v28", "v28.0.0-ipset", "v29-iptables"]));
  expect(cases.length).toBeGreaterThan(all.length * 0.8);
});

describe.each(cases)("$dir/$name", ({ path }) => {
  const text = readFileSync(join(path, "policy.dw"), "utf8");
  for (const [format, file] of [["iptables", "expected.v4"], ["ip6tables", "expected.v6"]] as const) {
    test(format, () => {
      const r = compile(text, { format, file: "policy.dw" });
      expect(r.ok, formatDiagnostics(r.diagnostics, "policy.dw", text)).toBe(true);
      const expectedPath = join(path, file);
      const expected = existsSync(expectedPath) ? readFileSync(expectedPath, "utf8") : "";
      const want = parseSave(expected);
      expect(parseSave(r.output!)).toEqual(format === "ip6tables" ? forwardDropped(want) : want);
    });
  }
  // dockerd 23.0 – 26.1 wrote IPv6 slightly differently (DOCKER-USER, stricter internal drops).
  if (existsSync(join(path, "expected-23.v6"))) {
    test("ip6tables, version 26.1", () => {
      const r = compile(text.replace(/version 20\.10;/, "version 26.1;"), { format: "ip6tables", file: "policy.dw" });
      expect(r.ok, formatDiagnostics(r.diagnostics, "policy.dw", text)).toBe(true);
      const expected = readFileSync(join(path, "expected-23.v6"), "utf8");
      expect(parseSave(r.output!)).toEqual(forwardDropped(parseSave(expected)));
    });
  }
});
