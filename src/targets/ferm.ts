// Ruleset(s) → ferm.conf. One `domain` block per family, tables and chains nested, a
// comment above each group of rules that serves one container port or policy line.
import type { Chain, Rule, Ruleset } from "../ir/ruleset.js";
import { templates } from "./templates.js";

const KEYWORD_TARGETS = new Set(["ACCEPT", "DROP", "RETURN", "MASQUERADE", "REJECT", "DNAT", "SNAT"]);

function fermValue(v: string): string {
  return /^[\w.:/,-]+$/.test(v) ? v : `"${v}"`;
}

const not = (n: { value: string; neg?: boolean }): string => (n.neg ? `!${n.value}` : n.value);

/**
 * Appends a rule as ferm words to `w` (the line is `w.join(" ")`), selectors (saddr, daddr,
 * interface, outerface, proto) first, each keyword and its value a word of its own.
 */
function fermWords(r: Rule, w: string[]): void {
  if (r.src) w.push("saddr", not(r.src));
  if (r.dst) w.push("daddr", not(r.dst));
  if (r.in) w.push("interface", not(r.in));
  if (r.out) w.push("outerface", not(r.out));
  if (r.proto) w.push("proto", r.proto);
  for (const m of r.matches) {
    // ferm loads the protocol's own match (tcp, udp, icmp6) by itself.
    const implicit = m.module === r.proto || (m.module === "icmp6" && r.proto === "ipv6-icmp");
    if (!implicit) w.push("mod", m.module);
    for (const o of m.options) {
      if (m.module === "set" && o.name === "match-set") {
        w.push("set", `${o.neg ? "!" : ""}${o.value}`); // ferm: `mod set set NAME FLAGS`
        continue;
      }
      let value = o.value ?? "";
      if (o.name === "ctstate" && value.includes(",")) value = `(${value.split(",").join(" ")})`;
      else value = fermValue(value);
      w.push(o.name, o.neg ? `!${value}` : value);
    }
  }
  if (KEYWORD_TARGETS.has(r.target)) w.push(r.target);
  else w.push("jump", r.target);
  for (const o of r.targetOptions ?? []) w.push(o.name, fermValue(o.value));
}

/** The selectors whose runs nest: `outerface docker0 { … }`. */
const SELECTORS = new Set(["saddr", "daddr", "interface", "outerface"]);

/** Lines of a chain's body are indented this far (under `domain`, `table`, `chain`). */
const INDENT = "      ";

/**
 * A chain's rules as ferm text: a comment above each run of rules that serves one container
 * port or policy line, and runs that share their first selector nested the way one writes
 * ferm by hand:  outerface docker0 { mod conntrack ctstate (RELATED ESTABLISHED) ACCEPT; jump DOCKER; }
 * Tens of thousands of lines on a big host: written here, the template places the text.
 */
function chainBody(rules: Rule[]): string {
  const out: string[] = [];
  // Each rule as one line, and its first selector with its value when more follows (runs
  // that share it nest).
  const lines: string[] = [];
  const heads: (string | undefined)[] = [];
  const words: string[] = [];
  for (let g = 0; g < rules.length; ) {
    const comment = rules[g]!.comment ?? "";
    let end = g + 1;
    while (end < rules.length && (rules[end]!.comment ?? "") === comment) end++;
    if (comment) out.push(`${INDENT}# ${comment}`);
    lines.length = 0;
    heads.length = 0;
    for (let k = g; k < end; k++) {
      words.length = 0;
      fermWords(rules[k]!, words);
      lines.push(words.join(" "));
      heads.push(words.length > 2 && SELECTORS.has(words[0]!) ? `${words[0]} ${words[1]}` : undefined);
    }
    for (let i = 0; i < lines.length; ) {
      const head = heads[i];
      let j = i + 1;
      if (head !== undefined) while (j < lines.length && heads[j] === head) j++;
      if (j - i >= 2) {
        out.push(`${INDENT}${head} {`);
        for (let k = i; k < j; k++) out.push(`${INDENT}  ${lines[k]!.slice(head!.length + 1)};`);
        out.push(`${INDENT}}`);
      } else {
        out.push(`${INDENT}${lines[i]};`);
      }
      i = j;
    }
    g = end;
  }
  // One flat string (join); concatenating line by line would keep a rope of every piece.
  return out.length ? out.join("\n") + "\n" : "";
}

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

function tablesOf(rs: Ruleset, preserve: Partial<Record<string, string[]>>): TableView[] {
  const names = TABLE_ORDER.filter((n) => rs.tables.some((t) => t.name === n) || preserve[n]?.length);
  return names.map((name) => {
    const t = rs.tables.find((x) => x.name === name);
    return {
      name,
      // `chain (A B C) @preserve;` keeps chains dockwall does not own as the kernel has them.
      preserve: fermList(preserve[name] ?? []),
      chains: (t?.chains ?? []).map((c) => ({ name: c.name, policy: c.builtin ? (c.policy ?? "ACCEPT") : "", empty: c.rules.length === 0, body: chainBody(c.rules) })),
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

export function renderFerm(input: FermInput): string {
  const views = input.rulesets.map((rs) => ({ family: rs.family, tables: tablesOf(rs, input.preserve?.[rs.family] ?? {}) }));
  const v4 = views.find((v) => v.family === 4);
  const v6 = views.find((v) => v.family === 6);
  const domains: DomainView[] = v4 && v6 ? mergeDomains(v4.tables, v6.tables) : views.map((v) => ({ name: v.family === 4 ? "ip" : "ip6", tables: v.tables }));
  return templates.ferm({ header: input.header, hooks: (input.hooks ?? []).map((h) => `"${h}"`), domains });
}
