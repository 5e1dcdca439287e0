// What loading the compiled rules would change on a host: compare two rule sets chain by
// chain (pure; the command in command.ts fetches the live side). Rules are compared in
// their canonical spelling (save.ts); order matters, and a rule that only changes place is
// reported as a move, not as a removal plus an addition.
import { diffArrays } from "diff";
import type { SavedChain, SavedRule, SavedRuleset } from "./save.js";
import { BUILTIN_CHAINS, type Table } from "../ir/ruleset.js";

export type LineKind = "same" | "added" | "removed" | "moved";

export interface DiffLine {
  kind: LineKind;
  text: string;
  /** 1-based positions in the live chain / the compiled chain, where they exist. */
  live?: number;
  wanted?: number;
}

export interface ChainDiff {
  family: 4 | 6;
  table: string;
  chain: string;
  /** "added": only in the compiled rules; "removed": only live (loading deletes it). */
  status: "added" | "removed" | "changed";
  policy?: { live: string; wanted: string };
  lines: DiffLine[];
}

export interface DiffSummary {
  rulesAdded: number;
  rulesRemoved: number;
  rulesMoved: number;
  chainsAdded: number;
  chainsRemoved: number;
  policiesChanged: number;
}

export interface DiffResult {
  changed: boolean;
  chains: ChainDiff[];
  summary: DiffSummary;
  warnings: string[];
  /** Chains left out of the comparison (other tools' chains). */
  ignored: string[];
}

export interface Scope {
  /** Compare only these chains (iptables on); undefined: every chain of the tables compiled. */
  chains?: Set<string>;
  /** Chains of other tools, left out (with the rules that jump to them). */
  isForeign: (chain: string) => boolean;
}

function diffRules(live: SavedRule[], wanted: SavedRule[]): DiffLine[] {
  // Rules written alike are the same rule; only rules whose text differs are put in
  // canonical spelling (key) to compare, so an unchanged chain is never normalised.
  const parts = diffArrays(live, wanted, { comparator: (a, b) => a.text === b.text || a.key === b.key });
  const lines: DiffLine[] = [];
  let li = 0;
  let wi = 0;
  for (const p of parts) {
    for (let k = 0; k < p.value.length; k++) {
      if (p.added) lines.push({ kind: "added", text: wanted[wi]!.text, wanted: ++wi });
      else if (p.removed) lines.push({ kind: "removed", text: live[li]!.text, live: ++li });
      else lines.push({ kind: "same", text: wanted[wi]!.text, live: ++li, wanted: ++wi });
    }
  }
  // A rule removed in one place and added in another is a move.
  const keyOf = (l: DiffLine) => (l.kind === "added" ? wanted[l.wanted! - 1]!.key : live[l.live! - 1]!.key);
  const removedByKey = new Map<string, DiffLine[]>();
  for (const l of lines) if (l.kind === "removed") (removedByKey.get(keyOf(l)) ?? removedByKey.set(keyOf(l), []).get(keyOf(l))!).push(l);
  const drop = new Set<DiffLine>();
  for (const l of lines) {
    if (l.kind !== "added") continue;
    const twin = removedByKey.get(keyOf(l))?.shift();
    if (twin) {
      l.kind = "moved";
      l.live = twin.live;
      drop.add(twin);
    }
  }
  return lines.filter((l) => !drop.has(l));
}

function chainsOf(rs: SavedRuleset | undefined, table: string): Map<string, SavedChain> {
  return rs?.get(table)?.chains ?? new Map();
}

export function diffRulesets(family: 4 | 6, live: SavedRuleset, wanted: SavedRuleset, scope: Scope): { chains: ChainDiff[]; ignored: string[] } {
  const out: ChainDiff[] = [];
  const ignored: string[] = [];
  for (const [table, wt] of wanted) {
    const lc = chainsOf(live, table);
    const names = [...new Set([...wt.chains.keys(), ...lc.keys()])];
    for (const name of names) {
      if (scope.chains && !scope.chains.has(name)) continue;
      if (scope.isForeign(name)) {
        if (lc.has(name)) ignored.push(`${table} ${name}`);
        continue;
      }
      const w = wt.chains.get(name);
      // A built-in chain always exists, whatever a dump says (ferm --lines leaves out those it does not write): empty, ACCEPT.
      const l = lc.get(name) ?? (BUILTIN_CHAINS[table as Table["name"]]?.includes(name) ? { name, policy: "ACCEPT", rules: [] } : undefined);
      const strip = (rules: SavedRule[]) => rules.filter((r) => !scope.isForeign(r.target ?? ""));
      if (!l) {
        out.push({ family, table, chain: name, status: "added", lines: w!.rules.map((r, i) => ({ kind: "added", text: r.text, wanted: i + 1 })) });
        continue;
      }
      if (!w) {
        out.push({ family, table, chain: name, status: "removed", lines: strip(l.rules).map((r, i) => ({ kind: "removed", text: r.text, live: i + 1 })) });
        continue;
      }
      const lines = diffRules(strip(l.rules), strip(w.rules));
      const policy = l.policy !== w.policy ? { live: l.policy, wanted: w.policy } : undefined;
      if (policy || lines.some((x) => x.kind !== "same")) out.push({ family, table, chain: name, status: "changed", policy, lines });
    }
  }
  return { chains: out, ignored };
}

