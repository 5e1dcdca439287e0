// The reconcile step of `dockwall watch`, pure: what is loaded (iptables-save), what should be
// (the compiled tables laid over it, other tools' chains kept: apply/merge.ts), and the
// iptables-restore --noflush input that rewrites only the chains that differ — in one
// transaction per family. Nothing else is touched: other tools' chains and their jumps, and
// chains that are already right, stay as the kernel has them (their counters too).
import { parseSave, type SavedChain, type SavedRuleset } from "../live/save.js";
import type { Ruleset } from "../ir/ruleset.js";
import { BUILTIN_CHAINS, type Table } from "../ir/ruleset.js";
import { mergeForLoad } from "../apply/merge.js";

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

/** The --noflush input that brings `live` to `wanted` (compiled) one changed chain at a time. */
export function reconcileStep(live: SavedRuleset, wanted: Ruleset, opts: { ownsInput: boolean }): Step {
  const desired = parseSave(mergeForLoad(live, wanted, opts).text);
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
    if (decl.length) out.push(`*${tname}`, ...decl, ...body, ...drop, "COMMIT");
  }
  return { text: out.length ? out.join("\n") + "\n" : "", changes };
}

/** One log line's worth: `nat DOCKER +1 -1, filter DOCKER-USER +2`. */
export function describeChanges(changes: ChainChange[]): string {
  return changes
    .map((c) => `${c.table} ${c.chain}${c.kind === "added" ? " (new)" : c.kind === "removed" ? " (removed)" : ""} ${c.rulesAdded ? `+${c.rulesAdded}` : ""}${c.rulesAdded && c.rulesRemoved ? " " : ""}${c.rulesRemoved ? `-${c.rulesRemoved}` : ""}`.trimEnd())
    .join(", ");
}
