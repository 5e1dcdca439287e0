// What `dockwall apply` loads: the compiled rule set laid over what is loaded now, so that
// every chain that belongs to neither dockwall nor Docker (fail2ban's f2b-*, CrowdSec's,
// Tailscale's, libvirt's…) and the rules in built-in chains that jump to them stay as they
// are. The result is iptables-restore input for whole tables (no --noflush), loaded in one
// transaction per family. Pure: both rule sets come in, text goes out.
import { BUILTIN_CHAINS, type Ruleset, type Table } from "../ir/ruleset.js";
import { ruleText } from "../targets/iptables.js";
import { fermRuleExact } from "../targets/ferm.js";
import type { SavedChain, SavedRule, SavedRuleset } from "../live/save.js";
import { MARK } from "../policy/owned.js";

/** Docker's chains (every layout names them DOCKER…) and dockwall's own (DOCKWALL-…). */
export function isDockerOrDockwall(chain: string): boolean {
  return chain.startsWith("DOCKER") || chain.startsWith("DOCKWALL");
}

/** A user chain of another tool: not built in, not Docker's, not dockwall's. */
export function isForeignChain(table: string, chain: string): boolean {
  return !(BUILTIN_CHAINS[table as Table["name"]] ?? []).includes(chain) && !isDockerOrDockwall(chain);
}

const MARKED = new RegExp(` -m comment --comment ${MARK}(?= |$)`);

/** A rule dockwall wrote into INPUT: its jumps to its own chains, and every rule carrying its mark. */
export function isDockwallsRule(r: SavedRule): boolean {
  return r.target?.startsWith("DOCKWALL") === true || MARKED.test(r.text);
}

/**
 * No host block: INPUT stays the host's, but for what dockwall wrote there (its jumps, which go
 * first, and the rules of a host block since removed, which go).
 */
export function hostsInput(live: SavedChain | undefined): SavedRule[] {
  return (live?.rules ?? []).filter((r) => !isDockwallsRule(r));
}

/** The rules of a host block dockwall loaded in INPUT: every rule carrying its mark but its jumps to its own chains. */
export function hostBlockRules(c: SavedChain | undefined): SavedRule[] {
  return (c?.rules ?? []).filter((r) => r.target?.startsWith("DOCKWALL") !== true && MARKED.test(r.text));
}

/** What leaves INPUT accepting nothing once a host block's rules are gone: its policy DROP, or a last rule that drops everything. */
export type InputDrop = { policy: "DROP" } | { rule: string };

const CATCH_ALL = /^-A INPUT -j (?:DROP|REJECT)(?: --reject-with \S+)?$/;

/**
 * A load that takes the rules of a host block dockwall loaded before out of INPUT (`before`)
 * and leaves INPUT (`after`) dropping what they accepted: its policy DROP, or a last rule
 * that drops everything (the policy has no host block: INPUT is the host's, and apply, watch
 * and ferm keep its policy). Undefined when INPUT keeps such rules, held none, accepts by
 * default, or keeps accepts of the host's own. Loading it would leave the host accepting nothing, not even its own loopback or the
 * replies to its connections: apply, watch and ferm-keep refuse it, diff says so.
 */
export function strandedInput(before: SavedChain | undefined, after: SavedChain | undefined): InputDrop | undefined {
  if (!before || !after || hostBlockRules(before).length === 0 || hostBlockRules(after).length > 0) return undefined;
  // The host's own accepts stay (its firewall, set up as the refusal suggests, DROP kept): not a host that accepts nothing (a review).
  if (after.rules.some((r) => r.target === "ACCEPT")) return undefined;
  if (after.policy === "DROP") return { policy: "DROP" };
  const last = after.rules.at(-1);
  return last && CATCH_ALL.test(last.text) ? { rule: last.text } : undefined;
}

/** strandedInput of the INPUT a load without a host block leaves (its policy, and its rules but dockwall's), where it loads the filter table. */
export function strandedWithoutHostBlock(live: SavedRuleset, wanted?: Ruleset): InputDrop | undefined {
  const l = inputOf(live);
  if (!l || (wanted && !wanted.tables.some((t) => t.name === "filter"))) return undefined;
  return strandedInput(l, { ...l, policy: (wanted && policyOf(wanted, "filter", "INPUT")) ?? l.policy, rules: hostsInput(l) });
}

