// The output formats are one registry: every format the CLI offers has a target named as it,
// and compile() generates exactly the families that target writes.
import { expect, test } from "vitest";
import { compile } from "../src/compile.js";
import { FORMATS } from "../src/formats.js";
import { TARGETS } from "../src/targets/index.js";

test("every format has a target, and compile renders it from the families it names", () => {
  expect(Object.keys(TARGETS).sort()).toEqual([...FORMATS].sort());
  // nft writes dockwall's own table beside dockerd's rules: a policy with iptables on.
  const policy = (f: string) => `docker { version 28; iptables ${f === "nft" ? "on" : "off"}; userland-proxy off; }\n`;
  const families: Record<string, number[]> = {};
  for (const f of FORMATS) {
    expect(TARGETS[f].name).toBe(f);
    const r = compile(policy(f), { format: f });
    expect(r.ok).toBe(true);
    families[f] = ([4, 6] as const).filter((fam) => r.generated!.rulesets[fam] !== undefined);
  }
  expect(families).toEqual({ ferm: [4, 6], iptables: [4], ip6tables: [6], nft: [4, 6] });
});
