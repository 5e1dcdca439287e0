// dockwall's own rules: what `allow`, `published`, `forward` and `host` mean, as chains.
//
//  filter DOCKER-USER (first in FORWARD, every Docker layout has it):
//    replies pass; traffic from the containers' own bridges follows Docker's rules;
//    with `published closed`: a DNAT whose original destination was loopback is dropped
//    (the 127.0.0.1-publish leak, and any published port reached through 127.0.0.1), each allowed zone → published port RETURNs to Docker's
//    chains, and anything else entering a bridge from outside (closed ports, routing
//    straight to a container address) is dropped; then `forward` rules.
//  filter DOCKWALL-PROXY (jumped from INPUT): docker-proxy listens on every host address for
//    each published port, even with "iptables": false; this chain applies the same allow
//    list to that path.
//  filter INPUT (only with a `host` block): policy, loopback, replies, the host's services.
import { make, rule, type Match, type Neg, type Rule, type SharedParts } from "../ir/ruleset.js";
import { CtStates } from "../ir/match.js";
import { bindAddress, bindings, byName, isLoopback, publishingNetwork, subnetOf } from "../model/derive.js";
import type { AllowRule, Policy, Zone } from "../model/types.js";
import { formatIp, type Family, type TargetSpec } from "../model/values.js";
import type { Plan, PortPlan } from "../docker/plan.js";
import { matchers, whoOf, withMatcher, type Matcher } from "./zones.js";

export const PROXY_CHAIN = "DOCKWALL-PROXY";

/**
 * The comment on each rule dockwall writes in INPUT, a chain it shares with the host: once the
 * host block is gone, apply, watch and diff know those rules for dockwall's and take them out.
 */
export const MARK = "dockwall";
const MARK_MATCH: Match = { kind: "comment", text: MARK };
function marked(r: Rule): Rule {
  return rule({ ...r, matches: [...r.matches, MARK_MATCH] });
}

export interface OwnedChains {
  dockerUser: Rule[];
  /** Rules of DOCKWALL-PROXY, or undefined when no proxy path needs guarding. */
  proxy?: Rule[];
  /** INPUT: undefined leaves INPUT alone (apart from the jump to DOCKWALL-PROXY). */
  input?: { policy: "ACCEPT" | "DROP"; rules: Rule[] };
}

function zoneTable(p: Policy): Map<string, Zone> {
  const any: Zone = { name: "any", span: { line: 1, col: 1, endLine: 1, endCol: 1 }, interfaces: [], sources: [], builtin: true };
  return byName([any, ...p.zones]);
}

/** The bridges whose containers' own traffic follows Docker's rules. */
function bridges(p: Policy, family: Family): string[] {
  return p.networks.filter((n) => !n.internal && subnetOf(n, family)).map((n) => n.bridge.value);
}

type AllowIndex = Map<string, { allow: AllowRule; target: TargetSpec }[]>;

/** allow rules by the container they name (so each port looks only at its own). */
function indexAllows(p: Policy): AllowIndex {
  const m: AllowIndex = new Map();
  for (let i = 0; i < p.allows.length; i++) {
    const allow = p.allows[i]!;
    for (let k = 0; k < allow.targets.length; k++) {
      const target = allow.targets[k]!.value;
      const list = m.get(target.container);
      if (list) list.push({ allow, target });
      else m.set(target.container, [{ allow, target }]);
    }
  }
  return m;
}

/** The allow rules that name this published port, each once, in source order; an allow like an earlier one (a repeat) is left out. */
function allowedBy(index: AllowIndex, container: string, port: number, proto: string): AllowRule[] {
  const out: AllowRule[] = [];
  const named = index.get(container);
  if (!named) return out;
  for (let i = 0; i < named.length; i++) {
    const { allow, target: t } = named[i]!;
    if (t.ports.from <= port && port <= t.ports.to && (!t.proto || t.proto === proto) && out.at(-1) !== allow) {
      if (out.length > 0 && out.some((o) => whoOf(o) === whoOf(allow))) continue;
      out.push(allow);
    }
  }
  return out;
}

