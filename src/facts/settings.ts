// Docker settings that change what Docker's rules are, and that dockwall does not reproduce:
// Docker's gateway modes, trusted host interfaces, containers on macvlan, ipvlan, overlay or
// plugin networks, containers on the host's network, and Docker's nftables firewall backend.
// Each is refused with an error that names the Docker object (or the policy's line) it is
// about — never compiled as if it were absent. Part of the stage "add Docker's facts".
import { dockerOrigin, startOfFile, type Problems } from "../diagnostics.js";
import type { Policy } from "../model/types.js";
import { byName, dockerGateways, publishingNetwork } from "../model/derive.js";
import { effectiveVersion } from "../docker/layouts.js";
import type { DockerFacts } from "./read.js";

/** What Docker does for a network in each gateway mode dockwall does not reproduce (docker-layouts/README.md, v27 – v29). */
const GATEWAY_MODE: Record<string, string> = {
  routed: "Docker then writes no NAT for it (no DNAT, no masquerading, no docker-proxy) and lets the ports its containers publish be reached at the containers' own addresses",
  "nat-unprotected": "Docker then lets every port of its containers, published or not, be reached at the containers' own addresses",
  isolated: "Docker then gives its bridge no address on the host, and its containers no way to the host or out",
};

/** `80/tcp, 443/tcp` as the host block's allow lines: `allow lan tcp 80, 443;`. */
function hostAllows(ports: string[], zone: string): string {
  const by = new Map<string, string[]>();
  for (const p of ports) {
    const [port, proto] = p.split("/");
    if (proto !== "tcp" && proto !== "udp") continue;
    by.set(proto, [...(by.get(proto) ?? []), port!]);
  }
  return (["tcp", "udp"] as const)
    .filter((proto) => by.has(proto))
    .map((proto) => `allow ${zone} ${proto} ${by.get(proto)!.join(", ")};`)
    .join(" ") || `allow ${zone} tcp PORT;`;
}

/** Under watch (factsErrors "warn"), what a refused container costs: only itself. */
const STILL_APPLIED = "every other change is applied meanwhile (its own traffic never meets dockwall's rules, whatever the watcher does)";

/**
 * Under watch, what a network with a setting dockwall does not reproduce costs: only itself
 * and its containers, left out of the rules (a review found one such network held back every
 * other change, a removed container's DNAT among them, reaching the next container given its
 * address).
 */
const NETWORK_LEFT_OUT = "until then the network and its containers are left out of the rules, as a network dockwall does not know yet (with iptables off nothing reaches them; with iptables on Docker's own rules decide), and every other change is applied meanwhile";

/** Leaves a network, and its containers' endpoints on it, out of the policy (a container with no other network with it). */
function leaveOut(p: Policy, network: string): void {
  p.networks = p.networks.filter((n) => n.name !== network);
  // Copies, not changed in place: a container read from Docker's objects may be read again as it is (FactsMemo).
  p.containers = p.containers.map((c) => (c.endpoints.some((e) => e.network.name === network) ? { ...c, endpoints: c.endpoints.filter((e) => e.network.name !== network) } : c)).filter((c) => c.endpoints.length > 0);
}

