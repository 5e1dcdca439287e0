// The reconcile step of `dockwall watch`, pure: what is loaded (iptables-save), what should be
// (the compiled tables laid over it, other tools' chains kept: apply/merge.ts), and the
// iptables-restore --noflush input that rewrites only the chains that differ — in one
// transaction per family. Nothing else is touched: other tools' chains and their jumps, and
// chains that are already right, stay as the kernel has them (their counters too).
import { parseSave, type SavedChain, type SavedRuleset } from "../live/save.js";
import type { Ruleset } from "../ir/ruleset.js";
import { BUILTIN_CHAINS, type Table } from "../ir/ruleset.js";
import { mergeForLoad } from "../apply/merge.js";
import { diffArrays } from "diff";

export interface ChainChange {
  table: string;
  chain: string;
  kind: "added" | "changed" | "removed";
  rulesAdded: number;
  rulesRemoved: number;
}

export interface Step {
  /** iptables-restore --noflush input; "" when nothing differs. */
  text: string;
  changes: ChainChange[];
  /** Other tools' chains kept (as `filter f2b-sshd`). */
  kept: string[];
  /** What the kernel holds once the step is loaded: every table, the ones it does not touch as they are. */
  after: SavedRuleset;
}

function sameChain(a: SavedChain, b: SavedChain): boolean {
  if (a.policy !== b.policy || a.rules.length !== b.rules.length) return false;
  for (let i = 0; i < a.rules.length; i++) if (a.rules[i]!.text !== b.rules[i]!.text && a.rules[i]!.key !== b.rules[i]!.key) return false;
  return true;
}

function counted(live: SavedChain | undefined, want: SavedChain | undefined): { rulesAdded: number; rulesRemoved: number } {
  const have = new Map<string, number>();
  for (const r of live?.rules ?? []) have.set(r.key, (have.get(r.key) ?? 0) + 1);
  let added = 0;
  for (const r of want?.rules ?? []) {
    const n = have.get(r.key) ?? 0;
    if (n > 0) have.set(r.key, n - 1);
    else added++;
  }
  let removed = 0;
  for (const n of have.values()) removed += n;
  return { rulesAdded: added, rulesRemoved: removed };
}

/** What follows `-A CHAIN ` in a rule's text. */
function specOf(chain: string, text: string): string {
  const prefix = `-A ${chain} `;
  return text.startsWith(prefix) ? text.slice(prefix.length) : text.replace(/^-A \S+ /, "");
}

/**
 * `-D` and `-I N` commands that turn `have` into `want` rule by rule, when that is much less
 * than rewriting the chain; undefined otherwise. Deletions first (by rule, which is exact for
 * identical rules too), then insertions at their final positions, in ascending order: each
 * lands after the rules that already stand before it.
 */
function edit(chain: string, have: SavedChain, want: SavedChain): string[] | undefined {
  if (have.rules.length < 16) return undefined;
  const parts = diffArrays(have.rules, want.rules, { comparator: (a, b) => a.text === b.text || a.key === b.key });
  const out: string[] = [];
  const inserts: string[] = [];
  let at = 0; // position in `want`
  for (const p of parts) {
    if (p.removed) for (const r of p.value) out.push(`-D ${chain} ${specOf(chain, r.text)}`);
    else if (p.added) for (const r of p.value) inserts.push(`-I ${chain} ${++at} ${specOf(chain, r.text)}`);
    else at += p.value.length;
  }
  out.push(...inserts);
  return out.length * 4 < want.rules.length + have.rules.length ? out : undefined;
}

/**
 * The --noflush input that brings `live` to `wanted` (compiled) one changed chain at a time;
 * `only`: those chains alone (the others as they are loaded).
 */
export function reconcileStep(live: SavedRuleset, wanted: Ruleset, opts: { ownsInput: boolean; hostsInput?: SavedChain; only?: (table: string, chain: string) => boolean }): Step {
  const merged = mergeForLoad(live, wanted, opts);
  const desired = parseSave(merged.text);
  return stepTo(live, opts.only ? keepOnly(live, desired, opts.only) : desired, merged.kept);
}

