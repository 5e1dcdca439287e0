// dockwall's JSON output against its schema (src/schema/dockwall.schema.json), validated with
// Ajv: check --json for every diagnostics case the checker's tests hold (errors and warnings,
// with notes, from the policy and from Docker's facts), compile --json, explain --json and
// matrix --json for every example policy. The diagnostics are the same as the text's: the same
// places, codes and messages.
import { Ajv } from "ajv";
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { visible } from "../../src/diagnostics.js";
import { shippedPolicies } from "../lab/policylab.js";
import { memoryIo } from "../support/io.js";
import { cases } from "../check/cases.js";

const schema = JSON.parse(readFileSync(new URL("../../src/schema/dockwall.schema.json", import.meta.url), "utf8")) as object;
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(schema, "dockwall");
const valid = (def: string, v: unknown) => {
  const ok = ajv.validate(`dockwall#/definitions/${def}`, v);
  return ok ? "" : ajv.errorsText(ajv.errors);
};

async function dw(args: string[], files: Record<string, string>) {
  const io = memoryIo(files);
  const code = await run(args, io);
  return { code, out: io.out.join(""), err: io.err.join(""), files: io.files };
}

describe("check --json: every diagnostics case, valid, and the same as the text", () => {
  test.each(cases.map((c) => [c.name, c] as const))("%s", async (_n, c) => {
    const json = await dw(["check", "p.dw", "--json"], { "p.dw": c.input });
    const text = await dw(["check", "p.dw"], { "p.dw": c.input });
    expect(json.code).toBe(text.code);
    expect(json.err).toBe("");
    const j = JSON.parse(json.out) as { ok: boolean; diagnostics: { file?: string; line?: number; column?: number; severity: string; message: string }[] };
    expect(valid("diagnostics", j)).toBe("");
    expect(j.ok).toBe(text.code === 0);
    // Each diagnostic's first line in the text: FILE:LINE:COL: SEVERITY: MESSAGE.
    const heads = text.err.split("\n").filter((l) => /^p\.dw:\d+:\d+: (error|warning): /.test(l));
    // (The text shows odd characters escaped; JSON carries the message as it is, escaped by JSON itself.)
    expect(j.diagnostics.filter((d) => d.file).map((d) => `${d.file}:${d.line}:${d.column}: ${d.severity}: ${visible(d.message)}`)).toEqual(heads);
  });
});

describe("every example policy: compile --json, explain --json and matrix --json are valid", () => {
  test.each(shippedPolicies().filter(([n]) => n.startsWith("examples/")))("%s", async (name, text) => {
    const c = await dw(["compile", "p.dw", "--json", "-o", "out.v4", "-f", "iptables"], { "p.dw": text });
    expect(c.code).toBe(0);
    expect(valid("diagnostics", JSON.parse(c.out))).toBe("");
    expect(c.files.has("out.v4")).toBe(true);
    const m = await dw(["matrix", "p.dw", "--json"], { "p.dw": text });
    const mj = JSON.parse(m.out) as { cells: { probe: string }[] };
    expect(valid("matrix", mj)).toBe("");
    const probes = [...new Set(mj.cells.map((x) => x.probe))].slice(0, 12);
    const e = await dw(["explain", "p.dw", "--json", ...probes], { "p.dw": text });
    expect(e.code, `${name}: ${e.err}`).toBe(0);
    expect(valid("explain", JSON.parse(e.out))).toBe("");
  });

  test("compile --json without -o: refused, nothing on standard output", async () => {
    const r = await dw(["compile", "p.dw", "--json"], { "p.dw": shippedPolicies()[0]![1] });
    expect(r).toMatchObject({ code: 2, out: "" });
    expect(r.err).toContain("give -o FILE for the rules");
  });

  test("the schema can fail: a diagnostic without a place, a verdict that is not one", () => {
    expect(valid("diagnostics", { dockwall: 1, command: "check", ok: true, errors: 0, warnings: 1, diagnostics: [{ code: "x", severity: "warning", message: "m", notes: [] }] })).not.toBe("");
    expect(valid("explain", { packets: [{ packet: "p", family: 4, verdict: "maybe", delivered: null, decided_by: null, path: [], unknown: [], suggestion: null }] })).not.toBe("");
    // (A connection whose later packets are dropped says so: later_dropped, true or absent.)
    const later = { packet: "p", family: 4, verdict: "drop", delivered: null, decided_by: null, path: [], unknown: [], suggestion: null, later_dropped: true };
    expect(valid("explain", { dockwall: 1, command: "explain", packets: [later] })).toBe("");
    expect(valid("explain", { dockwall: 1, command: "explain", packets: [{ ...later, later_dropped: false }] })).not.toBe("");
  });
});
