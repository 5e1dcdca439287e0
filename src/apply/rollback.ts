// What `dockwall rollback` (and the rollback of an unconfirmed `apply --confirm`) loads, pure.
//
// Rolling back restores the previous *policy*, not a copy of the kernel's tables: the policy
// whose rules were in place before the last apply is compiled again with Docker's facts as
// they are now, and loaded as apply loads (only the chains that differ, other tools' chains
// kept). A snapshot of the tables would bring back Docker's chains as they were: a DNAT to the
// address of a removed container, which Docker may have handed to another one since, and
// without the rules of a container started meanwhile.
//
// When the rules before the last apply were not dockwall's (the first apply on a host) there is
// no policy to compile: the snapshot is the host's own rules, and `snapshotTarget` puts back
// from it only what that apply changed, never Docker's chains (see there).
import { firstLine } from "./deploy.js";
import { compile, type CompileResult } from "../compile.js";
import type { RawFacts } from "../facts/read.js";
import { BUILTIN_CHAINS, type Ruleset, type Table } from "../ir/ruleset.js";
import type { SavedChain, SavedRule, SavedRuleset } from "../live/save.js";
import { isForeignChain } from "./merge.js";

/** Where the facts of an apply came from, so that a rollback reads them again from there. */
export type FactsSource =
  | { from: "docker" }
  /** --facts FILE: read again (an absolute path). */
  | { from: "file"; path: string }
  /** --facts - (standard input cannot be read again): the facts as given. */
  | { from: "given"; raw: RawFacts; source: string }
  | { from: "none" };

/** A policy as an apply loaded it: enough to compile it again. */
export interface PolicyRecord {
  /** As named on the command line (for messages). */
  file: string;
  /** The file itself (its real path), to tell a watcher of that file; none for standard input. */
  path?: string;
  text: string;
  facts: FactsSource;
  /** --docker-version as given ("auto" asks the daemon again). */
  dockerVersion?: string;
  /** When it was applied (ms since the epoch). */
  applied: number;
  /** apply --format nft: loaded as the nft file (a rollback to it compiles that again); none: iptables. */
  format?: "nft";
}

/** The chains an apply's rule set writes, per table, and whether the tables are all its own ("full", iptables off) or only those chains ("owned"). */
export interface Owned {
  scope: Ruleset["scope"];
  tables: Record<string, string[]>;
  /** Built-in chains whose policy alone the apply set (iptables on: FORWARD), as `filter FORWARD`: a rollback puts the policy back. */
  policies?: string[];
}

/** What the last apply left for its rollback (rollback.json; the tables themselves are in rollback.v4/.v6). */
export interface RollbackState {
  /** The policy whose rules were in place before the last apply; null when they were not dockwall's. */
  previous: PolicyRecord | null;
  /** What the last apply's rules own, per family: what a rollback without a previous policy puts back. */
  owned: Partial<Record<"4" | "6", Owned>>;
  /** apply --format nft: the tables the file replaced, and each one as `nft list table` printed it before (null: it was not there). */
  nft?: { tables: string[]; listed: Record<string, string | null> };
}

export function ownedOf(rs: Ruleset): Owned {
  const policies = (rs.policies ?? []).map((p) => `${p.table} ${p.chain}`);
  return { scope: rs.scope, tables: Object.fromEntries(rs.tables.map((t) => [t.name, t.chains.map((c) => c.name)])), ...(policies.length ? { policies } : {}) };
}

/** Docker's facts now, read where the apply read them. */
export interface FactsNow {
  /** Rejects with a message when they cannot be had (daemon gone, file unreadable). */
  facts: (from: FactsSource) => Promise<{ raw: RawFacts; source: string } | undefined>;
  /** The running dockerd's release (--docker-version auto). */
  dockerVersion: () => Promise<string>;
}

/** The policy compiled with the facts as they are now (no text rendered), or why it cannot be. */
export async function compileNow(p: PolicyRecord, now: FactsNow): Promise<CompileResult | string> {
  let facts;
  let dockerVersion: string | undefined;
  try {
    facts = await now.facts(p.facts);
    dockerVersion = p.dockerVersion === "auto" ? await now.dockerVersion() : p.dockerVersion;
  } catch (e) {
    return `cannot read Docker's facts now (${firstLine(e)})`;
  }
  // An nft policy is loaded as its file: rendered; an iptables one is compared as rule sets.
  const r = compile(p.text, { file: p.file, dockerVersion, facts, ...(p.format === "nft" ? { format: "nft" as const } : { noRender: true }) });
  if (r.ok) return r;
  const errors = r.diagnostics.filter((d) => d.severity === "error");
  return `it does not compile with Docker's facts now: ${errors.length} error${errors.length === 1 ? "" : "s"}, the first: ${errors[0]?.message ?? "?"}`;
}