/**
 * A rollback to a policy without a host block, from rules with one (the apply rolled back wrote
 * INPUT): the host's INPUT as the snapshot taken before that apply has it, its policy and its
 * rules but dockwall's, not the policy the host block set. A jump to another tool's chain that is
 * gone is left out; one that tool added since (first in INPUT now) is kept, first.
 */
export function hostsInputBefore(snapshot: SavedRuleset, live: SavedRuleset): SavedChain | undefined {
  const was = inputOf(snapshot);
  const now = inputOf(live);
  if (!was || hostBlockRules(now).length === 0) return undefined;
  const chains = live.get("filter")?.chains ?? new Map<string, SavedChain>();
  const then = snapshot.get("filter")?.chains ?? new Map<string, SavedChain>();
  // A jump to another tool's chain (a chain of that name in the table; ACCEPT and the like are not).
  const jumps = (r: SavedRule, to: Map<string, SavedChain>) => r.target !== undefined && isForeignChain("filter", r.target) && to.has(r.target);
  const rules = hostsInput(was).filter((r) => !jumps(r, then) || chains.has(r.target!));
  const since = (now?.rules ?? []).filter((r) => jumps(r, chains) && !rules.some((k) => k.text === r.text));
  return { ...was, rules: [...since, ...rules] };
}

/** The INPUT chain of a save (or of what a step leaves). */
export function inputOf(rs: SavedRuleset | undefined): SavedChain | undefined {
  return rs?.get("filter")?.chains.get("INPUT");
}

/**
 * Why a load without a host block is refused (strandedInput), naming each family: `policyName`
 * has no host block; `then`: what to do once INPUT is set ("then apply again").
 */
export function strandedMessage(policyName: string, drops: Partial<Record<4 | 6, InputDrop>>, then: string): string {
  const families = ([4, 6] as const).filter((f) => drops[f]);
  const ruleOf = (f: 4 | 6) => (drops[f] && "rule" in drops[f] ? drops[f].rule : undefined);
  const rules = [...new Set(families.map(ruleOf).filter((r) => r !== undefined))];
  // Almost always the policy DROP a host block set; a last rule that drops everything is said as it is.
  const how = rules.length === 0 ? "with INPUT's policy DROP" : families.map((f) => (ruleOf(f) ? `with INPUT's last rule '${ruleOf(f)}' (IPv${f})` : `with INPUT's policy DROP (IPv${f})`)).join(" and ");
  const set = families.map((f) => `\`${f === 4 ? "iptables" : "ip6tables"} -P INPUT ACCEPT\``).join(" and ");
  return (
    `${policyName} has no host block, but INPUT (${families.map((f) => `IPv${f}`).join(" and ")}) holds the rules of the host block dockwall loaded before, ${how}: ` +
    `loading would take those rules away and leave ${rules.length ? "what drops" : "the policy"}, and the host would accept nothing (not even its own loopback or the replies to its connections). ` +
    `Keep a host block (\`host { policy accept; }\` hands the host's traffic back open, with dockwall's rules), or set INPUT as the host should have it first ` +
    `(e.g. ${set}${rules.length ? ", and that last rule taken out" : ""}, or your own firewall's rules), ${then}`
  );
}

/** `-A CHAIN -j TARGET` for each jump that must come first in this built-in chain. */
export function firstJumpsOf(rs: Ruleset, table: string, chain: string): string[] {
  return (rs.firstJumps ?? []).filter((j) => j.table === table && j.chain === chain).map((j) => `-A ${chain} -j ${j.target}`);
}

/**
 * A built-in chain dockwall does not own (Docker's FORWARD with iptables on, the host's INPUT
 * without a host block), as it must be: the jumps it needs first, then the rest as loaded but
 * for those jumps elsewhere and, in the host's INPUT, what dockwall wrote there before.
 */
export function sharedChain(rs: Ruleset, table: string, chain: string, live: SavedChain | undefined, hosts: boolean): string[] {
  const first = firstJumpsOf(rs, table, chain);
  const rest = hosts ? hostsInput(live) : (live?.rules ?? []);
  return [...first, ...rest.filter((r) => !first.includes(r.text)).map((r) => r.text)];
}