/**
 * `standIn`: iptables on, in a family dockerd writes no rules for (IPv6 with ip6tables off).
 * DOCKER-USER and its jump are then dockwall's alone, and FORWARD's policy DROP (generate.ts):
 * what DOCKER-USER would leave to Docker's rules (which would be none: everything passes) is
 * accepted here, as dockerd would let it through, and what no rule lets through is not routed.
 */
export function ownedChains(p: Policy, plan: Plan, standIn = false, noDockerRules = standIn): OwnedChains {
  const family = plan.family;
  const zones = zoneTable(p);
  const closed = p.docker.published === "closed";
  // What "Docker's rules decide" means in this family: go on to them, or (none) let it through.
  const follow = standIn ? "ACCEPT" : "RETURN";
  const user: Rule[] = [];
  const brs = bridges(p, family);
  const index = indexAllows(p);
  // An allow names many ports: its zones and sources are worked out once.
  const memo = new Map<AllowRule, readonly Matcher[]>();
  const matchersOf = (a: AllowRule): readonly Matcher[] => {
    let ms = memo.get(a);
    if (!ms) memo.set(a, (ms = matchers(zones, a.zones, a.sources, family)));
    return ms;
  };

  const forwards: Rule[] = [];
  // A forward from a zone with no interface of its own (`any`, or one with only `from`) comes in on any interface:
  // not on a Docker bridge (br-*), whose containers' traffic Docker's rules decide (an internal network dockwall
  // does not know yet would be let out, a review found), but on a zone's own interface named like one (br-lan).
  const hostBridges = zoneBridges(p, brs);
  for (const f of p.forwards) {
    const outs = f.to.flatMap((t) => zones.get(t.name)?.interfaces.map((i) => i.value) ?? []);
    for (const m of matchers(zones, f.zones, f.sources, family)) {
      const ins: (Neg<string> | undefined)[] = m.in ? [undefined] : [...hostBridges.map((value) => ({ value })), { value: "br-+", neg: true }];
      for (const inIf of ins) {
        for (const out of outs) forwards.push(withMatcher(m, make.jump("ACCEPT", { in: inIf, out: { value: out }, comment: `forward ${f.zones.map((z) => z.name).join(", ")} to ${f.to.map((z) => z.name).join(", ")}`, origin: { kind: "policy", span: f.span } })));
      }
    }
  }

  if (closed || forwards.length > 0 || standIn) {
    user.push(make.jump("ACCEPT", { matches: [make.ctstate("RELATED,ESTABLISHED")], comment: "replies and related traffic always pass" }));
  }
  // An internal network has no traffic in from outside its bridge, nor out: not by a `forward` to or from a zone on
  // its bridge (whose ACCEPT would come before Docker's isolation), nor, where dockerd writes no rules for this family
  // (standIn), from the other networks' containers, whose traffic is let through next (a review found both open).
  // (The nft file beside Docker's iptables backend, which stands in for nothing, drops the same: a review found an
  // internal network's IPv6 routed out with ip6tables off where the iptables output closes it.)
  if (forwards.length > 0 || standIn || noDockerRules) {
    for (const n of p.networks.filter((x) => x.internal && subnetOf(x, family))) {
      const br = n.bridge.value;
      const comment = `network ${n.name} is internal: nothing in from outside it, nor out`;
      user.push(make.jump("DROP", { in: { value: br, neg: true }, out: { value: br }, comment }), make.jump("DROP", { in: { value: br }, out: { value: br, neg: true }, comment }));
    }
  }
  if (closed && brs.length > 0) {
    for (const br of brs) user.push(make.jump(follow, { in: { value: br }, comment: standIn ? "the containers' own traffic, as dockerd (writing no rules for this family) lets it through" : "the containers' own traffic follows Docker's rules" }));
    // A neighbour routing 127.0.0.1 here is DNAT'd by Docker to any published port (dst-type LOCAL):
    // closed whatever the port, so that a port published on 127.0.0.1 is the host's alone and no
    // other is reached by that path (the matrix found it open for allowed sources before).
    if (family === 4 && plan.ports.length > 0) {
      user.push(make.jump("DROP", {
        matches: [{ kind: "conntrack", state: { value: new CtStates("DNAT") }, origDst: { value: "127.0.0.0/8" } }],
        comment: "no container is reached through 127.0.0.1 routed here by a neighbour (ports published on 127.0.0.1 are the host's)",
      }));
    }
    for (let i = 0; i < plan.ports.length; i++) {
      const pp = plan.ports[i]!;
      if (pp.loopback && family === 4) continue;
      const allows = allowedBy(index, pp.container.name, pp.hostPort, pp.proto);
      if (allows.length === 0) continue;
      const base = dnatMatch(pp, plan.parts, follow);
      for (let k = 0; k < allows.length; k++) {
        const ms = matchersOf(allows[k]!);
        const origin = originOf(allows[k]!);
        for (let j = 0; j < ms.length; j++) user.push(withMatcher(ms[j]!, base, origin));
      }
    }
    for (const br of brs) user.push(make.jump("DROP", { out: { value: br }, comment: "unpublished, not allowed, or addressed straight to a container" }));
  }
  user.push(...forwards);
  if (closed && p.docker.iptables) user.push(...unknownNetworks(p, brs, standIn));
  else if (standIn) user.push(bridged(true));
  if (standIn) user.push(...dockersTraffic(p, family, closed));
  // A trailing RETURN where this Docker release writes one (an empty chain returns all the same).
  if (plan.layout.userReturn(plan.version) || user.length > 0) user.push(make.jump("RETURN"));

  const result: OwnedChains = { dockerUser: user };

  // The docker-proxy path. With userland-proxy off, dockerd still holds each published port with a socket of its own, on
  // :: too for a container with an IPv6 address, that completes a TCP handshake and never answers (a review: the wan's IPv6
  // connections to it were established, and a port scan saw the port open): where Docker DNATs nothing (IPv6 with ip6tables
  // off, a link-local source from 28 on), the same guard. Not beside a host block whose INPUT policy is DROP: that closes it already
  // (a second review found 'policy accept' left it open).
  // Without the containers' addresses (watch, while dockerd cannot be asked: CompileOptions.addressless), no DNAT takes what
  // comes to a published port first, in either family: dockerd's sockets would complete the handshakes (a review).
  const addressless = p.withFacts?.addressless === true;
  if (closed && (p.docker.userlandProxy || ((family === 6 || addressless) && (!p.host || p.host.policy === "accept")))) {
    const proxy = proxyChain(p, family, brs, index, matchersOf);
    if (proxy) result.proxy = proxy;
  } else if (!closed && p.docker.userlandProxy) {
    // `published open` is every published port open to all, as Docker has it; but an internal network's containers reach
    // none (Docker drops them on their way out), and docker-proxy would relay them where Docker DNATs nothing (a container
    // without IPv6): only that, guarded.
    const proxy = internalProxyGuard(p, family);
    if (proxy) result.proxy = proxy;
  }

  if (p.host) {
    const rules: Rule[] = [
      make.jump("ACCEPT", { in: { value: "lo" } }),
      make.jump("ACCEPT", { matches: [make.ctstate("RELATED,ESTABLISHED")] }),
    ];
    if (family === 6) {
      // Router solicitation/advertisement, neighbour solicitation/advertisement.
      for (const type of [133, 134, 135, 136]) {
        rules.push(make.jump("ACCEPT", {
          proto: "ipv6-icmp",
          matches: [{ kind: "icmp6", type: { value: String(type) } }],
          comment: "neighbour discovery (IPv6 does not work without it)",
        }));
      }
    }
    // What survived DOCKWALL-PROXY is allowed to reach docker-proxy. With `published open`, every published port is
    // everyone's, through docker-proxy too (where Docker writes no DNAT: IPv6 with ip6tables off, link-local sources):
    // a host block's DROP closed them over IPv6 while IPv4 reached them (a review).
    if (result.proxy) rules.push(make.jump(PROXY_CHAIN));
    if (p.docker.userlandProxy && (result.proxy || !closed)) {
      for (const b of proxyBindings(p, family)) rules.push(portRule(b.proto, b.hostPort, b.hostIp, "ACCEPT", `${b.container}: published port, through docker-proxy${result.proxy ? "" : " (published open)"}`));
    }
    for (const r of p.host.rules) {
      const ms = matchers(zones, r.zones, r.sources, family);
      const comment = `host: allow ${r.zones.map((z) => z.name).join(", ")} ${r.proto.value}${r.ports.length ? " " + r.ports.map((x) => (x.value.from === x.value.to ? x.value.from : `${x.value.from}-${x.value.to}`)).join(", ") : ""}`;
      const origin = { kind: "policy", span: r.span } as const;
      for (const m of ms) {
        if (r.proto.value === "icmp") {
          rules.push(withMatcher(m, make.jump("ACCEPT", { proto: family === 4 ? "icmp" : "ipv6-icmp", comment, origin })));
        } else {
          for (const port of r.ports) {
            const dport = port.value.from === port.value.to ? `${port.value.from}` : `${port.value.from}:${port.value.to}`;
            rules.push(withMatcher(m, make.jump("ACCEPT", { proto: r.proto.value, matches: [make.tcpudp(r.proto.value, dport)], comment, origin })));
          }
        }
      }
    }
    result.input = { policy: p.host.policy === "accept" ? "ACCEPT" : "DROP", rules: rules.map(marked) };
  }
  return result;
}


