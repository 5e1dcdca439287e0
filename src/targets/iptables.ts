// Ruleset → iptables-restore input. Rules print in iptables-save's own order and
// spelling, so `iptables-save` after loading reads back the same lines.
import { optionValue, pushIptablesMatch, targetOptionsView } from "../ir/match.js";
import { BUILTIN_CHAINS, type Chain, type Rule, type Ruleset, type Table } from "../ir/ruleset.js";
import { templates } from "./templates.js";

/** Appends the pieces of one rule, as iptables-save prints it, to `out` (the rule is `out.join("")`). */
function pushRule(out: string[], chain: string, r: Rule): void {
  out.push("-A ", chain);
  if (r.src) out.push(r.src.neg ? " ! -s " : " -s ", r.src.value);
  if (r.dst) out.push(r.dst.neg ? " ! -d " : " -d ", r.dst.value);
  if (r.in) out.push(r.in.neg ? " ! -i " : " -i ", r.in.value);
  if (r.out) out.push(r.out.neg ? " ! -o " : " -o ", r.out.value);
  if (r.proto) out.push(" -p ", r.proto);
  const ms = r.matches;
  for (let i = 0; i < ms.length; i++) pushIptablesMatch(out, ms[i]!);
  out.push(" -j ", r.target);
  const t = r.targetOptions;
  if (t?.kind === "dnat") out.push(" --to-destination ", t.to.text);
  // (Another tool's options as read: a flag (CT --notrack) has no value; a text is quoted again as iptables-save quotes it.)
  else if (t) for (const o of targetOptionsView(t)!) out.push(" --", o.name, ...(o.value === "" ? [] : [" ", optionValue(o.name, o.value)]));
}

/** One rule as iptables-save prints it. */
export function ruleText(chain: string, r: Rule): string {
  const out: string[] = [];
  pushRule(out, chain, r);
  return out.join("");
}

export function renderIptables(rs: Ruleset, header: string[]): string {
  const tables = rs.tables.map((t) => {
    const owned = rs.scope === "owned";
    return {
      name: t.name,
      // In --noflush mode a user chain's ':' line flushes it (and creates it if missing);
      // a built-in chain's line only sets its policy, so an owned built-in is flushed with -F.
      chains: declarations(rs, t),
      commands: owned ? t.chains.filter((c) => c.builtin).map((c) => `-F ${c.name}`) : [],
      // Tens of thousands of lines on a big host: joined here, laid out by the template.
      rules: rulesText(t.chains),
    };
  });
  return templates.iptables({ header, tables });
}

/**
 * The ':' lines: built-in chains first in the kernel's order, those whose policy alone the rule
 * set sets (iptables on: FORWARD) among them, then user chains.
 */
function declarations(rs: Ruleset, t: Table): { name: string; policy: string }[] {
  const policies = (rs.policies ?? []).filter((p) => p.table === t.name);
  const builtins = BUILTIN_CHAINS[t.name].flatMap((name) => {
    const c = t.chains.find((x) => x.name === name);
    if (c) return [{ name, policy: c.policy ?? "ACCEPT" }];
    const p = policies.find((x) => x.chain === name);
    return p ? [{ name, policy: p.policy }] : [];
  });
  return [...builtins, ...t.chains.filter((c) => !c.builtin).map((c) => ({ name: c.name, policy: "-" }))];
}

function rulesText(chains: Chain[]): string {
  // A flat string per rule (its pieces joined), then one join: pieces of every rule in one
  // array would cost more memory than the text.
  const lines: string[] = [];
  const pieces: string[] = [];
  for (const c of chains) {
    for (let i = 0; i < c.rules.length; i++) {
      pieces.length = 0;
      pushRule(pieces, c.name, c.rules[i]!);
      lines.push(pieces.join(""));
    }
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}
