// The rules the kernel holds once a compiled policy is loaded, as `dockwall apply` would leave
// them: with "iptables": false, the compiled rules themselves; with "iptables": true (dockwall
// coexists), Docker's own chains as dockerd writes them for these networks and containers (in
// the families it writes: IPv6 only with ip6tables), with dockwall's chains laid over them.
// What explain and matrix walk when they are not given the kernel's rules (--live). Pure.
import { dockersIpsets, dockersOwn, dockerWrites } from "../generate.js";
import type { Rule, Ruleset } from "../ir/ruleset.js";
import { parseSave, toRuleset, type SavedRuleset } from "../live/save.js";
import type { Policy } from "../model/types.js";
import type { Family } from "../model/values.js";
import { renderIptables } from "../targets/iptables.js";
import { reconcileStep } from "../watch/reconcile.js";

/** What dockerd itself writes for the policy's networks and containers, per family it writes ("iptables": true). */
export function dockersRules(p: Policy): Partial<Record<Family, Ruleset>> {
  const out: Partial<Record<Family, Ruleset>> = {};
  for (const f of [4, 6] as const) if (dockerWrites(p, f)) out[f] = dockersOwn(p, f).rulesets[f];
  return out;
}

export function asLoaded(p: Policy, compiled: Partial<Record<Family, Ruleset>>): Partial<Record<Family, Ruleset>> {
  if (!p.docker.iptables) return compiled;
  const out: Partial<Record<Family, Ruleset>> = {};
  for (const f of [4, 6] as const) {
    const wanted = compiled[f];
    if (!wanted) continue;
    const docker = dockerWrites(p, f) ? renderIptables(dockersOwn(p, f).rulesets[f]!, []) : "";
    // What the kernel holds after the load: every table, the ones dockwall does not write as they were.
    out[f] = toRuleset(reconcileStep(parseSave(docker), wanted, { ownsInput: p.host !== undefined }).after, f);
    // (What Docker 28.0.0's ipsets hold, which its rules match: its bridges' subnets.)
    const ipsets = dockersIpsets(p, f);
    if (ipsets) out[f]!.ipsets = ipsets;
  }
  return out;
}

/**
 * The filter rules loaded here (iptables-save, read) that the policy would not load (`expected`:
 * asLoaded's), chain by chain by their canonical spelling: another tool's, a hand's. What they
 * may open, the matrix walks too (MatrixContext.foreign).
 */
export function foreignRules(loaded: SavedRuleset, expected: Ruleset | undefined): Rule[] {
  const keys = new Set<string>();
  for (const c of (expected ? parseSave(renderIptables(expected, [])).get("filter")?.chains.values() : undefined) ?? []) for (const r of c.rules) keys.add(`${c.name} ${r.key}`);
  const out: Rule[] = [];
  // (Not INPUT's nor OUTPUT's: what is forwarded to a container never passes them.)
  for (const c of loaded.get("filter")?.chains.values() ?? []) if (c.name !== "INPUT" && c.name !== "OUTPUT") for (const r of c.rules) if (!keys.has(`${c.name} ${r.key}`)) out.push(r.toRule());
  return out;
}
