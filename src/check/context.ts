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
  /** Errors that only Docker's facts cause are warnings, and what they concern is left out (dockwall watch). */
  factsWarn: boolean;
}

export function makeContext(policy: Policy, problems: Problems, factsWarn = false): CheckContext {
  const anyZone: Zone = { name: "any", span: { line: 1, col: 1, endLine: 1, endCol: 1 }, interfaces: [], sources: [], builtin: true };
  return {
    policy,
    problems,
    zones: byName([anyZone, ...policy.zones]),
    networks: byName(policy.networks),
    containers: byName(policy.containers),
    factsWarn,
  };
}

export type Check = (ctx: CheckContext) => void;
