// Ruleset(s) → ferm.conf. One `domain` block per family, tables and chains nested, a
// comment above each group of rules that serves one container port or policy line.
import type { Neg, Rule, Ruleset } from "../ir/ruleset.js";
import { moduleView, targetOptionsView } from "../ir/match.js";
import { templates } from "./templates.js";

const KEYWORD_TARGETS = new Set(["ACCEPT", "DROP", "RETURN", "MASQUERADE", "REJECT", "DNAT", "SNAT"]);

function fermValue(v: string): string {
  return /^[\w.:/,-]+$/.test(v) ? v : `"${v}"`;
}

const not = (n: { value: string; neg?: boolean }): string => (n.neg ? `!${n.value}` : n.value);

/** `NAME VALUE` (`NAME !VALUE`) of a typed match's option, when it has the option. */
function fermOpt(w: string[], name: string, n: { value: { text: string } | string; neg?: boolean } | undefined): void {
  if (!n) return;
  const value = fermValue(typeof n.value === "string" ? n.value : n.value.text);
  w.push(name, n.neg ? `!${value}` : value);
}

/** The selectors, in the order ferm words start with them; runs of rules that share the first one nest. */
const SELECTORS = ["saddr", "daddr", "interface", "outerface"] as const;

/** The rule's first selector: its index in SELECTORS, or -1 when it has none. */
function headOf(r: Rule): number {
  return r.src ? 0 : r.dst ? 1 : r.in ? 2 : r.out ? 3 : -1;
}

function selector(r: Rule, i: number): Neg<string> {
  return (i === 0 ? r.src : i === 1 ? r.dst : i === 2 ? r.in : r.out)!;
}

/**
 * Appends a rule as ferm words to `w` (the line is `w.join(" ")`), selectors (saddr, daddr,
 * interface, outerface, proto) first, each keyword and its value a word of its own; without
 * its first selector when `nested` (the block around it says it).
 */
function fermWords(r: Rule, w: string[], nested: boolean): void {
  const skip = nested ? headOf(r) : -1;
  if (r.src && skip !== 0) w.push("saddr", not(r.src));
  if (r.dst && skip !== 1) w.push("daddr", not(r.dst));
  if (r.in && skip !== 2) w.push("interface", not(r.in));
  if (r.out && skip !== 3) w.push("outerface", not(r.out));
  if (r.proto) w.push("proto", r.proto);
  for (const typed of r.matches) {
    // The matches of nearly every rule of a large host, written straight from their values (the same words as below).
    if (typed.kind === "tcp" || typed.kind === "udp") {
      if (typed.kind !== r.proto) w.push("mod", typed.kind);
      fermOpt(w, "sport", typed.sport);
      fermOpt(w, "dport", typed.dport);
      fermOpt(w, "tcp-flags", typed.flags);
      continue;
    }
    if (typed.kind === "conntrack" && !typed.state?.neg) {
      w.push("mod", "conntrack");
      if (typed.state) w.push("ctstate", typed.state.value.text.includes(",") ? `(${typed.state.value.states.join(" ")})` : fermValue(typed.state.value.text));
      fermOpt(w, "ctorigdst", typed.origDst);
      fermOpt(w, "ctorigdstport", typed.origDstPort);
      continue;
    }
    const m = moduleView(typed);
    // ferm loads the protocol's own match (tcp, udp, icmp6) by itself.
    const implicit = m.module === r.proto || (m.module === "icmp6" && r.proto === "ipv6-icmp");
    if (!implicit) w.push("mod", m.module);
    for (const o of m.options) {
      if (m.module === "set" && o.name === "match-set") {
        w.push("set", `${o.neg ? "!" : ""}${o.value}`); // ferm: `mod set set NAME FLAGS`
        continue;
      }
      if (o.value === undefined) {
        w.push(o.neg ? `! ${o.name}` : o.name); // a flag: physdev-is-bridged
        continue;
      }
      let value = o.value;
      if (o.name === "ctstate" && value.includes(",")) value = `(${value.split(",").join(" ")})`;
      else value = fermValue(value);
      w.push(o.name, o.neg ? `!${value}` : value);
    }
  }
  if (KEYWORD_TARGETS.has(r.target)) w.push(r.target);
  else w.push("jump", r.target);
  const t = r.targetOptions;
  if (t?.kind === "dnat") w.push("to-destination", fermValue(t.to.text));
  else if (t) for (const o of targetOptionsView(t)!) w.push(o.name, fermValue(o.value));
}