export function refuseSettings(p: Policy, facts: DockerFacts, problems: Problems, warn = false, format?: string): void {
  const d = p.docker;
  const u = facts.unreproduced;
  const daemon = dockerOrigin({ kind: "daemon", name: "", id: "", source: facts.source });

  // Docker's firewall backend, against the policy and the output format (checkBackend below).
  d.backendFact = facts.firewallBackend === undefined ? null : { driver: facts.firewallBackend, span: daemon };
  checkBackend(p, format, problems);

  // Network options: gateway modes other than nat, trusted host interfaces.
  for (const o of u.options) {
    const key = o.option.slice(o.option.lastIndexOf(".") + 1);
    if (key === "EnableIPv4") {
      problems.factsError(warn, "ipv6-only", o.span, `network '${o.network}' has no IPv4 (EnableIPv4 false, Docker 28+): dockwall does not reproduce Docker's rules for IPv6-only networks`, NETWORK_LEFT_OUT, {
        help: `create network '${o.network}' again with IPv4 too (docker network rm ${o.network}, then docker network create --ipv6 without --ipv4=false), or run its containers on another network`,
      });
    } else if (key.startsWith("gateway_mode_")) {
      const family = key.endsWith("ipv6") ? "IPv6" : "IPv4";
      const what = GATEWAY_MODE[o.value];
      const message = what
        ? `network '${o.network}' has the ${o.value} gateway mode for ${family} (${o.option}=${o.value}): ${what}`
        : `network '${o.network}' has the gateway mode '${o.value}' for ${family} (${o.option}=${o.value}), which dockwall does not know`;
      problems.factsError(warn, "gateway-mode", o.span, message, NETWORK_LEFT_OUT, {
        help: `dockwall does not reproduce Docker's ${o.value} gateway mode, only its default, nat: create network '${o.network}' again without it (docker network rm ${o.network}, then docker network create without -o ${o.option}=${o.value}), and publish with -p the ports its containers serve`,
      });
    } else {
      problems.factsError(warn, "trusted-interfaces", o.span, `network '${o.network}' trusts the host interfaces '${o.value}' (${o.option}): Docker then lets what arrives on them reach the ports its containers publish at the containers' own addresses (routed straight to them, not through the host's port)`, NETWORK_LEFT_OUT, {
        help: `dockwall does not reproduce trusted host interfaces: create network '${o.network}' again without the option (docker network rm ${o.network}, then docker network create without -o ${o.option}), and publish the ports neighbours there may reach, with an allow for their zone`,
      });
    }
    if (warn) leaveOut(p, o.network);
  }

  // --format nft with iptables off writes Docker 29's tables, whose chain names hold the bridge's name.
  if (format === "nft" && !d.iptables) {
    for (const n of [...p.networks]) {
      if (/^[A-Za-z0-9_.-]{1,15}$/.test(n.bridge.value)) continue;
      problems.factsError(warn, "bad-name", n.bridge.span, `network '${n.name}' has the bridge '${n.bridge.value}', which does not fit in an nft chain name as dockerd 29 writes it (letters, digits, '_', '.' and '-')`, NETWORK_LEFT_OUT, {
        help: `create network '${n.name}' again with another bridge name (docker network create -o com.docker.network.bridge.name=NAME), or compile with --format iptables`,
      });
      if (warn) leaveOut(p, n.name);
    }
  }

  // Docker 28+'s gateway priorities: a container publishes where Docker puts its default routes, per family.
  const nets = byName(p.networks);
  const version = effectiveVersion(d.version?.value);
  const refused = new Set<string>();
  for (const c of p.containers) {
    if (!c.endpoints.some((e) => e.gwPriority !== undefined)) continue;
    const prios = c.endpoints.map((e) => `${e.network.name} ${e.gwPriority ?? 0}`).join(", ");
    // (They came with Docker 28: facts that have them are from a newer dockerd than the version compiled for, whose layout and
    // choice of network would not be the daemon's.)
    if (version.major < 28) {
      problems.factsError(warn, "gateway-priority", c.span, `container '${c.name}' has gateway priorities (${prios}), which came with Docker 28: these facts are not from the Docker ${version.major}.${version.minor} the policy is compiled for`, `the container is left out of the rules until then (with iptables off nothing reaches it; with iptables on its ports stay closed), and every other change is applied meanwhile`, {
        help: `set the policy's 'docker { version …; }' to the running dockerd's (docker version --format '{{.Server.Version}}'), or compile with --docker-version auto`,
      });
      refused.add(c.name);
      continue;
    }
    if (!c.publishes.length) continue;
    const docker = dockerGateways(c, nets, version);
    const ours = publishingNetwork(c, nets);
    if ((!docker[4] || docker[4] === ours) && (!docker[6] || docker[6] === ours)) continue;
    const where = docker[4] && docker[6] && docker[4] !== docker[6] ? `its IPv4 bindings on network '${docker[4].name}' and its IPv6 bindings on network '${docker[6].name}'` : `them on network '${(docker[4] ?? docker[6])!.name}'`;
    problems.factsError(warn, "gateway-priority", c.span, `container '${c.name}' has gateway priorities (${prios}): Docker ${version.major}.${version.minor} sets its published ports up where its default routes are, ${where}, and dockwall publishes a container on one network${ours ? ` ('${ours.name}')` : ""}`, `the container is left out of the rules until then (with iptables off nothing reaches it; with iptables on its ports stay closed), and every other change is applied meanwhile`, {
      help: `give the network it should publish on the highest gateway priority, with an IPv4 and an IPv6 gateway if the container has both (docker network disconnect, then docker network connect --gw-priority N), or leave its priorities at 0`,
    });
    refused.add(c.name);
  }
  if (warn && refused.size) p.containers = p.containers.filter((c) => !refused.has(c.name));

  // Containers on networks whose traffic dockwall's rules never see.
  for (const a of u.attachments) {
    const why =
      a.driver === "macvlan" || a.driver === "ipvlan"
        ? `its traffic goes in and out through ${a.parent ? `the host interface ${a.parent}` : "the network's parent interface"} without crossing the host's FORWARD chain, where dockwall filters containers' traffic`
        : a.driver === "overlay"
          ? `other swarm nodes reach it through VXLAN, inside the network's own namespace, and a swarm service's published ports through Docker's ingress chains, neither of which crosses the rules dockwall writes`
          : `dockwall writes rules for bridge networks only, and does not know where the traffic of driver '${a.driver}' goes`;
    // Under watch, one such container must not hold back every other change: its traffic never meets dockwall's rules either way.
    problems.factsError(warn, "unfiltered-network", a.span, `container '${a.container}' is on ${a.driver} network '${a.network}': ${why}, so dockwall cannot enforce the policy for it (every port it listens on is open to whoever reaches it)`, STILL_APPLIED, {
      help: `run it on a bridge network and publish what it serves (docker network disconnect ${a.network} ${a.container}; docker network connect NETWORK ${a.container}, or docker run --network NETWORK -p …), or stop it: dockwall refuses Docker's facts while it runs`,
      notes: [{ message: `the ${a.driver} network${a.parent ? ` (parent ${a.parent})` : ""}`, span: a.networkSpan }],
    });
  }

  // Containers on the host's network: their ports are the host's own sockets, which only a host block restricts.
  const declared = p.zones.find((z) => !z.builtin)?.name;
  const zone = declared ?? "ZONE";
  const zoneNote = declared ? "" : " (ZONE: any, or a zone you declare)";
  const restricting = p.host && p.host.policy === "drop" ? p.host : undefined;
  for (const h of u.hostNetwork) {
    const ports = `its ports (${h.ports.join(", ")}: published or exposed)`;
    const what = `container '${h.container}' runs on the host's network (--network host)`;
    const help = `add a host block that opens ${h.ports.length ? "them" : "what it serves"} to whom ${h.ports.length ? "they serve" : "it serves"} (e.g. host { ${hostAllows(h.ports, zone)} }${zoneNote}: INPUT's policy is then DROP), or run it on a bridge network and publish its ports (docker run -p …)`;
    if (restricting) {
      if (h.ports.length === 0) continue; // the host block decides who reaches whatever it listens on: nothing to add
      problems.warning("host-network", h.span, `${what}: ${ports} are sockets of the host's own, which the host block governs, not 'allow'`, {
        help: `open them in the host block to whom they serve (${hostAllows(h.ports, zone)}${zoneNote}), or run it on a bridge network and publish its ports (docker run -p …)`,
        notes: [{ message: `only what this host block allows reaches them`, span: restricting.span }],
      });
    } else if (h.ports.length) {
      problems.factsError(warn, "host-network", h.span, `${what}: ${ports} are sockets of the host's own, and ${p.host ? "the host block's 'policy accept' lets everyone reach them" : "without a host block nothing restricts them: they are open to all"}`, STILL_APPLIED, {
        help: p.host ? `remove 'policy accept;' from the host block and open them there (${hostAllows(h.ports, zone)}${zoneNote}), or run it on a bridge network and publish its ports (docker run -p …)` : help,
        notes: p.host ? [{ message: `the host block`, span: p.host.span }] : [],
      });
    } else {
      problems.warning("host-network", h.span, `${what}: whatever it listens on is a socket of the host's own, and ${p.host ? "the host block's 'policy accept' lets everyone reach it" : "without a host block nothing restricts it"} (it publishes and exposes no port, so dockwall cannot tell which)`, {
        help: p.host ? `remove 'policy accept;' from the host block and open what it serves there, or run it on a bridge network and publish its ports (docker run -p …)` : help,
      });
    }
  }
}

