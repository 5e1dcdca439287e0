// The checker: a list of checks run in order over the model. Each reports into the
// shared collector; the pipeline stops after the stage if any reported an error.
import { Problems, startOfFile } from "../diagnostics.js";
import type { Policy } from "../model/types.js";
import { makeContext, type Check } from "./context.js";
import { duplicateNames, references } from "./names.js";
import { networkShape, overlappingSubnets } from "./networks.js";
import { containerAddresses, publishedPorts } from "./containers.js";
import { allowTargets, bridgeZones, duplicateAllows, forwardZones, ruleFamilies } from "./rules.js";
import { coveredAllows } from "./covered.js";
import { daemonSettings, hostPortsPublished, literalWildcards, unallowedPorts } from "./warnings.js";

export const checks: [string, Check][] = [
  ["duplicate names", duplicateNames],
  ["references", references],
  ["network shape", networkShape],
  ["overlapping subnets", overlappingSubnets],
  ["container addresses", containerAddresses],
  ["published ports", publishedPorts],
  ["allow targets", allowTargets],
  ["duplicate allows", duplicateAllows],
  ["covered allows", coveredAllows],
  ["rule families", ruleFamilies],
  ["forward zones", forwardZones],
  ["zones on Docker's bridges", bridgeZones],
  ["daemon settings", daemonSettings],
  ["literal wildcards", literalWildcards],
  ["unallowed ports", unallowedPorts],
  ["host ports published", hostPortsPublished],
];

/** A file with no statement at all: blank, or comments only. */
function isEmpty(p: Policy): boolean {
  return !p.docker.span && Object.keys(p.docker.spans).length === 0 && p.zones.length === 0 && p.networks.every((n) => n.implicit) && p.containers.length === 0 && p.allows.length === 0 && p.forwards.length === 0 && !p.host;
}

/** `factsErrors: "warn"` (dockwall watch): errors that only Docker's facts cause are warnings, and what they concern is left out (compile.ts). */
export function check(policy: Policy, opts: { factsErrors?: "error" | "warn" } = {}): Problems {
  const problems = new Problems();
  if (isEmpty(policy)) {
    // Compiled, it would be a full restore of empty tables: every rule flushed, INPUT and FORWARD ACCEPT.
    problems.error("empty-policy", startOfFile, "the policy has no statements (it is empty, or only comments)", {
      help: "compiled, an empty policy would flush every table and leave the host open; write what this host runs, starting with e.g. docker { version 20.10; } (or run 'dockwall init --docker' for a starter policy; 'man dockwall.dw' has a whole example)",
    });
    return problems;
  }
  const ctx = makeContext(policy, problems, opts.factsErrors === "warn" && policy.withFacts !== undefined);
  for (const [, run] of checks) run(ctx);
  return problems;
}