/** Lines of a chain's body are indented this far (under `domain`, `table`, `chain`). */
const INDENT = "      ";

/**
 * A chain's rules as ferm text: a comment above each run of rules that serves one container
 * port or policy line, and runs that share their first selector nested the way one writes
 * ferm by hand:  outerface docker0 { mod conntrack ctstate (RELATED ESTABLISHED) ACCEPT; jump DOCKER; }
 * Tens of thousands of lines on a big host: written here, the template places the text.
 */
function chainBody(rules: Rule[]): string {
  // Each line's words joined, and the lines' pieces joined once at the end: one flat string,
  // without a rope of every piece in between.
  const out: string[] = [];
  const words: string[] = [];
  for (let g = 0; g < rules.length; ) {
    const comment = rules[g]!.comment ?? "";
    let end = g + 1;
    while (end < rules.length && (rules[end]!.comment ?? "") === comment) end++;
    if (comment) out.push(INDENT, "# ", comment, "\n");
    for (let i = g; i < end; ) {
      const head = headOf(rules[i]!);
      let j = i + 1;
      if (head >= 0) {
        const sel = selector(rules[i]!, head);
        while (j < end && headOf(rules[j]!) === head && sameNeg(selector(rules[j]!, head), sel)) j++;
      }
      if (j - i >= 2) {
        out.push(INDENT, SELECTORS[head]!, " ", not(selector(rules[i]!, head)), " {\n");
        for (let k = i; k < j; k++) {
          words.length = 0;
          fermWords(rules[k]!, words, true);
          out.push(INDENT, "  ", words.join(" "), ";\n");
        }
        out.push(INDENT, "}\n");
      } else {
        words.length = 0;
        fermWords(rules[i]!, words, false);
        out.push(INDENT, words.join(" "), ";\n");
      }
      i = j;
    }
    g = end;
  }
  return out.join("");
}

const sameNeg = (a: Neg<string>, b: Neg<string>): boolean => a === b || (a.value === b.value && !a.neg === !b.neg);

function fermList(items: string[]): string {
  return items.length > 1 ? `(${items.join(" ")})` : (items[0] ?? "");
}

const TABLE_ORDER = ["raw", "mangle", "filter", "nat"];

export interface FermInput {
  rulesets: Ruleset[];
  /** Chains to keep as they are in the live kernel (`@preserve`), per family and table. */
  preserve?: Partial<Record<4 | 6, Partial<Record<string, string[]>>>>;
  header: string[];
  /** Shell commands ferm runs before loading the rules (`@hook pre`). */
  hooks?: string[];
  /** No host block: INPUT's rules and policy are the host's (kept by ferm-keep); the file writes only its jumps there. */
  hostsInput?: boolean;
}

interface ChainView {
  name: string;
  policy: string;
  empty: boolean;
  /** The rules as text (chainBody). */
  body: string;
}

interface TableView {
  name: string;
  preserve: string;
  chains: ChainView[];
}

interface DomainView {
  name: string;
  tables: TableView[];
}

