// What ipsets hold, as `ipset save` prints them: the members of each set of networks or addresses
// (hash:net, hash:ip), which rules match with `-m set --match-set NAME dst` (Docker 28.0.0's
// docker-ext-bridges-v4/-v6 hold its bridges' subnets). Read for the evaluator (Ruleset.ipsets).
// Pure: the caller runs `ipset save`.
import type { Ruleset } from "../ir/ruleset.js";
import { isError, parseCidr, parseIp } from "../model/values.js";

/**
 * Each set of networks or addresses, by name, with its members as `a.b.c.d/p`. A set of another
 * type (ports, interfaces, marks), or with a `nomatch` member (an exception inside a network),
 * or a member not read, is left out: a rule that matches it stays unknown.
 */
export function parseIpsetSave(text: string): Record<string, string[]> {
  const kinds = new Map<string, boolean>();
  const members = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const w = line.trim().split(/\s+/);
    if (w[0] === "create" && w[1] && w[2]) {
      kinds.set(w[1], w[2] === "hash:net" || w[2] === "hash:ip");
      members.set(w[1], []);
    } else if (w[0] === "add" && w[1] && w[2] && kinds.get(w[1])) {
      const cidr = cidrOf(w[2]);
      if (cidr === undefined || w.slice(3).includes("nomatch")) kinds.set(w[1], false);
      else members.get(w[1])!.push(cidr);
    }
  }
  const out: Record<string, string[]> = {};
  for (const [name, ok] of kinds) if (ok) out[name] = members.get(name)!;
  return out;
}

function cidrOf(v: string): string | undefined {
  if (v.includes("/")) return isError(parseCidr(v)) ? undefined : v;
  const ip = parseIp(v);
  return isError(ip) ? undefined : `${v}/${ip.family === 4 ? 32 : 128}`;
}

/** Whether a rule of the rule set matches an ipset (then what the sets hold is worth reading). */
export function matchesIpsets(rs: Ruleset | undefined): boolean {
  return Boolean(rs?.tables.some((t) => t.chains.some((c) => c.rules.some((r) => r.matches.some((m) => m.kind === "set")))));
}