/**
 * dockerd (iptables on) makes networks without dockwall: `docker network create` and a
 * `docker run -p` on it are open to everyone until dockwall compiles them in, unless closed
 * here. Their bridges are `br-<id>` (a network named with com.docker.network.bridge.name is
 * not caught: watch and apply know it from the facts). What stays open is what Docker does
 * for a network's own containers: traffic within one bridge (br_netfilter shows it to FORWARD)
 * and from its bridge out (not matched here, so it goes on to Docker's chains). An interface
 * of a zone that is named like a Docker bridge is the host's, not Docker's.
 */
function unknownNetworks(p: Policy, brs: string[], standIn: boolean): Rule[] {
  const zoneIfs = zoneBridges(p, brs);
  return [
    bridged(standIn),
    ...zoneIfs.map((i) => make.jump("RETURN", { out: { value: i }, comment: `${i} is a zone's interface, not a Docker network` })),
    make.jump("DROP", { out: { value: "br-+" }, comment: "a Docker network dockwall does not know yet: closed until dockwall compiles it in (dockwall watch does at once)" }),
  ];
}

/** Traffic within one bridge (br_netfilter shows it to FORWARD): Docker's rules decide it, or with none (standIn) it passes, as before. */
function bridged(standIn: boolean): Rule {
  const physdev: Match[] = [{ kind: "physdev", bridged: {} }];
  return standIn
    ? make.jump("ACCEPT", { matches: physdev, comment: "traffic within one bridge, as dockerd (writing no rules for this family) lets it through (a network dockwall does not know yet too)" })
    : make.jump("RETURN", { matches: physdev, comment: "traffic within one bridge follows Docker's rules (a network dockwall does not know yet too)" });
}

