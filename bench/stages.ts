// Stage timings of one compile, in process (for profiling; not part of npm run bench).
import { readFileSync } from "node:fs";
import { parse } from "../src/parse.js";
import { buildModel } from "../src/model/build.js";
import { check } from "../src/check/index.js";
import { generate } from "../src/generate.js";
import { renderIptables } from "../src/targets/iptables.js";
import { renderFerm } from "../src/targets/ferm.js";

const text = readFileSync(process.argv[2]!, "utf8");
for (let i = 0; i < Number(process.argv[3] ?? 5); i++) {
  const t = [performance.now()];
  const p = parse(text);
  t.push(performance.now());
  if (process.env.STAGES_MEMORY) console.log(`after parse: rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MB`);
  const b = buildModel(p.cst!);
  t.push(performance.now());
  check(b.policy);
  t.push(performance.now());
  const g = generate(b.policy);
  t.push(performance.now());
  const v4 = renderIptables(g.rulesets[4]!, []);
  t.push(performance.now());
  const f = renderFerm({ rulesets: [g.rulesets[4]!, g.rulesets[6]!], preserve: g.preserve, header: [] });
  t.push(performance.now());
  const d = t.slice(1).map((x, k) => (x - t[k]!).toFixed(0));
  if (process.env.STAGES_MEMORY) console.log(`rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MB`);
  console.log(`parse ${d[0]} model ${d[1]} check ${d[2]} generate ${d[3]} iptables ${d[4]} ferm ${d[5]}  (${v4.length + f.length} chars)`);
}
