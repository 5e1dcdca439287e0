// Stage timings of one compile, in process (for profiling; not part of npm run bench).
//   node dist/stages.mjs POLICY [RUNS]          times per stage
//   node --expose-gc dist/stages.mjs POLICY 1   also the heap each stage's result keeps
import { readFileSync } from "node:fs";
import { parse } from "../src/parse.js";
import { modelBuilder } from "../src/model/build.js";
import { check } from "../src/check/index.js";
import { generate } from "../src/generate.js";
import { renderIptables } from "../src/targets/iptables.js";
import { renderFerm } from "../src/targets/ferm.js";

const gc = (globalThis as { gc?: () => void }).gc;
const heap = (): string => {
  if (!gc) return "";
  gc();
  return ` (${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MB)`;
};

const text = readFileSync(process.argv[2]!, "utf8");
for (let i = 0; i < Number(process.argv[3] ?? 5); i++) {
  const ms: number[] = [];
  const mem: string[] = [];
  let start = performance.now();
  const lap = () => {
    ms.push(performance.now() - start);
    mem.push(heap()); // a forced GC, not counted in the stage's time
    start = performance.now();
  };
  // As compile() does it: statements go to the model builder as they are parsed.
  const model = modelBuilder();
  if (parse(text, model.add).statements) throw new Error("the policy was not parsed statement by statement");
  const b = model.finish();
  lap();
  check(b.policy);
  lap();
  const g = generate(b.policy);
  lap();
  const v4 = renderIptables(g.rulesets[4]!, []);
  lap();
  const f = renderFerm({ rulesets: [g.rulesets[4]!, g.rulesets[6]!], preserve: g.preserve, header: [] });
  lap();
  const names = ["parse+model", "check", "generate", "iptables", "ferm"];
  console.log(names.map((n, k) => `${n} ${ms[k]!.toFixed(0)}${mem[k]}`).join(" ") + `  (${v4.length + f.length} chars)`);
}