/** Zones' own interfaces named like a Docker bridge (a host's br-lan), not Docker's. */
function zoneBridges(p: Policy, brs: string[]): string[] {
  return [...new Set(p.zones.flatMap((z) => z.interfaces.map((i) => i.value)))].filter((i) => i.startsWith("br-") && !brs.includes(i));
}

/**
 * standIn (dockerd writes no rules for this family): what Docker's rules would let through, were
 * there any (with none, everything), after what the policy closes: its networks' traffic out of
 * their bridges (and with `published open`, into them too: Docker's own behaviour), and a
 * network's own traffic when it is internal. The rest of what the host would route is not:
 * FORWARD's policy DROP. A bridge merely named like Docker's (br-*) is not taken for one: a
 * host's or a VM's bridge is not routed without a `forward` (a review found br-vms routed to
 * the wan), and a Docker network made after the compile is closed until dockwall knows it
 * (watch does at once).
 */
function dockersTraffic(p: Policy, family: Family, closed: boolean): Rule[] {
  const out: Rule[] = [];
  const why = "as dockerd, writing no rules for this family, lets it through";
  for (const n of p.networks.filter((x) => subnetOf(x, family))) {
    const br = n.bridge.value;
    if (n.internal) out.push(make.jump("ACCEPT", { in: { value: br }, out: { value: br }, comment: `network ${n.name}'s own traffic (internal), ${why}` }));
    else if (!closed) out.push(make.jump("ACCEPT", { in: { value: br }, comment: `network ${n.name}'s traffic, ${why}` }), make.jump("ACCEPT", { out: { value: br }, comment: `network ${n.name}'s traffic, ${why}` }));
  }
  return out;
}

