// Reading iptables-save (or iptables-restore) text, and putting each rule in one canonical
// spelling, so that two texts that the kernel would load to the same state compare equal:
// long and short options (as ferm and iptables write them), implicit `-m tcp`/`-m udp`,
// `/32` and `/128`, host bits, `!` before or after the option, counters, comments,
// quoting, and the order of matches and of options within a match.
import { canonicalAddress } from "../ir/address.js";
import { BUILTIN_CHAINS, rule, type Chain, type Match, type Neg, type Rule, type Ruleset, type Table } from "../ir/ruleset.js";
import { quoteWord, TWO_WORDS, typedMatch, typedTargetOptions } from "../ir/match.js";
export { quoteWord };

/**
 * Canonical spellings already worked out, by rule text: a diff or a reconcile reads the same
 * rules on both sides. A watcher runs for months while containers come and go with new rule
 * texts, so what it keeps is what its last two reconciles used: each reconcile starts a new
 * generation (newKeyGeneration), a text found in the one before is carried over, and the rest
 * is let go. One-shot commands never start one; past KEY_CACHE_MAX texts the cache starts
 * again all the same (a reconcile at 2,000 containers reads about 20,000 rules a family).
 */
let keyCache = new Map<string, string>();
let keysBefore = new Map<string, string>();
const KEY_CACHE_MAX = 200_000;

/** A reconcile begins: the spellings the one before did not use are let go. */
export function newKeyGeneration(): void {
  keysBefore = keyCache;
  keyCache = new Map();
}

/** How many spellings are kept (for tests and the memory benchmark). */
export function keyCacheSize(): number {
  return keyCache.size + keysBefore.size;
}

/** One rule: its text as written, and (computed when first asked for) its canonical spelling. */
export class SavedRule {
  private canonical: string | undefined;

  constructor(
    /** As written in the text it came from (for display). */
    readonly text: string,
    /** What follows `-A CHAIN`: words, or where it starts in `text` (split when needed). */
    private readonly rest: string[] | number,
  ) {}

  private get restWords(): string[] {
    return typeof this.rest === "number" ? words(this.text.slice(this.rest)) : this.rest;
  }

  /** Canonical spelling: equal keys mean the kernel holds the same rule. Lazy, because
   * chains that are not compared (other tools') need not be normalised at all. */
  get key(): string {
    if (this.canonical === undefined) {
      // The live dump and the compiled rules mostly print a rule the same way: normalise each text once.
      let k = keyCache.get(this.text);
      if (k === undefined) {
        if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
        keyCache.set(this.text, (k = keysBefore.get(this.text) ?? canonicalRule(this.restWords)));
      }
      this.canonical = k;
    }
    return this.canonical;
  }

  /** The rule in dockwall's IR, read from its words (what the packet evaluator walks). */
  toRule(): Rule {
    return irRule(parseRuleWords(this.restWords));
  }

  /** The jump target (-j/-g), read without normalising. */
  get target(): string | undefined {
    // Quoted text may hold " -j ": read such a rule's words.
    if (this.text.includes('"')) {
      const ws = this.restWords;
      for (let i = ws.length - 2; i >= 0; i--) if (["-j", "--jump", "-g", "--goto"].includes(ws[i]!)) return ws[i + 1];
      return undefined;
    }
    // Searched in place: the flag must lie in the part after `-A CHAIN`.
    const t = typeof this.rest === "number" ? this.text : this.rest.join(" ");
    const from = typeof this.rest === "number" ? this.rest : 0;
    for (const [inner, first] of TARGET_FLAGS) {
      const i = t.lastIndexOf(inner);
      const start = i >= from - 1 && i >= 0 ? i + inner.length : t.startsWith(first, from) ? from + first.length : -1;
      if (start < 0) continue;
      const end = t.indexOf(" ", start);
      return t.slice(start, end < 0 ? undefined : end);
    }
    return undefined;
  }
}

/** The jump flags, as found inside a rule and at its start. */
const TARGET_FLAGS = ["-j", "--jump", "-g", "--goto"].map((f) => [` ${f} `, `${f} `] as const);