function tablesOf(rs: Ruleset, preserve: Partial<Record<string, string[]>>, hostsInput: boolean): TableView[] {
  const names = TABLE_ORDER.filter((n) => rs.tables.some((t) => t.name === n) || preserve[n]?.length);
  return names.map((name) => {
    const t = rs.tables.find((x) => x.name === name);
    // No host block: filter INPUT's policy is the host's (ferm-keep writes it), and without rules it is left out.
    const hosts = (chain: string) => hostsInput && name === "filter" && chain === "INPUT";
    return {
      name,
      // `chain (A B C) @preserve;` keeps chains dockwall does not own as the kernel has them.
      preserve: fermList(preserve[name] ?? []),
      chains: (t?.chains ?? [])
        .filter((c) => !(hosts(c.name) && c.rules.length === 0))
        .map((c) => ({ name: c.name, policy: c.builtin && !hosts(c.name) ? (c.policy ?? "ACCEPT") : "", empty: c.rules.length === 0, body: chainBody(c.rules) })),
    };
  });
}

/**
 * What IPv4 and IPv6 have in common goes in one `domain (ip ip6)` block — a whole chain at a
 * time, so that no chain's rules are split — and the rest in `domain ip` / `domain ip6`.
 */
function mergeDomains(v4: TableView[], v6: TableView[]): DomainView[] {
  const shared: TableView[] = [];
  const only4: TableView[] = [];
  const only6: TableView[] = [];
  // A chain is shared when its name, policy and every line agree.
  const same = (a: ChainView, b: ChainView) => a.name === b.name && a.policy === b.policy && a.body === b.body;
  for (const name of TABLE_ORDER) {
    const a = v4.find((t) => t.name === name);
    const b = v6.find((t) => t.name === name);
    if (!a || !b) {
      if (a) only4.push(a);
      if (b) only6.push(b);
      continue;
    }
    const common = a.chains.filter((c) => b.chains.some((d) => same(c, d)));
    const isCommon = (c: ChainView) => common.some((x) => x.name === c.name);
    const samePreserve = a.preserve === b.preserve;
    if (common.length || (samePreserve && a.preserve)) shared.push({ name, preserve: samePreserve ? a.preserve : "", chains: common });
    const rest = (t: TableView): TableView => ({ name, preserve: samePreserve ? "" : t.preserve, chains: t.chains.filter((c) => !isCommon(c)) });
    const ra = rest(a);
    const rb = rest(b);
    if (ra.chains.length || ra.preserve) only4.push(ra);
    if (rb.chains.length || rb.preserve) only6.push(rb);
  }
  return [
    { name: "(ip ip6)", tables: shared },
    { name: "ip", tables: only4 },
    { name: "ip6", tables: only6 },
  ].filter((d) => d.tables.length > 0);
}

/**
 * The line that keeps other tools' chains and jumps: ferm runs `dockwall ferm-keep` for each
 * domain when it loads the file. Without dockwall on the PATH ferm loads the rest as written
 * (at boot, not loading at all would leave the host open); when ferm-keep finds a rule it
 * cannot write exactly, it fails and ferm stops, leaving the rules in place as they are.
 */
function keepOf(rs: Ruleset, hostsInput: boolean, flag = hostsInput ? " --hosts-input-policy" : ""): { domain: string; command: string } {
  const domain = rs.family === 4 ? "ip" : "ip6";
  const writes = rs.tables.map((t) => `${t.name}:${t.chains.filter((c) => c.builtin).map((c) => c.name).join(",")}`);
  return { domain, command: `if command -v dockwall >/dev/null; then dockwall ferm-keep${flag} ${domain} ${writes.join(" ")}; fi` };
}

export function renderFerm(input: FermInput): string {
  const views = input.rulesets.map((rs) => ({ family: rs.family, tables: tablesOf(rs, input.preserve?.[rs.family] ?? {}, input.hostsInput ?? false) }));
  const v4 = views.find((v) => v.family === 4);
  const v6 = views.find((v) => v.family === 6);
  const domains: DomainView[] = v4 && v6 ? mergeDomains(v4.tables, v6.tables) : views.map((v) => ({ name: v.family === 4 ? "ip" : "ip6", tables: v.tables }));
  const post = input.rulesets.flatMap((rs) => [...firstJumpHooks(rs), ...policyHooks(rs)]);
  return templates.ferm({ header: input.header, hooks: (input.hooks ?? []).map((h) => `"${h}"`), post: post.map((h) => `"${h}"`), keep: input.rulesets.map((rs) => keepOf(rs, input.hostsInput ?? false)), hostsInput: input.hostsInput, domains,
    // No host block: the host's INPUT rules after dockwall's jumps there.
    keepAfter: input.hostsInput ? input.rulesets.map((rs) => keepOf(rs, true, " --hosts-input-rules")) : [] });
}