/** Where the rules an allow makes came from (explain points at it): one object per allow. */
const origins = new WeakMap<AllowRule, NonNullable<Rule["origin"]>>();
function originOf(a: AllowRule): NonNullable<Rule["origin"]> {
  let o = origins.get(a);
  if (!o) origins.set(a, (o = { kind: "policy", span: a.span }));
  return o;
}

/** A DNATed new connection to one published port, as FORWARD sees it. */
function dnatMatch(pp: PortPlan, parts: SharedParts, target: "RETURN" | "ACCEPT"): Rule {
  return rule({
    dst: parts.is(pp.containerHost),
    out: parts.is(pp.network.bridge),
    proto: pp.proto,
    matches: [
      parts.dport(pp.proto, pp.containerPort)[0]!,
      parts.dnatTo(pp.hostPort),
    ],
    target,
    comment: pp.comment,
  });
}

interface ProxyBinding {
  container: string;
  proto: string;
  hostPort: number;
  hostIp?: string;
  loopback: boolean;
  /** The container has an IPv6 address on the network it publishes on. */
  v6: boolean;
}

/** The sockets docker-proxy listens on in this family: unbound ports get 0.0.0.0 and ::. */
function proxyBindings(p: Policy, family: Family): ProxyBinding[] {
  const nets = byName(p.networks);
  const out: ProxyBinding[] = [];
  for (let i = 0; i < p.containers.length; i++) {
    const c = p.containers[i]!;
    const n = publishingNetwork(c, nets);
    if (!n) continue;
    const v6 = c.endpoints.some((e) => e.network.name === n.name && e.addresses.some((a) => a.value.family === 6));
    for (let k = 0; k < c.publishes.length; k++) {
      const pub = c.publishes[k]!;
      const host = bindAddress(p, pub, n);
      if (host && host.family !== family) continue;
      for (const b of bindings(pub)) {
        out.push({ container: c.name, proto: b.proto, hostPort: b.hostPort, hostIp: host && host.value !== 0n ? formatIp(host) : undefined, loopback: host !== undefined && isLoopback(host), v6 });
      }
    }
  }
  return out;
}

function portRule(proto: string, port: number, hostIp: string | undefined, target: string, comment: string): Rule {
  const prefix = hostIp?.includes(":") ? 128 : 32;
  return rule({ dst: hostIp ? { value: `${hostIp}/${prefix}` } : undefined, proto, matches: [make.tcpudp(proto, port)], comment }, target);
}