/** The policy the rule set sets in a built-in chain whose rules are not its own (iptables on: FORWARD), if any. */
export function policyOf(rs: Ruleset, table: string, chain: string): "ACCEPT" | "DROP" | undefined {
  return rs.policies?.find((p) => p.table === table && p.chain === chain)?.policy;
}

export interface Merged {
  /** iptables-restore input (whole tables). */
  text: string;
  /** Other tools' chains kept, as `filter f2b-sshd`. */
  kept: string[];
  /** Rules in built-in chains kept because they jump to another tool's chain. */
  keptJumps: number;
}

/**
 * `wanted` over `live`. A table the rule set does not name is not in the output (not touched).
 * In a table it names:
 *  - scope "full" (iptables off): the rule set's chains, plus other tools' chains from live;
 *    a built-in chain is other tools' jumps (in their order, first) then the rule set's rules;
 *  - scope "owned" (iptables on): live as it is, but the chains the rule set owns are its own
 *    (a built-in one again after other tools' jumps).
 */
export function mergeForLoad(live: SavedRuleset, wanted: Ruleset, opts: { ownsInput: boolean; hostsInput?: SavedChain }): Merged {
  const out: string[] = [];
  const kept: string[] = [];
  let keptJumps = 0;
  for (const t of wanted.tables) {
    const lt = live.get(t.name);
    const liveChains: Map<string, SavedChain> = lt?.chains ?? new Map();
    const foreign = (name: string) => isForeignChain(t.name, name) && liveChains.has(name);
    const jumpsOf = (c: SavedChain | undefined) => (c ? c.rules.filter((r) => r.target !== undefined && foreign(r.target)).map((r) => r.text) : []);
    const decl: string[] = [];
    const rules: string[] = [];
    const owned = new Map(t.chains.map((c) => [c.name, c]));
    const builtins = BUILTIN_CHAINS[t.name];
    // Built-in chains first, in the kernel's order, as iptables-save prints them.
    for (const name of builtins) {
      const w = owned.get(name);
      const l = liveChains.get(name);
      const hosts = t.name === "filter" && name === "INPUT" && !opts.ownsInput;
      // The host's INPUT: as loaded, or as a rollback puts it back (opts.hostsInput).
      const h = hosts ? (opts.hostsInput ?? l) : l;
      if (hosts && wanted.scope === "full") {
        // dockwall's jumps first: an ACCEPT of the host's above them would open docker-proxy's ports.
        decl.push(`:INPUT ${h?.policy ?? "ACCEPT"} [0:0]`);
        rules.push(...(w?.rules ?? []).map((r) => ruleText(name, r)), ...hostsInput(h).map((r) => r.text));
      } else if (w) {
        decl.push(`:${name} ${w.policy ?? "ACCEPT"} [0:0]`);
        const jumps = jumpsOf(l);
        keptJumps += jumps.length;
        rules.push(...jumps, ...w.rules.map((r) => ruleText(name, r)));
      } else {
        // iptables on: a built-in chain dockwall does not own stays as it is, but for the jumps it needs first.
        decl.push(`:${name} ${policyOf(wanted, t.name, name) ?? h?.policy ?? "ACCEPT"} [0:0]`);
        rules.push(...sharedChain(wanted, t.name, name, h, hosts));
      }
    }
    const users = new Map<string, string[]>();
    for (const c of t.chains) if (!c.builtin) users.set(c.name, c.rules.map((r) => ruleText(c.name, r)));
    for (const [name, c] of liveChains) {
      if (builtins.includes(name) || users.has(name)) continue;
      // Other tools' chains always; Docker's own too while dockerd manages them (iptables on).
      if (isForeignChain(t.name, name)) kept.push(`${t.name} ${name}`);
      else if (wanted.scope === "full" || name.startsWith("DOCKWALL")) continue;
      users.set(name, c.rules.map((r) => r.text));
    }
    for (const name of [...users.keys()].sort()) {
      decl.push(`:${name} - [0:0]`);
      rules.push(...users.get(name)!);
    }
    out.push(`*${t.name}`, ...decl, ...rules, "COMMIT");
  }
  return { text: out.length ? out.join("\n") + "\n" : "", kept, keptJumps };
}