export interface SavedChain {
  name: string;
  /** "ACCEPT"/"DROP" for built-in chains, "-" for user chains. */
  policy: string;
  rules: SavedRule[];
}

export interface SavedTable {
  name: string;
  chains: Map<string, SavedChain>;
}

export type SavedRuleset = Map<string, SavedTable>;

export class SaveSyntaxError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}


/** Splits a rule line into words, honouring "double quotes" and backslash escapes. */
export function words(line: string): string[] {
  // Most rules have no quotes, escapes or tabs: plain spaces split them.
  if (!/["\\\t]/.test(line)) return line.split(" ").filter((w) => w !== "");
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === "\\" && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === " " || c === "\t") {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c === "\\" && i + 1 < line.length ? line[++i] : c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

const SHORT: Record<string, string> = {
  "--append": "-A", "--source": "-s", "--src": "-s", "--destination": "-d", "--dst": "-d",
  "--in-interface": "-i", "--out-interface": "-o", "--protocol": "-p", "--jump": "-j", "--goto": "-g",
  "--match": "-m", "--fragment": "-f", "--set-counters": "-c",
};

/** Which options belong to which match module (for options that come before their `-m`). */
const MODULE_OPTIONS: Record<string, string[]> = {
  tcp: ["dport", "sport", "tcp-flags", "syn", "tcp-option", "destination-port", "source-port"],
  udp: ["dport", "sport", "destination-port", "source-port"],
  icmp: ["icmp-type"],
  icmp6: ["icmpv6-type"],
  conntrack: ["ctstate", "ctproto", "ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst", "ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport", "ctstatus", "ctexpire", "ctdir"],
  addrtype: ["src-type", "dst-type", "limit-iface-in", "limit-iface-out"],
  iprange: ["src-range", "dst-range"],
  multiport: ["sports", "dports", "ports", "source-ports", "destination-ports"],
  state: ["state"],
  comment: ["comment"],
  physdev: ["physdev-in", "physdev-out", "physdev-is-in", "physdev-is-out", "physdev-is-bridged"],
};

/** Option → the modules that know it (built once; canonicalRule looks options up a lot). */
const OWNERS = new Map<string, string[]>();
for (const [module, opts] of Object.entries(MODULE_OPTIONS)) for (const o of opts) OWNERS.set(o, [...(OWNERS.get(o) ?? []), module]);

const OPTION_ALIASES: Record<string, string> = {
  "destination-port": "dport", "source-port": "sport", "destination-ports": "dports", "source-ports": "sports",
  to: "to-destination",
};

const PROTO_ALIASES: Record<string, string> = {
  "6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", icmpv6: "ipv6-icmp", "ipv6-icmp": "ipv6-icmp",
  "132": "sctp", TCP: "tcp", UDP: "udp", ICMP: "icmp",
};

/** The match a protocol's own options live in. */
const PROTO_MODULE: Record<string, string> = { tcp: "tcp", udp: "udp", icmp: "icmp", "ipv6-icmp": "icmp6", sctp: "sctp" };

const CT_ORDER = ["INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT"];

function canonicalValue(module: string, opt: string, value: string | undefined): string | undefined {
  if (value === undefined) return value;
  if (opt === "ctstate" || opt === "state") {
    return value.split(",").sort((a, b) => CT_ORDER.indexOf(a) - CT_ORDER.indexOf(b)).join(",");
  }
  if (["ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst"].includes(opt)) return canonicalAddress(value);
  if (module === "tcp" || module === "udp" || module === "multiport") {
    if (opt === "dport" || opt === "sport" || opt === "dports" || opt === "sports" || opt === "ports") return value.replace(/-/g, ":");
  }
  return value;
}

interface Opt {
  name: string;
  value?: string;
  neg: boolean;
}

/** The basic matches, in the order iptables-save prints them. */
const BASE_ORDER = ["-s", "-d", "-i", "-o", "-p", "-f"];
const BASE_OPTS = new Set(BASE_ORDER);
const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Options whose value is free text, taken whatever it starts with. */
const TEXT_OPTIONS = new Set(["comment", "log-prefix", "nflog-prefix", "string", "hex-string", "name"]);


/** Options that take no value. */
const FLAGS = new Set(["syn", "notrack", "random", "random-fully", "persistent", "fragment", "log-uid", "log-tcp-sequence", "log-tcp-options", "log-ip-options", "rsource", "rdest", "set", "update", "rcheck", "remove", "physdev-is-in", "physdev-is-out", "physdev-is-bridged"]);

/** A rule's words, read into its parts (canonical values; matches in the order written). */
interface ParsedRule {
  base: Map<string, Opt>;
  matches: { module: string; opts: Opt[] }[];
  target: string | undefined;
  targetFlag: string;
  targetOpts: Opt[];
  proto: string | undefined;
  /** Modules given twice (`-m mark … -m limit … -m mark …`): merged above, in one place. */
  repeated: string[];
}

function parseRuleWords(ws: string[]): ParsedRule {
  const base = new Map<string, Opt>();
  const matches: { module: string; opts: Opt[] }[] = [];
  let target: string | undefined;
  let targetFlag = "-j";
  const targetOpts: Opt[] = [];
  let current: { module: string; opts: Opt[] } | undefined;
  let proto: string | undefined;
  let pendingNeg = false;
  const repeated: string[] = [];

  const matchOf = (module: string) => {
    let m = matches.find((x) => x.module === module);
    if (!m) matches.push((m = { module, opts: [] }));
    return m;
  };
  const moduleFor = (name: string): { module: string; opts: Opt[] } => {
    const owners = OWNERS.get(name);
    // An option the current match knows, or one no known match claims, stays with it.
    if (current && (owners === undefined ? true : owners.includes(current.module) || !(current.module in MODULE_OPTIONS))) return current;
    const pm = proto ? PROTO_MODULE[proto] : undefined;
    if (pm && owners?.includes(pm)) return matchOf(pm);
    if (owners) return matchOf(owners[0]!);
    return current ?? { module: "?", opts: [] };
  };

  for (let i = 0; i < ws.length; i++) {
    let w = ws[i]!;
    if (w === "!") {
      pendingNeg = true;
      continue;
    }
    w = SHORT[w] ?? w;
    if (w === "-c") {
      i += 2; // counters
      continue;
    }
    if (BASE_OPTS.has(w)) {
      let neg = pendingNeg;
      pendingNeg = false;
      let value: string | undefined;
      if (w !== "-f") {
        value = ws[++i];
        if (value === "!") {
          neg = true; // old style: -s ! x
          value = ws[++i];
        }
      }
      if (w === "-s" || w === "-d") value = canonicalAddress(value!);
      if (w === "-p") {
        value = PROTO_ALIASES[value!] ?? value!.toLowerCase();
        proto = value;
      }
      base.set(w, { name: w, value, neg });
      continue;
    }
    if (w === "-m") {
      const module = ws[++i]!;
      current = matches.find((m) => m.module === module && m.module !== "comment") ?? undefined;
      if (current || (module === "comment" && matches.some((m) => m.module === "comment"))) repeated.push(module);
      if (!current) matches.push((current = { module, opts: [] }));
      continue;
    }
    if (w === "-j" || w === "-g") {
      target = ws[++i];
      targetFlag = w;
      current = undefined;
      continue;
    }
    if (w.startsWith("--")) {
      let name = w.slice(2);
      name = OPTION_ALIASES[name] ?? name;
      const neg = pendingNeg;
      pendingNeg = false;
      let value: string | undefined;
      const next = ws[i + 1];
      const looksLikeValue = (v: string | undefined) => v !== undefined && !(v.charCodeAt(0) === 45 && !(v.charCodeAt(1) >= 48 && v.charCodeAt(1) <= 57));
      // A text option's value may start with '-' (--log-prefix "-IN- "); others take a word that does not.
      if (!FLAGS.has(name) && next !== undefined && (TEXT_OPTIONS.has(name) || looksLikeValue(next))) {
        value = ws[++i];
        if (value === "!" && !TEXT_OPTIONS.has(name)) value = ws[++i];
        // Options of two words: --tcp-flags MASK COMP, --match-set NAME FLAGS, --add-set NAME FLAGS.
        if (TWO_WORDS.has(name) && looksLikeValue(ws[i + 1])) value = `${value} ${ws[++i]}`;
      }
      if (target !== undefined) {
        targetOpts.push({ name, value, neg });
      } else {
        const m = moduleFor(name);
        m.opts.push({ name, value: canonicalValue(m.module, name, value), neg });
      }
      continue;
    }
    // Anything else: keep it as a bare word on the current match.
    (current ?? moduleFor(w)).opts.push({ name: w, neg: pendingNeg });
    pendingNeg = false;
  }

  return { base, matches, target, targetFlag, targetOpts, proto, repeated };
}

/**
 * Whether a match read means something: one with options, or a module that tests the packet with
 * none (`-m socket`, `-m frag`, `-m rt`). A review found those dropped, so `-m socket -j ACCEPT`
 * read as `-j ACCEPT` (and ferm-keep wrote it so). A protocol's own match without options
 * (`-p tcp -m tcp`) says nothing `-p` does not, and a comment nothing at all.
 */
const meansSomething = (m: { module: string; opts: unknown[] }): boolean => m.opts.length > 0 || !NOTHING_BARE.has(m.module);
const NOTHING_BARE = new Set(["tcp", "udp", "icmp", "icmp6", "comment"]);

/** One rule (the words after `-A CHAIN`) in canonical spelling. */
export function canonicalRule(ws: string[]): string {
  const { base, matches, target, targetFlag, targetOpts, proto } = parseRuleWords(ws);
  // comments do not change what a rule does
  const kept = matches.filter((m) => m.module !== "comment" && meansSomething(m));
  kept.sort((a, b) => (a.module < b.module ? -1 : a.module > b.module ? 1 : 0));
  const parts: string[] = [];
  for (const k of BASE_ORDER) {
    const o = base.get(k);
    if (o) parts.push(`${o.neg ? "! " : ""}${k}${o.value !== undefined ? " " + o.value : ""}`);
  }
  for (const m of kept) {
    parts.push(`-m ${m.module}`);
    if (m.opts.length > 1) m.opts.sort(byName);
    for (const o of m.opts) {
      parts.push(`${o.neg ? "! " : ""}--${o.name}${o.value !== undefined ? " " + o.value : ""}`);
    }
  }
  if (target) {
    parts.push(`${targetFlag} ${target}`);
    const tos = [...targetOpts];
    if (target === "REJECT" && !tos.some((o) => o.name === "reject-with")) tos.push({ name: "reject-with", value: proto === "ipv6-icmp" || ws.join(" ").includes(":") ? "icmp6-port-unreachable" : "icmp-port-unreachable", neg: false });
    for (const o of tos.sort((a, b) => (a.name < b.name ? -1 : 1))) parts.push(`--${o.name}${o.value !== undefined ? " " + o.value : ""}`);
  }
  return parts.join(" ");
}

/**
 * Whether iptables-save's text is whole: every table it starts ends with COMMIT. (It exits 0
 * even when its output could not all be written, a full disk say.)
 */
export function isWholeSave(text: string): boolean {
  const lines = text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  return lines.length === 0 || (lines.at(-1)!.trim() === "COMMIT" && lines.filter((l) => l.startsWith("*")).length === lines.filter((l) => l.trim() === "COMMIT").length);
}

/** Parses iptables-save / iptables-restore text. Commands other than -A (-N, -P, -F, -X, -I) are applied too. */
export function parseSave(text: string): SavedRuleset {
  const tables: SavedRuleset = new Map();
  let table: SavedTable | undefined;
  // Line by line without splitting the text first (a live dump can have 100,000 rules).
  for (let n = 0, at = 0; at <= text.length; n++) {
    let eol = text.indexOf("\n", at);
    if (eol < 0) eol = text.length;
    const line = text.slice(at, eol).trim();
    at = eol + 1;
    if (!line || line.startsWith("#")) continue;
    if (line.startsWith("*")) {
      const name = line.slice(1).trim();
      table = tables.get(name) ?? { name, chains: new Map() };
      tables.set(name, table);
      continue;
    }
    if (!table) throw new SaveSyntaxError(n + 1, `'${line.slice(0, 40)}' outside a table (a table starts with *filter, *nat, …)`);
    if (line === "COMMIT") {
      table = undefined;
      continue;
    }
    if (line.startsWith(":")) {
      const [name, policy] = line.slice(1).split(/\s+/);
      const existing = table.chains.get(name!);
      if (existing) existing.policy = policy ?? "-";
      else table.chains.set(name!, { name: name!, policy: policy ?? "-", rules: [] });
      continue;
    }
    // The common case, `-A CHAIN …` with single spaces: keep the text; it is split and
    // normalised only if compared.
    const end = line.startsWith("-A ") ? line.indexOf(" ", 3) : -1;
    if (end > 3 && line[end + 1] !== undefined && line[end + 1] !== " " && !/["\t]/.test(line)) {
      const name = line.slice(3, end);
      let c = table.chains.get(name);
      if (!c) table.chains.set(name, (c = { name, policy: "-", rules: [] }));
      c.rules.push(new SavedRule(line, end + 1));
      continue;
    }
    const ws = words(line);
    let cmd = SHORT[ws[0]!] ?? ws[0]!;
    if (cmd === "-c") {
      ws.splice(0, 3); // [packets:bytes] form handled below; "-c p b -A" form here
      cmd = SHORT[ws[0]!] ?? ws[0]!;
    }
    if (/^\[\d+:\d+\]$/.test(cmd)) {
      ws.shift();
      cmd = SHORT[ws[0]!] ?? ws[0]!;
    }
    const chainName = ws[1];
    const chain = (): SavedChain => {
      if (!chainName) throw new SaveSyntaxError(n + 1, `'${cmd}' without a chain`);
      let c = table!.chains.get(chainName);
      if (!c) table!.chains.set(chainName, (c = { name: chainName, policy: "-", rules: [] }));
      return c;
    };
    // Quoted again where a word needs it, so the text loads as it was (`--comment "a b"`).
    const rule = (rest: string[]): SavedRule => new SavedRule(`-A ${chainName} ${rest.map(quoteWord).join(" ")}`, rest);
    if (cmd === "-A") chain().rules.push(rule(ws.slice(2)));
    else if (cmd === "-I" || cmd === "--insert") {
      const hasPos = /^\d+$/.test(ws[2] ?? "");
      chain().rules.splice(hasPos ? Number(ws[2]) - 1 : 0, 0, rule(ws.slice(hasPos ? 3 : 2)));
    } else if (cmd === "-F" || cmd === "--flush") {
      if (chainName) chain().rules = [];
      else for (const c of table.chains.values()) c.rules = [];
    } else if (cmd === "-N" || cmd === "--new-chain") chain();
    else if (cmd === "-X" || cmd === "--delete-chain") {
      if (chainName) table.chains.delete(chainName);
    } else if (cmd === "-P" || cmd === "--policy") chain().policy = ws[2] ?? "-";
    else if (cmd === "-D" || cmd === "--delete") {
      const c = chain();
      const key = canonicalRule(ws.slice(2));
      const i = c.rules.findIndex((r) => r.key === key);
      if (i >= 0) c.rules.splice(i, 1);
    } else throw new SaveSyntaxError(n + 1, `unknown command '${ws[0]}'`);
  }
  return tables;
}

/**
 * Parts read from iptables-save text as an IR rule, comments included (ferm-keep writes them
 * back; the evaluator passes over them); a `-g` (goto) target is kept as the word `-g CHAIN`, which the evaluator does not
 * know, so a rule set that uses one gets "unknown" rather than a guess.
 */
function irRule(p: ParsedRule): Rule {
  const neg = (k: string): Neg<string> | undefined => {
    const o = p.base.get(k);
    return o ? (o.neg ? { value: o.value!, neg: true } : { value: o.value! }) : undefined;
  };
  // Typed where dockwall models the match (ir/match.ts), as it was read otherwise.
  const matches: Match[] = p.matches
    .filter(meansSomething)
    .map((m) => typedMatch(m.module, m.opts.map((o) => (o.neg ? { name: o.name, value: o.value, neg: true } : { name: o.name, value: o.value }))));
  // Merged matches of a module given twice are not the rule as the kernel has it (order, side effects).
  if (p.repeated.length) matches.unshift({ kind: "other", module: "(repeated)", options: p.repeated.map((name) => ({ name })) });
  if (p.base.has("-f")) matches.unshift({ kind: "other", module: "fragment", options: [{ name: "fragment", neg: p.base.get("-f")!.neg || undefined }] });
  const proto = p.base.get("-p");
  if (proto?.neg) matches.unshift({ kind: "other", module: "protocol", options: [{ name: `not ${proto.value}` }] });
  const target = p.target === undefined ? "" : p.targetFlag === "-g" ? `-g ${p.target}` : p.target;
  return rule({
    src: neg("-s"),
    dst: neg("-d"),
    in: neg("-i"),
    out: neg("-o"),
    proto: proto && !proto.neg ? proto.value : undefined,
    matches,
    targetOptions: p.targetOpts.length ? typedTargetOptions(target, p.targetOpts.map((o) => ({ name: o.name, value: o.value ?? "" }))) : undefined,
  }, target);
}

/** iptables-save text, read, as a rule set in dockwall's IR: what the kernel holds, for the packet evaluator. */
export function toRuleset(saved: SavedRuleset, family: 4 | 6): Ruleset {
  const tables: Table[] = [];
  const unwalked: string[] = [];
  for (const [name, t] of saved) {
    // (The security table, SELinux's: its rules can drop what the filter table accepts; a review found them unseen.)
    if (!(name in BUILTIN_CHAINS)) {
      const held = [...t.chains.values()].filter((c) => c.rules.length > 0).map((c) => c.name);
      if (held.length) unwalked.push(`the ${name} table's rules (${held.join(", ")})`);
      continue;
    }
    const builtins = BUILTIN_CHAINS[name as Table["name"]];
    // A chain's rules are read when first walked: a packet visits a few chains of thousands.
    const chains: Chain[] = [...t.chains.values()].map((c) => {
      let rules: Rule[] | undefined;
      return {
        name: c.name,
        builtin: builtins.includes(c.name),
        policy: builtins.includes(c.name) ? (c.policy === "DROP" ? "DROP" : "ACCEPT") : undefined,
        get rules(): Rule[] {
          return (rules ??= c.rules.map((r) => r.toRule()));
        },
      };
    });
    tables.push({ name: name as Table["name"], chains });
  }
  return { family, tables, scope: "full", ...(unwalked.length ? { unwalked } : {}) };
}

/** A compiled rule set (the IR) as a SavedRuleset, without printing and re-reading it. */
export function fromRuleset(rs: Ruleset, ruleText: (chain: string, r: Rule) => string): SavedRuleset {
  const out: SavedRuleset = new Map();
  for (const t of rs.tables) {
    const chains = new Map<string, SavedChain>();
    for (const c of t.chains) {
      const prefix = `-A ${c.name} `;
      chains.set(c.name, {
        name: c.name,
        policy: c.builtin ? (c.policy ?? "ACCEPT") : "-",
        // Split (and normalised) only if compared, like the live side.
        rules: c.rules.map((r) => {
          const text = ruleText(c.name, r);
          return new SavedRule(text, prefix.length);
        }),
      });
    }
    out.set(t.name, { name: t.name, chains });
  }
  return out;
}

/** The whole ruleset as canonical text (what tests compare). */
export function normalise(text: string): string {
  const out: string[] = [];
  const tables = [...parseSave(text).values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const t of tables) {
    out.push(`*${t.name}`);
    const chains = [...t.chains.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const c of chains) out.push(`:${c.name} ${c.policy}`);
    for (const c of chains) for (const r of c.rules) out.push(`-A ${c.name} ${r.key}`.trimEnd());
  }
  return out.join("\n") + "\n";
}
