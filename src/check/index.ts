// The checker: a list of checks run in order over the model. Each reports into the
// shared collector; the pipeline stops after the stage if any reported an error.
import { Problems } from "../diagnostics.js";
import type { Policy } from "../model/types.js";
import { makeContext, type Check } from "./context.js";
import { duplicateNames, references } from "./names.js";
import { networkShape, overlappingSubnets } from "./networks.js";
import { containerAddresses, publishedPorts } from "./containers.js";
import { allowTargets, forwardZones, ruleFamilies } from "./rules.js";
import { daemonSettings, unallowedPorts } from "./warnings.js";

export const checks: [string, Check][] = [
  ["duplicate names", duplicateNames],
  ["references", references],
  ["network shape", networkShape],
  ["overlapping subnets", overlappingSubnets],
  ["container addresses", containerAddresses],
  ["published ports", publishedPorts],
  ["allow targets", allowTargets],
  ["rule families", ruleFamilies],
  ["forward zones", forwardZones],
  ["daemon settings", daemonSettings],
  ["unallowed ports", unallowedPorts],
];

export function check(policy: Policy): Problems {
  const problems = new Problems();
  const ctx = makeContext(policy, problems);
  for (const [, run] of checks) run(ctx);
  return problems;
}