/**
 * A jump dockwall needs first in a chain the ferm.conf keeps with @preserve (IPv6's FORWARD to
 * DOCKER-USER when dockerd writes no IPv6 rules): ferm cannot add a rule to a preserved chain,
 * so a hook adds it once ferm has loaded, with the tools ferm used (the -legacy ones when installed).
 */
function firstJumpHooks(rs: Ruleset): string[] {
  const base = rs.family === 4 ? "iptables" : "ip6tables";
  return (rs.firstJumps ?? [])
    .filter((j) => !j.dockerMakes && !rs.tables.some((t) => t.name === j.table && t.chains.some((c) => c.name === j.chain)))
    .map((j) => {
      const add = (tool: string) => `${tool} -t ${j.table} -C ${j.chain} -j ${j.target} 2>/dev/null || ${tool} -t ${j.table} -I ${j.chain} -j ${j.target}`;
      return `if command -v ${base}-legacy >/dev/null; then ${add(`${base}-legacy`)}; else ${add(base)}; fi`;
    });
}

/**
 * A policy dockwall sets in a chain the ferm.conf keeps with @preserve (iptables on: FORWARD
 * DROP): ferm keeps a preserved chain's policy as the kernel has it, so a hook sets it once
 * ferm has loaded, with the tools ferm used.
 */
function policyHooks(rs: Ruleset): string[] {
  const base = rs.family === 4 ? "iptables" : "ip6tables";
  return (rs.policies ?? []).map((p) => {
    const set = (tool: string) => `${tool} -t ${p.table} -P ${p.chain} ${p.policy}`;
    return `if command -v ${base}-legacy >/dev/null; then ${set(`${base}-legacy`)}; else ${set(base)}; fi`;
  });
}

/** How a value is written: one word; a comma list, as ferm's `(a b)`; text, quoted; tcp-flags' two lists. */
type Form = "word" | "list" | "text" | "flags";

const WORD = /^[\w.:/+-]+$/;

