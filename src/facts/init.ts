// `dockwall init --docker`: a starter policy for this host. Compiled and loaded, it leaves
// every port that a running container publishes as reachable as Docker makes it now (from
// everywhere: `allow any`), closes what is published later until the policy names it, and
// says in comments where to narrow it. Pure: the facts come in, the text goes out.
import { isLoopback } from "../model/derive.js";
import { Problems, type Diagnostic } from "../diagnostics.js";
import { formatIp } from "../model/values.js";
import type { Container, Network } from "../model/types.js";
import { readFacts, type RawFacts } from "./read.js";

function portsText(c: Container): string {
  return c.publishes
    .map((p) => {
      const s = p.spec;
      const host = s.host.from === s.host.to ? `${s.host.from}` : `${s.host.from}-${s.host.to}`;
      return `${s.hostIp ? `${formatIp(s.hostIp)}:` : ""}${host}/${s.proto}`;
    })
    .join(", ");
}

/**
 * `iptables on` unless the daemon shows otherwise: dockerd started with "iptables": false
 * reports masquerading off on its default bridge (as it does with "ip-masq": false, which the
 * facts cannot tell apart: the comment says how to choose).
 */
function iptablesLines(bridge: Network | undefined): string[] {
  if (bridge && !bridge.masquerade) {
    return [
      `  # dockerd reports masquerading off on its default bridge: it runs with "iptables": false`,
      `  # (dockwall then writes Docker's chains too), or with "ip-masq": false. Check daemon.json:`,
      `  # with "ip-masq": false instead, write 'iptables on;' and 'ip-masq off;'.`,
      `  iptables off;`,
    ];
  }
  return [
    `  # 'on' while dockerd writes its own chains (its default): dockwall then owns DOCKER-USER.`,
    `  # 'off' when daemon.json says "iptables": false: dockwall writes Docker's chains too.`,
    `  iptables on;`,
  ];
}

export function starterPolicy(raw: RawFacts, source: string): { ok: boolean; text: string; diagnostics: Diagnostic[] } {
  const problems = new Problems();
  const facts = readFacts(raw, source, problems);
  if (problems.hasErrors) return { ok: false, text: "", diagnostics: problems.items };
  const out: string[] = [];
  // `version auto` follows the daemon through upgrades; facts without a version (a file not
  // written by 'dockwall facts') cannot give it.
  const version = facts.version ? `version auto;  # ${facts.version.text} now` : `# version 20.10;  # the facts do not say which release dockerd is: write it`;
  out.push(
    `# A starter policy for this host, from the facts of ${source}.`,
    `# Compiled and loaded (dockwall apply POLICY --docker), it leaves every port that a`,
    `# running container publishes as reachable as Docker makes it now: from everywhere.`,
    `# (What it closes: routing straight to a container's address, which Docker before 28`,
    `# lets a neighbour do, and the 127.0.0.1 leak of ports published on loopback.)`,
    `# Narrow it where the comments say, then check what changes: dockwall diff POLICY --docker`,
    ``,
    `docker {`,
    `  ${version}`,
    ...iptablesLines(facts.networks.find((n) => n.name === "bridge")),
    `  # A port published later is closed until an allow names it ('open' is Docker's way).`,
    `  published closed;`,
    `}`,
    ``,
    `# Where traffic comes from. Name your interfaces and networks, then use the zones below`,
    `# instead of 'any', e.g.:`,
    `#   zone wan { interface eth0; }`,
    `#   zone lan { interface eth1; from 192.168.1.0/24; }`,
    ``,
  );
  // Compose replicas are named by their service, so a scaled service stays covered.
  const services = new Map<string, Container[]>();
  const plain: Container[] = [];
  for (const c of facts.containers) {
    if (c.publishes.length === 0) continue;
    if (c.compose) {
      const k = `${c.compose.project}/${c.compose.service}`;
      const l = services.get(k);
      if (l) l.push(c);
      else services.set(k, [c]);
    } else plain.push(c);
  }
  if (plain.length === 0 && services.size === 0) {
    out.push(`# No running container publishes a port now. Name one when it does, e.g.:`, `#   allow lan to web:8080;`);
  }
  // A port published on 127.0.0.1 (or ::1) alone is the host's: no allow opens it from outside (a review: the starter
  // policy allowed such a container, which opens nothing, and check then warned about its own suggestion).
  const outside = (c: Container) => c.publishes.filter((p) => !(p.spec.hostIp && isLoopback(p.spec.hostIp)));
  for (const c of plain) {
    const first = outside(c)[0];
    if (!first) {
      out.push(`# '${c.name}' publishes ${portsText(c)}: on loopback only, the host's own; no allow opens it from outside.`);
      continue;
    }
    out.push(`# '${c.name}' publishes ${portsText(c)}. Narrow it: allow lan to ${c.name}:${first.spec.host.from};`);
    out.push(`allow any to ${c.name};`);
  }
  for (const [k, cs] of services) {
    const first = outside(cs[0]!)[0];
    if (!first) {
      out.push(`# compose service ${k} (${cs.map((c) => c.name).join(", ")}) publishes ${portsText(cs[0]!)}: on loopback only, the host's own; no allow opens it from outside.`);
      continue;
    }
    out.push(`# compose service ${k} (${cs.map((c) => c.name).join(", ")}) publishes ${portsText(cs[0]!)}. Narrow it: allow lan to ${k}:${first.spec.host.from};`);
    out.push(`allow any to ${k};`);
  }
  out.push(
    ``,
    `# The host's own services (INPUT) are left alone without a host block. With one, INPUT`,
    `# drops what it does not allow; keep your SSH in it before you add it, e.g.:`,
    `#   host { allow lan tcp 22; allow any icmp; }`,
    ``,
  );
  return { ok: true, text: out.join("\n"), diagnostics: problems.items };
}