export function summarise(chains: ChainDiff[]): DiffSummary {
  const s: DiffSummary = { rulesAdded: 0, rulesRemoved: 0, rulesMoved: 0, chainsAdded: 0, chainsRemoved: 0, policiesChanged: 0 };
  for (const c of chains) {
    if (c.status === "added") s.chainsAdded++;
    if (c.status === "removed") s.chainsRemoved++;
    if (c.policy) s.policiesChanged++;
    for (const l of c.lines) {
      if (l.kind === "added") s.rulesAdded++;
      else if (l.kind === "removed") s.rulesRemoved++;
      else if (l.kind === "moved") s.rulesMoved++;
    }
  }
  return s;
}

const plural = (n: number, what: string, many = `${what}s`) => `${n} ${n === 1 ? what : many}`;

export function summaryLine(s: DiffSummary): string {
  return [
    `${plural(s.rulesAdded, "rule")} added`,
    `${s.rulesRemoved} removed`,
    `${s.rulesMoved} moved`,
    `${plural(s.chainsAdded, "chain")} added`,
    `${s.chainsRemoved} removed`,
    `${plural(s.policiesChanged, "policy", "policies")} changed`,
  ].join(", ");
}

export interface RenderOptions {
  color: boolean;
  context: number;
  liveName: string;
  wantedName: string;
}

const C = { red: "\x1b[31m", green: "\x1b[32m", cyan: "\x1b[36m", yellow: "\x1b[33m", bold: "\x1b[1m", dim: "\x1b[2m", off: "\x1b[0m" };

/**
 * A unified diff grouped by table and chain, with `context` lines around each change, a part
 * at a time (a chain, or a few thousand lines): a big diff is written out without being held
 * whole.
 */
export function* renderDiffParts(r: DiffResult, o: RenderOptions): Generator<string> {
  const paint = (code: string, s: string) => (o.color ? `${code}${s}${C.off}` : s);
  let out: string[] = [];
  const flush = () => {
    const part = out.length ? out.join("\n") + "\n" : "";
    out = [];
    return part;
  };
  if (r.chains.length) {
    out.push(paint(C.bold, `--- ${o.liveName}`), paint(C.bold, `+++ ${o.wantedName}`));
  }
  for (const c of r.chains) {
    const what = c.status === "added" ? " (new chain)" : c.status === "removed" ? " (chain would be deleted)" : "";
    out.push(paint(C.cyan, `@@ ${c.family === 4 ? "ip" : "ip6"} ${c.table} ${c.chain}${what} @@`));
    if (c.policy) out.push(paint(C.yellow, `! policy ${c.policy.live} -> ${c.policy.wanted}`));
    // Lines within `context` of a change are shown (a chain can have tens of thousands).
    const near = new Uint8Array(c.lines.length);
    c.lines.forEach((l, i) => {
      if (l.kind !== "same") near.fill(1, Math.max(0, i - o.context), i + o.context + 1);
    });
    let skipped = !near.includes(1); // a policy change alone: no rule lines
    for (let i = 0; i < c.lines.length; i++) {
      const l = c.lines[i]!;
      if (!near[i]) {
        if (!skipped) out.push(paint(C.dim, "  …"));
        skipped = true;
        continue;
      }
      skipped = false;
      if (l.kind === "same") out.push(`  ${l.text}`);
      else if (l.kind === "added") out.push(paint(C.green, `+ ${l.text}`));
      else if (l.kind === "removed") out.push(paint(C.red, `- ${l.text}`));
      else out.push(paint(C.yellow, `~ ${l.text}   (moved from position ${l.live} to ${l.wanted})`));
      if (out.length >= 4096) yield flush(); // a chain of 75,000 removed rules goes out in pieces
    }
    yield flush();
  }
  for (const w of r.warnings) out.push(paint(C.yellow, `warning: ${w}`));
  const ignored = r.ignored.length ? `; ignored ${plural(r.ignored.length, "chain")} of other tools (--all compares them)` : "";
  out.push(`${r.changed ? "dockwall diff: " : "dockwall diff: no changes; "}${summaryLine(r.summary)}${ignored}`);
  yield flush();
}