/** A value in ferm's syntax, or undefined when it cannot be written so that ferm reads it back the same. */
function exactValue(form: Form, v: string): string | undefined {
  switch (form) {
    case "word":
      return WORD.test(v) ? v : undefined;
    case "list": {
      const items = v.split(",");
      return items.every((i) => WORD.test(i)) ? (items.length > 1 ? `(${items.join(" ")})` : v) : undefined;
    }
    case "text":
      // Single quotes are taken as they are; double quotes only with nothing ferm would expand.
      if (/[\n\\]/.test(v)) return undefined;
      if (!v.includes("'")) return `'${v}'`;
      return /["$]/.test(v) ? undefined : `"${v}"`;
    case "flags": {
      const [mask, comp, more] = v.split(" ");
      const m = mask === undefined ? undefined : exactValue("list", mask);
      const c = comp === undefined ? undefined : exactValue("list", comp);
      return m && c && more === undefined ? `${m} ${c}` : undefined;
    }
  }
}

/** The options ferm-keep writes back, per module: ferm's name for each, and its form. */
const EXACT: Record<string, Record<string, [string, Form]>> = {
  tcp: { dport: ["dport", "word"], sport: ["sport", "word"], "tcp-flags": ["tcp-flags", "flags"] },
  udp: { dport: ["dport", "word"], sport: ["sport", "word"] },
  icmp: { "icmp-type": ["icmp-type", "word"] },
  icmp6: { "icmpv6-type": ["icmpv6-type", "word"] },
  // ferm's multiport knows only the long names (its `dports` is a shortcut for the whole match).
  multiport: { dports: ["destination-ports", "list"], sports: ["source-ports", "list"], ports: ["ports", "list"] },
  conntrack: { ctstate: ["ctstate", "list"], ctorigdstport: ["ctorigdstport", "word"], ctorigdst: ["ctorigdst", "word"], ctorigsrc: ["ctorigsrc", "word"] },
  state: { state: ["state", "list"] },
  // A list here would be a ferm array: one rule per item.
  addrtype: { "src-type": ["src-type", "word"], "dst-type": ["dst-type", "word"] },
  iprange: { "src-range": ["src-range", "word"], "dst-range": ["dst-range", "word"] },
  limit: { limit: ["limit", "word"], "limit-burst": ["limit-burst", "word"] },
  mark: { mark: ["mark", "word"] },
  comment: { comment: ["comment", "text"] },
};

const EXACT_TARGETS: Record<string, Record<string, [string, Form]>> = {
  ACCEPT: {},
  DROP: {},
  RETURN: {},
  REJECT: { "reject-with": ["reject-with", "word"] },
  LOG: { "log-prefix": ["log-prefix", "text"], "log-level": ["log-level", "word"] },
};

/**
 * A rule read back from the kernel in ferm's syntax, such that ferm loads exactly that rule;
 * or why it cannot be (a match or target ferm-keep does not know how to write). Stricter than
 * the renderer of dockwall's own rules: whatever another tool wrote may come through here.
 */
export function fermRuleExact(r: Rule, family: 4 | 6, isChain: (name: string) => boolean): { text: string } | { why: string } {
  const w: string[] = [];
  const views = r.matches.map(moduleView);
  if (views.some((m) => m.module === "(repeated)")) return { why: "a match module given twice in one rule" };
  for (const [key, n] of [["saddr", r.src], ["daddr", r.dst], ["interface", r.in], ["outerface", r.out]] as const) {
    if (!n) continue;
    if (!WORD.test(n.value)) return { why: `${key} ${n.value}` };
    w.push(key, not(n));
  }
  if (r.proto) {
    if (!WORD.test(r.proto)) return { why: `protocol ${r.proto}` };
    // ferm turns "icmp" into ICMPv6 in domain ip6.
    if (family === 6 && r.proto === "icmp") return { why: "-p icmp in IPv6" };
    w.push("proto", r.proto);
  }
  let explicit = false;
  for (const m of views) {
    const opts = EXACT[m.module];
    if (!opts) return { why: `-m ${m.module}` };
    const implicit = m.module === r.proto || (m.module === "icmp6" && r.proto === "ipv6-icmp");
    // After "mod multiport", ferm reads the protocol's own sport/dport as multiport's.
    if (implicit && explicit) return { why: `-m ${m.module} after -m multiport` };
    if (m.module === "multiport") explicit = true;
    if (!implicit) w.push("mod", m.module);
    for (const o of m.options) {
      const as = opts[o.name];
      const value = as && o.value !== undefined ? exactValue(as[1], o.value) : undefined;
      if (value === undefined) return { why: `-m ${m.module} --${o.name}${o.value === undefined ? "" : ` ${o.value}`}` };
      w.push(as![0], `${o.neg ? "!" : ""}${value}`);
    }
  }
  const t = EXACT_TARGETS[r.target];
  if (t) {
    w.push(r.target);
    for (const o of targetOptionsView(r.targetOptions) ?? []) {
      const as = t[o.name];
      const value = as ? exactValue(as[1], o.value) : undefined;
      if (value === undefined) return { why: `-j ${r.target} --${o.name} ${o.value}` };
      w.push(as![0], value);
    }
  } else if (isChain(r.target) && /^[\w.-]+$/.test(r.target) && !targetOptionsView(r.targetOptions)?.length) {
    w.push("jump", r.target);
  } else {
    return { why: r.target ? `-j ${r.target}${(targetOptionsView(r.targetOptions) ?? []).map((o) => ` --${o.name} ${o.value}`).join("")}` : "a rule without a target" };
  }
  return { text: w.join(" ") };
}
