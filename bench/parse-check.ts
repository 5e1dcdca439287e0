// Issue #2's benchmark: parse + check of a generated 10,000-statement policy, in process.
import { compile } from "../src/compile.js";
import { parse } from "../src/parse.js";
import { buildModel } from "../src/model/build.js";
import { check } from "../src/check/index.js";
import { policyOfStatements } from "./generate.js";

export function benchParseCheck(statements = 10_000, runs = 15): { statements: number; medianMs: number; minMs: number; parseMs: number; buildMs: number; checkMs: number } {
  const text = policyOfStatements(statements);
  const times: number[] = [];
  for (let i = 0; i < runs + 3; i++) {
    const t0 = performance.now();
    const r = compile(text, { checkOnly: true });
    const t = performance.now() - t0;
    if (!r.ok) throw new Error(r.diagnostics[0]!.message);
    if (i >= 3) times.push(t); // warm-up runs
  }
  times.sort((a, b) => a - b);
  const stages = { parse: [] as number[], build: [] as number[], check: [] as number[] };
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    const p = parse(text);
    const t1 = performance.now();
    const b = buildModel(p.statements!);
    const t2 = performance.now();
    check(b.policy);
    const t3 = performance.now();
    stages.parse.push(t1 - t0);
    stages.build.push(t2 - t1);
    stages.check.push(t3 - t2);
  }
  const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { statements, medianMs: times[Math.floor(times.length / 2)]!, minMs: times[0]!, parseMs: med(stages.parse), buildMs: med(stages.build), checkMs: med(stages.check) };
}
