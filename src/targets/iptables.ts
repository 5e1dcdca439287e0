// Ruleset → iptables-restore input. Rules print in iptables-save's own order and
// spelling, so `iptables-save` after loading reads back the same lines.
import type { Chain, Rule, Ruleset } from "../ir/ruleset.js";
import { templates } from "./templates.js";

const neg = (n: { neg?: boolean }): string => (n.neg ? "! " : "");

/** One rule as iptables-save prints it (string concatenation: tens of thousands per file). */
export function ruleText(chain: string, r: Rule): string {
  let s = "-A " + chain;
  if (r.src) s += " " + neg(r.src) + "-s " + r.src.value;
  if (r.dst) s += " " + neg(r.dst) + "-d " + r.dst.value;
  if (r.in) s += " " + neg(r.in) + "-i " + r.in.value;
  if (r.out) s += " " + neg(r.out) + "-o " + r.out.value;
  if (r.proto) s += " -p " + r.proto;
  for (const m of r.matches) {
    s += " -m " + m.module;
    for (const o of m.options) s += (o.neg ? " ! --" : " --") + o.name + (o.value === undefined ? "" : " " + o.value);
  }
  s += " -j " + r.target;
  if (r.targetOptions) for (const o of r.targetOptions) s += " --" + o.name + " " + o.value;
  return s;
}

export function renderIptables(rs: Ruleset, header: string[]): string {
  const tables = rs.tables.map((t) => {
    const owned = rs.scope === "owned";
    return {
      name: t.name,
      // In --noflush mode a user chain's ':' line flushes it (and creates it if missing);
      // a built-in chain's line only sets its policy, so an owned built-in is flushed with -F.
      chains: t.chains.map((c) => ({ name: c.name, policy: c.builtin ? (c.policy ?? "ACCEPT") : "-" })),
      commands: owned ? t.chains.filter((c) => c.builtin).map((c) => `-F ${c.name}`) : [],
      // Tens of thousands of lines on a big host: joined here, laid out by the template.
      rules: rulesText(t.chains),
    };
  });
  return templates.iptables({ header, tables });
}

function rulesText(chains: Chain[]): string {
  let out = "";
  for (const c of chains) for (const r of c.rules) out += ruleText(c.name, r) + "\n";
  return out;
}
