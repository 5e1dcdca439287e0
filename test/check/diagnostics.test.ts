// The checker's table: each bad input, run through `dockwall check`, prints exactly the
// expected diagnostics and exits as expected.
import { expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { memoryIo } from "../support/io.js";
import { cases } from "./cases.js";

test.each(cases)("$name", async (c) => {
  const io = memoryIo({ "p.dw": c.input });
  const code = await run(["check", "p.dw"], io);
  const errors = (c.expected.match(/: error: /g) ?? []).length;
  const summary = code === 2 ? `dockwall: ${errors} error${errors === 1 ? "" : "s"}; nothing was written\n` : "";
  expect(io.err.join("")).toBe(c.expected + summary);
  expect(code).toBe(c.exit);
  expect(io.out).toEqual([]);
});

test("the table covers every diagnostic code the checker can emit for bad input", async () => {
  const { compile } = await import("../../src/compile.js");
  const codes = new Set(cases.flatMap((c) => compile(c.input, { checkOnly: true }).diagnostics.map((d) => d.code)));
  for (const code of ["syntax", "bad-value", "unknown-name", "duplicate-name", "duplicate-address", "duplicate-publish", "outside-subnet", "reserved-address", "overlapping-subnets", "unknown-option", "not-published", "family-mismatch", "outside-zone", "host-only-port", "empty-policy", "no-interface", "unreachable-port", "proxy-with-iptables-off", "no-version"]) {
    expect(codes, code).toContain(code);
  }
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