/** `desired` in the chains `only` names; every other chain as `live` has it. */
function keepOnly(live: SavedRuleset, desired: SavedRuleset, only: (table: string, chain: string) => boolean): SavedRuleset {
  const out: SavedRuleset = new Map();
  for (const [name, dt] of desired) {
    const chains = new Map<string, SavedChain>();
    for (const [c, have] of live.get(name)?.chains ?? []) {
      const want = dt.chains.get(c);
      if (!only(name, c)) chains.set(c, have);
      else if (want) chains.set(c, want);
    }
    for (const [c, want] of dt.chains) if (only(name, c) && !chains.has(c)) chains.set(c, want);
    out.set(name, { name, chains });
  }
  return out;
}

/**
 * The --noflush input that brings `live` to `desired`, table by table: every table `desired`
 * has is made exactly its (chains that differ rewritten or edited, chains it lacks removed);
 * a table it does not have is not touched.
 */
export function stepTo(live: SavedRuleset, desired: SavedRuleset, kept: string[] = []): Step {
  const out: string[] = [];
  const changes: ChainChange[] = [];
  for (const [tname, dt] of desired) {
    const lt = live.get(tname);
    const lchains = lt?.chains ?? new Map<string, SavedChain>();
    const builtins = BUILTIN_CHAINS[tname as Table["name"]] ?? [];
    const decl: string[] = [];
    const body: string[] = [];
    const drop: string[] = [];
    for (const [name, want] of dt.chains) {
      const have = lchains.get(name);
      if (have && sameChain(have, want)) continue;
      changes.push({ table: tname, chain: name, kind: have ? "changed" : "added", ...counted(have, want) });
      const builtin = builtins.includes(name);
      // A built-in chain whose rules are as they are and whose policy alone changes (iptables on: FORWARD DROP over
      // dockerd's rules): its policy set, its rules not touched (a rule another tool adds meanwhile stays).
      if (builtin && have && sameChain({ ...have, policy: want.policy }, want)) {
        decl.push(`:${name} ${want.policy} [0:0]`);
        continue;
      }
      const edits = have ? edit(name, have, want) : undefined;
      if (edits) {
        // A few rules differ in a long chain (a container started in a chain of thousands):
        // delete and insert just those, in the same transaction, instead of rewriting it.
        if (builtin && have!.policy !== want.policy) decl.push(`:${name} ${want.policy} [0:0]`);
        body.push(...edits);
        continue;
      }
      // A user chain's ':' line creates or flushes it; a built-in chain's sets its policy, and -F flushes it.
      decl.push(`:${name} ${builtin ? want.policy : "-"} [0:0]`);
      if (builtin) body.push(`-F ${name}`);
      body.push(...want.rules.map((r) => r.text));
    }
    // Chains that are loaded but should not be (a container's network gone, a layout change).
    for (const [name, have] of lchains) {
      if (dt.chains.has(name) || builtins.includes(name)) continue;
      changes.push({ table: tname, chain: name, kind: "removed", rulesAdded: 0, rulesRemoved: have.rules.length });
      decl.push(`:${name} - [0:0]`);
      drop.push(`-X ${name}`);
    }
    if (decl.length || body.length || drop.length) out.push(`*${tname}`, ...decl, ...body, ...drop, "COMMIT");
  }
  return { text: out.length ? out.join("\n") + "\n" : "", changes, kept, after: new Map([...live, ...desired]) };
}

/** One log line's worth: `nat DOCKER +1 -1, filter DOCKER-USER +2`. */
export function describeChanges(changes: ChainChange[]): string {
  return changes
    .map((c) => `${c.table} ${c.chain}${c.kind === "added" ? " (new)" : c.kind === "removed" ? " (removed)" : ""} ${c.rulesAdded ? `+${c.rulesAdded}` : ""}${c.rulesAdded && c.rulesRemoved ? " " : ""}${c.rulesRemoved ? `-${c.rulesRemoved}` : ""}`.trimEnd())
    .join(", ");
}
