// Ruleset → iptables-restore input. Rules print in iptables-save's own order and
// spelling, so `iptables-save` after loading reads back the same lines.
import type { Chain, Rule, Ruleset } from "../ir/ruleset.js";
import { templates } from "./templates.js";

const neg = (n: { neg?: boolean }): string => (n.neg ? "! " : "");

/** One rule as iptables-save prints it. */
export function ruleText(chain: string, r: Rule): string {
  const parts = ["-A", chain];
  if (r.src) parts.push(neg(r.src) + "-s", r.src.value);
  if (r.dst) parts.push(neg(r.dst) + "-d", r.dst.value);
  if (r.in) parts.push(neg(r.in) + "-i", r.in.value);
  if (r.out) parts.push(neg(r.out) + "-o", r.out.value);
  if (r.proto) parts.push("-p", r.proto);
  for (const m of r.matches) {
    parts.push("-m", m.module);
    for (const o of m.options) {
      parts.push(o.neg ? "! --" + o.name : "--" + o.name);
      if (o.value !== undefined) parts.push(o.value);
    }
  }
  parts.push("-j", r.target);
  if (r.targetOptions) for (const o of r.targetOptions) parts.push("--" + o.name, o.value);
  // join() makes one flat string; concatenating would leave a rope per rule.
  return parts.join(" ");
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
  const lines: string[] = [];
  for (const c of chains) for (const r of c.rules) lines.push(ruleText(c.name, r));
  return lines.length ? lines.join("\n") + "\n" : "";
}
