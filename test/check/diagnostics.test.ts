// The checker's table: each bad input, run through `dockwall check`, prints exactly the
// expected diagnostics and exits as expected.
import { expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { memoryIo } from "../support/io.js";
import { cases } from "./cases.js";

test.each(cases)("$name", async (c) => {
  const io = memoryIo({ "p.dw": c.input, ...(c.facts ? { "host.json": c.facts } : {}) });
  const code = await run(["check", "p.dw", ...(c.facts ? ["--facts", "host.json"] : [])], io);
  const errors = (c.expected.match(/: error: /g) ?? []).length;
  // check writes nothing whatever it finds: its summary only counts.
  const summary = code === 2 ? `dockwall: ${errors} error${errors === 1 ? "" : "s"}\n` : "";
  expect(io.err.join("")).toBe(c.expected + summary);
  expect(code).toBe(c.exit);
  expect(io.out).toEqual([]);
});

test("the table covers every diagnostic code (CODES), each produced by a row of it", async () => {
  const { compile } = await import("../../src/compile.js");
  const { CODES } = await import("../../src/diagnostics.js");
  const codes = new Set<string>();
  for (const c of cases) {
    // Every stage, rendering included (its warnings too), with the row's Docker facts if any.
    const r = compile(c.input, { format: "ferm", facts: c.facts ? { raw: JSON.parse(c.facts), source: "host.json" } : undefined });
    for (const d of r.diagnostics) codes.add(d.code);
  }
  // The lockout guard is not part of compile: its row is the guard's own (test/apply/guard.test.ts).
  // --format nft's refusals are rendering's, and only that format's (test/targets/nft.test.ts).
  // nftables.conf's flush is held against the policy only by check, from that file (test/check/nftconf.test.ts).
  // The host's sysctls are held against the policy only by check, from /proc (test/check/host.test.ts).
  const elsewhere = new Set(["lockout", "nft-format", "nftables-flush", "host-prerequisite"]);
  expect(CODES.filter((code) => !codes.has(code) && !elsewhere.has(code))).toEqual([]);
});

test("thousands of mistakes are each reported, at their own line, in file order", async () => {
  const lines = ["docker { version 20.10; }", "network n { bridge br0; subnet 10.0.0.0/16; }"];
  for (let i = 0; i < 3000; i++) lines.push(`container c${i} { network n 10.0.${Math.floor(i / 250)}.${(i % 250) + 2}; publish ${70000 + i}:80; }`);
  const io = memoryIo({ "p.dw": lines.join("\n") + "\n" });
  expect(await run(["check", "p.dw"], io)).toBe(2);
  const errors = io.err.join("").split("\n").filter((l) => l.includes(": error: "));
  expect(errors).toHaveLength(3000);
  errors.forEach((e, i) => expect(e).toBe(`p.dw:${i + 3}:${lines[i + 2]!.indexOf("publish ") + 9}: error: port ${70000 + i} is out of range`));
  expect(io.err.join("")).toContain(`3002 | ${lines[3001]}\n`);
});
