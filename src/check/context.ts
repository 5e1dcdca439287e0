import type { Problems } from "../diagnostics.js";
import { byName } from "../model/derive.js";
import type { Container, Network, Policy, Zone } from "../model/types.js";

/** What every check sees: the policy, name tables, and the problem collector. */
export interface CheckContext {
  policy: Policy;
  problems: Problems;
  zones: Map<string, Zone>;
  networks: Map<string, Network>;
  containers: Map<string, Container>;
}

export function makeContext(policy: Policy, problems: Problems): CheckContext {
  const anyZone: Zone = { name: "any", span: { line: 1, col: 1, endLine: 1, endCol: 1 }, interfaces: [], sources: [], builtin: true };
  return {
    policy,
    problems,
    zones: byName([anyZone, ...policy.zones]),
    networks: byName(policy.networks),
    containers: byName(policy.containers),
  };
}

export type Check = (ctx: CheckContext) => void;
