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
  // Indexed loops: this runs for every rule, mostly before it is optimised, when each
  // for…of would allocate an iterator and a result per step.
  const ms = r.matches;
  for (let i = 0; i < ms.length; i++) {
    const m = ms[i]!;
    parts.push("-m", m.module);
    const os = m.options;
    for (let k = 0; k < os.length; k++) {
      const o = os[k]!;
      parts.push(o.neg ? "! --" + o.name : "--" + o.name);
      if (o.value !== undefined) parts.push(o.value);
    }
  }
  parts.push("-j", r.target);
  const ts = r.targetOptions;
  if (ts) for (let i = 0; i < ts.length; i++) parts.push("--" + ts[i]!.name, ts[i]!.value);
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
  for (const c of chains) for (let i = 0; i < c.rules.length; i++) lines.push(ruleText(c.name, c.rules[i]!));
  return lines.length ? lines.join("\n") + "\n" : "";
}
