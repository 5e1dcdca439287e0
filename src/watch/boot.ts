// The ruleset `watch --save-v4/--save-v6/--save-ferm` keeps for boot, closed where it would be
// stale. At boot it is loaded before dockerd runs and before the watcher has read any fact, and
// Docker may hand the last boot's addresses to other containers: so the saved rules hold no
// per-container rule (no DNAT, no allow to a container's port), only what holds whatever runs —
// the networks' own rules and the drops. Published ports stay closed until the first reconcile.
// Pure.
import { mergeForLoad } from "../apply/merge.js";
import type { RawFacts } from "../facts/read.js";
import type { Ruleset } from "../ir/ruleset.js";
import { parseSave, type SavedChain } from "../live/save.js";

/** Docker's facts as the boot ruleset is compiled with: its networks, and no container running. */
export function bootFacts(f: { raw: RawFacts; source: string }): { raw: RawFacts; source: string } {
  return { raw: { ...f.raw, containers: [] }, source: `${f.source} (for the boot ruleset: no container)` };
}

/** A rule of Docker's own chains that serves one container (dockerd writes it anew when the container starts). */
function perContainer(table: string, chain: string, text: string): boolean {
  if (table === "nat" && chain === "DOCKER") return / -j DNAT /.test(text);
  if (table === "nat" && chain === "POSTROUTING") return /^-A POSTROUTING -s (\S+)\/(32|128) -d \1\/(32|128) /.test(text);
  if (table === "filter" && chain === "DOCKER") return / -j ACCEPT$/.test(text);
  return false;
}

/**
 * The boot ruleset of one family, as iptables-save text: what is loaded now (every table, other
 * tools' chains and jumps kept), with dockwall's rules as `closed` (the policy compiled with
 * bootFacts) and, where dockerd writes its own chains (iptables on), their per-container rules
 * left out.
 */
export function bootSave(live: string, closed: Ruleset, opts: { ownsInput: boolean }): string {
  const now = parseSave(live);
  const merged = parseSave(mergeForLoad(now, closed, opts).text);
  const out: string[] = [];
  for (const [name, lt] of now) {
    const t = merged.get(name) ?? lt;
    out.push(`*${name}`);
    const chains: SavedChain[] = [...t.chains.values()];
    for (const c of chains) out.push(`:${c.name} ${c.policy} [0:0]`);
    for (const c of chains) for (const r of c.rules) if (closed.scope === "full" || !perContainer(name, c.name, r.text)) out.push(r.text);
    out.push("COMMIT");
  }
  for (const [name, t] of merged) {
    if (now.has(name)) continue;
    out.push(`*${name}`, ...[...t.chains.values()].map((c) => `:${c.name} ${c.policy} [0:0]`), ...[...t.chains.values()].flatMap((c) => c.rules.map((r) => r.text)), "COMMIT");
  }
  return out.length ? out.join("\n") + "\n" : "";
}