/**
 * Docker's firewall backend against the policy and the output (a stage of compile, after the
 * checker: it needs the format). Docker's nftables backend has no DOCKER-USER: with iptables
 * on, only dockwall's own nftables table (--format nft) is reached; DOCKER-USER written through
 * iptables would never be, and every published port it closes would be open. A policy that says
 * one backend and a daemon that runs the other is an error at the policy's line.
 */
export function checkBackend(p: Policy, format: string | undefined, problems: Problems): void {
  const d = p.docker;
  const said = d.firewallBackend;
  const fact = d.backendFact ?? undefined;
  const factBackend = fact ? (/^nftables\b/.test(fact.driver) ? "nftables" : "iptables") : undefined;
  if (said && fact && factBackend !== said.value) {
    problems.error("firewall-backend", said.span, `the policy says firewall-backend ${said.value}, but dockerd uses ${fact.driver}`, {
      help: `make them agree: change the policy, or "firewall-backend" in /etc/docker/daemon.json (then restart dockerd)`,
      notes: [{ message: `its firewall backend is ${fact.driver} (GET /info's FirewallBackend.Driver)`, span: fact.span }],
    });
    return;
  }
  // explain, matrix, verify write nothing: only a disagreement (above) is theirs to say.
  if (format === "analysis") return;
  const backend = said?.value ?? factBackend;
  const at = said?.span ?? d.spans.iptables ?? d.span ?? startOfFile;
  // --format nft beside a dockerd whose backend is not known: beside Docker 29's nftables backend nothing else
  // drops what the host routes, and the file stands for FORWARD's policy only where it knows that backend.
  if (d.iptables && format === "nft" && !backend && (d.version?.value.major ?? 29) >= 29) {
    problems.warning("firewall-backend", at, `dockwall cannot tell which firewall backend dockerd uses: beside Docker 29's nftables backend, which sets no FORWARD policy, the host would route between its interfaces whatever no 'forward' statement allows, and this file would not close it`, {
      help: `say it in the docker block (firewall-backend nftables; or firewall-backend iptables;), or read it from the daemon with --docker`,
    });
  }
  if (!d.iptables || format === "nft") return;
  if (backend === "nftables") {
    problems.error("firewall-backend", at, `Docker's nftables firewall backend has no DOCKER-USER chain: with 'iptables on', dockwall's rules (in DOCKER-USER) would never be reached, and every published port they close would be open`, {
      help: `write them as nftables instead: dockwall compile --format nft (dockwall's own table, beside Docker's); or run dockerd with its iptables backend ("firewall-backend": "iptables" in /etc/docker/daemon.json, or no "firewall-backend" at all), then restart it`,
      notes: fact ? [{ message: `its firewall backend is ${fact.driver} (GET /info's FirewallBackend.Driver; "firewall-backend" in daemon.json)`, span: fact.span }] : [],
    });
  } else if (!said && d.backendFact === null && (d.version?.value.major ?? 29) >= 29) {
    problems.warning("firewall-backend", at, `the facts do not say which firewall backend dockerd uses: if it is Docker 29's nftables backend, there is no DOCKER-USER chain, dockwall's rules are never reached and every published port they close is open`, {
      help: `save the facts again with 'dockwall facts' (it records GET /info's FirewallBackend), read them from the daemon with --docker, or say it in the policy: firewall-backend iptables;`,
    });
  }
}