/**
 * No host block: INPUT's policy and rules are the host's. `true` keeps both in one include (the
 * ferm.conf of an earlier dockwall: its jumps then come last); "policy" keeps the policy (and
 * checks the rules), "rules" only the rules, for an include after dockwall's jumps, which go first.
 */
export type HostsInput = boolean | "policy" | "rules";

/**
 * For a ferm.conf (ferm resets every table of a domain, and can keep a chain only by its exact
 * name): other tools' chains and their jumps as the kernel has them now, in ferm's syntax —
 * what `dockwall ferm-keep` prints when ferm runs it (`@include "…|"`). `writes`: the tables the
 * ferm.conf writes, each with the built-in chains it writes there; their jumps to other tools'
 * chains are written again (first, in their order, as apply keeps them). A table it does not
 * write is kept whole. `hostsInput` (no host block, iptables off): INPUT's policy and rules too.
 */
export function fermKeep(live: SavedRuleset, writes: Partial<Record<string, string[]>>, opts: { hostsInput?: HostsInput; family?: 4 | 6 } = {}): { text: string; kept: string[]; problems: string[] } {
  const out: string[] = [];
  const kept: string[] = [];
  const problems: string[] = [];
  // "rules": only INPUT's rules (the ferm.conf includes them after its own jumps there, which go first).
  const onlyRules = opts.hostsInput === "rules";
  for (const [name, t] of live) {
    if (onlyRules && name !== "filter") continue;
    const written = writes[name] ?? [];
    // An empty table (built-in chains only, ACCEPT, no rules) has nothing to keep.
    const empty = [...t.chains.values()].every((c) => c.policy === "ACCEPT" && c.rules.length === 0);
    if (writes[name] === undefined && empty) continue;
    const keep = writes[name] === undefined ? [...t.chains.keys()] : [...t.chains.keys()].filter((c) => isForeignChain(name, c));
    // ferm takes a chain name as a word; any other is not written (and the table not kept).
    for (const c of keep) if (!/^[\w.-]+$/.test(c)) problems.push(`${name} chain '${c}': ferm cannot name it`);
    const foreign = (c: string | undefined) => c !== undefined && t.chains.has(c) && isForeignChain(name, c);
    const jumps = written.flatMap((c) => {
      const chain = t.chains.get(c);
      // No host block: INPUT is the host's (its policy and every rule but dockwall's jumps), as apply keeps it.
      const hosts = opts.hostsInput && name === "filter" && c === "INPUT";
      const rules = hosts ? hostsInput(chain) : (chain?.rules ?? []).filter((r) => foreign(r.target));
      const policy = hosts && chain && !onlyRules ? [`      policy ${chain.policy};`] : [];
      let lines = rules.map((r) => {
        // A jump must go to a chain the ferm.conf will have: another tool's, kept here.
        const f = fermRuleExact(r.toRule(), opts.family ?? 4, (n) => keep.includes(n));
        if ("why" in f) problems.push(`${name} ${r.text}: ferm's syntax for ${f.why} is not known to dockwall`);
        return "text" in f ? `      ${f.text};` : "";
      });
      if (onlyRules && !hosts) return [];
      if (hosts && opts.hostsInput === "policy") lines = [];
      return lines.length || policy.length ? [[`    chain ${c} {`, ...policy, ...lines, "    }"]] : [];
    });
    if (onlyRules) {
      if (jumps.length) out.push(`  table ${name} {`, ...jumps.flat(), "  }");
      continue;
    }
    if (keep.length === 0 && jumps.length === 0) continue;
    kept.push(...keep.filter((c) => isForeignChain(name, c)).map((c) => `${name} ${c}`));
    out.push(`  table ${name} {`);
    if (keep.length) out.push(`    chain ${keep.length > 1 ? `(${keep.join(" ")})` : keep[0]} @preserve;`);
    out.push(...jumps.flat(), "  }");
  }
  return { text: out.length ? out.join("\n") + "\n" : "", kept, problems };
}