const isDocker = (chain: string) => chain.startsWith("DOCKER");

/**
 * Without a previous policy: what to load instead of `now`, from the snapshot taken before the
 * last apply, for the tables that apply wrote (`owned`; the others are not touched).
 *  - "owned" (iptables on: dockerd keeps Docker's chains): only the chains the apply wrote
 *    (DOCKER-USER, DOCKWALL-…, INPUT with a host block) go back to the snapshot's; everything
 *    else, Docker's chains and dockerd's rules in the built-in chains included, stays as loaded now.
 *  - "full" (iptables off): the built-in chains and dockwall's chains go back to the
 *    snapshot's; Docker's chains (DOCKER…) are taken from neither: the snapshot's are what some
 *    earlier tool wrote for the containers of then, and what is loaded now is the policy being
 *    rolled back. No rule that jumps to them is kept: published ports stay closed (fail closed)
 *    until a policy is applied again.
 * Other tools' chains (and, first in the built-in chains, their jumps) are always as loaded now.
 * `dropped`: Docker's chains the snapshot had that are not put back, as `nat DOCKER`.
 */
export function snapshotTarget(snapshot: SavedRuleset, now: SavedRuleset, owned: Owned): { desired: SavedRuleset; dropped: string[] } {
  const desired: SavedRuleset = new Map();
  const dropped: string[] = [];
  for (const [tname, ownedChains] of Object.entries(owned.tables)) {
    const builtins = BUILTIN_CHAINS[tname as Table["name"]] ?? [];
    const s = snapshot.get(tname)?.chains ?? new Map<string, SavedChain>();
    const n = now.get(tname)?.chains ?? new Map<string, SavedChain>();
    const foreignIn = (chains: Map<string, SavedChain>) => (r: SavedRule) => r.target !== undefined && isForeignChain(tname, r.target) && chains.has(r.target);
    // A built-in chain as the snapshot had it, its jumps to other tools' chains as they are now (first, as apply keeps them).
    const restored = (name: string): SavedChain => ({
      name,
      policy: s.get(name)?.policy ?? "ACCEPT",
      rules: [...(n.get(name)?.rules ?? []).filter(foreignIn(n)), ...(s.get(name)?.rules ?? []).filter((r) => !foreignIn(s)(r))],
    });
    const chains = new Map<string, SavedChain>();
    // Chains whose rules were put together here: a rule of theirs that jumps to a chain not
    // kept goes; the other chains are not dockwall's to edit (an empty chain stands in instead).
    const ours = new Set<string>();
    if (owned.scope === "owned") {
      for (const [name, c] of n) chains.set(name, c);
      // A built-in chain whose policy alone the apply set (FORWARD): its policy as it was, its rules as they are.
      for (const key of owned.policies ?? []) {
        const [t, name] = key.split(" ");
        if (t !== tname || !name) continue;
        const now = n.get(name);
        if (now) chains.set(name, { ...now, policy: s.get(name)?.policy ?? "ACCEPT" });
      }
      for (const name of ownedChains) {
        ours.add(name);
        if (builtins.includes(name)) chains.set(name, restored(name));
        else if (s.has(name)) chains.set(name, s.get(name)!);
        else chains.delete(name);
      }
    } else {
      for (const name of builtins) {
        chains.set(name, restored(name));
        ours.add(name);
      }
      for (const [name, c] of n) if (isForeignChain(tname, name)) chains.set(name, c);
      for (const [name, c] of s) {
        if (builtins.includes(name) || isForeignChain(tname, name)) continue;
        if (isDocker(name)) dropped.push(`${tname} ${name}`);
        else {
          chains.set(name, c);
          ours.add(name);
        }
      }
    }
    const known = new Set([...s.keys(), ...n.keys()]);
    const missing = (r: SavedRule) => r.target !== undefined && known.has(r.target) && !chains.has(r.target);
    for (const name of ours) {
      const c = chains.get(name);
      if (c && c.rules.some(missing)) chains.set(name, { ...c, rules: c.rules.filter((r) => !missing(r)) });
    }
    for (const c of [...chains.values()]) {
      for (const r of c.rules) if (missing(r)) chains.set(r.target!, { name: r.target!, policy: "-", rules: [] });
    }
    desired.set(tname, { name: tname, chains });
  }
  return { desired, dropped };
}