/** The bridges of the internal networks that have a subnet of this family. */
function internalBridges(p: Policy, family: Family): { bridge: string; name: string }[] {
  return p.networks.filter((n) => n.internal && subnetOf(n, family)).map((n) => ({ bridge: n.bridge.value, name: n.name }));
}

function proxyComment(p: Policy, b: ProxyBinding): string {
  return `${b.container}: ${b.hostIp ? `${b.hostIp}:` : ""}${b.hostPort}/${b.proto} ${p.docker.userlandProxy ? "through docker-proxy" : "held by dockerd's own socket (userland-proxy off)"}`;
}

/** An internal network's packet to a port docker-proxy holds: dropped. */
function internalDrop(p: Policy, b: ProxyBinding, internal: { bridge: string; name: string }): Rule {
  return rule({ ...portRule(b.proto, b.hostPort, b.hostIp, "DROP", `${proxyComment(p, b)}: not from network ${internal.name} (internal)`), in: { value: internal.bridge } });
}

/** With `published open`: DOCKWALL-PROXY holds only the internal networks' drops (undefined where there are none). */
function internalProxyGuard(p: Policy, family: Family): Rule[] | undefined {
  const internal = internalBridges(p, family);
  if (internal.length === 0) return undefined;
  const bs = proxyBindings(p, family).filter((b) => !(b.loopback && family === 4));
  if (bs.length === 0) return undefined;
  const rules: Rule[] = [make.jump("RETURN", { matches: [make.ctstate("RELATED,ESTABLISHED")] })];
  for (const b of bs) for (const n of internal) rules.push(internalDrop(p, b, n));
  return rules;
}

function proxyChain(p: Policy, family: Family, brs: string[], index: AllowIndex, matchersOf: (a: AllowRule) => readonly Matcher[]): Rule[] | undefined {
  // With userland-proxy off, dockerd's own socket is on :: only for a container with an IPv6 address (a review, real dockerd
  // 20.10, ss): another port there is the host's own, which the host block says of (a scratch check of verify found the
  // guard closing a 'policy accept' host's port 8000 over IPv6, for a container with none).
  // (Without the containers' addresses, which say it, every port: that one is not the host's own is known from before.)
  const bs = proxyBindings(p, family).filter((b) => p.docker.userlandProxy || family === 4 || b.v6 || p.withFacts?.addressless);
  if (bs.length === 0) return undefined;
  const rules: Rule[] = [
    make.jump("RETURN", { matches: [make.ctstate("RELATED,ESTABLISHED")] }),
    make.jump("RETURN", { in: { value: "lo" } }),
  ];
  // Containers reach published ports through the proxy as Docker lets them.
  for (const br of brs) rules.push(make.jump("RETURN", { in: { value: br } }));
  // …but an internal network's reach nothing outside it: Docker drops them on their way to another network's container, and
  // where it DNATs nothing (a container without IPv6), docker-proxy would relay them there (a review: `allow any` let the
  // internal network's containers reach such a port over IPv6).
  const internal = internalBridges(p, family);
  for (let i = 0; i < bs.length; i++) {
    const b = bs[i]!;
    const comment = proxyComment(p, b);
    const loop = b.loopback && family === 4;
    if (!loop) {
      const allows = allowedBy(index, b.container, b.hostPort, b.proto);
      if (allows.length > 0) for (const n of internal) rules.push(internalDrop(p, b, n));
      for (let k = 0; k < allows.length; k++) {
        const ms = matchersOf(allows[k]!);
        const ret = portRule(b.proto, b.hostPort, b.hostIp, "RETURN", comment);
        for (let j = 0; j < ms.length; j++) rules.push(withMatcher(ms[j]!, ret, originOf(allows[k]!)));
      }
    }
    rules.push(portRule(b.proto, b.hostPort, b.hostIp, "DROP", comment));
  }
  return rules;
}

