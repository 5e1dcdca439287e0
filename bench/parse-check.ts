// Issue #2's benchmark: parse + check of a generated 10,000-statement policy, in process.
import { compile } from "../src/compile.js";
import { parse } from "../src/parse.js";
import { buildModel } from "../src/model/build.js";
import { check } from "../src/check/index.js";
import { policyOfStatements } from "./generate.js";
import { median, quietRounds, type MeasureOptions, type Rounds } from "./process.js";

export interface ParseCheck {
  statements: number;
  medianMs: number;
  minMs: number;
  parseMs: number;
  buildMs: number;
  checkMs: number;
  /** How quiet the machine was for the whole runs (the stages' runs are taken the same way). */
  rounds: Rounds;
}

/** Medians of `runs` quiet runs (see quietRounds), after warm-up runs. */
export function benchParseCheck(statements = 10_000, runs = 15, options: Omit<MeasureOptions, "runs"> = {}): ParseCheck {
  const text = policyOfStatements(statements);
  const once = () => {
    const t0 = performance.now();
    const r = compile(text, { checkOnly: true });
    const t = performance.now() - t0;
    if (!r.ok) throw new Error(r.diagnostics[0]!.message);
    return t;
  };
  once(); // two warm-up runs here, a third in quietRounds
  once();
  const whole = quietRounds(once, { ...options, runs });
  const stages = quietRounds(() => {
    const t0 = performance.now();
    const p = parse(text);
    const t1 = performance.now();
    const b = buildModel(p.statements!);
    const t2 = performance.now();
    check(b.policy);
    const t3 = performance.now();
    return { parse: t1 - t0, build: t2 - t1, check: t3 - t2 };
  }, { ...options, runs: 7 });
  const of = (k: "parse" | "build" | "check") => median(stages.used.map((s) => s[k]));
  return { statements, medianMs: median(whole.used), minMs: Math.min(...whole.used), parseMs: of("parse"), buildMs: of("build"), checkMs: of("check"), rounds: whole.rounds };
}
