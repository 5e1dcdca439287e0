// Facts that follow from the model the way dockerd would work them out. Shared by the
// checker and the generator so both reason about the same thing.
import type { Container, Network, Policy, Publish } from "./types.js";
import { networkOf, type Cidr, type Family, type Ip, type Proto } from "./values.js";

export function subnetOf(n: Network, family: Family): Cidr | undefined {
  return n.subnets.find((s) => s.value.family === family)?.value;
}

/** The bridge's own address: given, or the subnet's first host address (Docker's IPAM). */
export function gatewayOf(n: Network, family: Family): Ip | undefined {
  const given = n.gateways.find((g) => g.value.family === family);
  if (given) return given.value;
  const s = subnetOf(n, family);
  return s ? { family, value: networkOf(s) + 1n } : undefined;
}

export function byName<T extends { name: string }>(items: T[]): Map<string, T> {
  const m = new Map<string, T>();
  for (const i of items) if (!m.has(i.name)) m.set(i.name, i);
  return m;
}

/**
 * The network a container's ports are published on (its gateway network). libnetwork picks
 * (sandbox.go, epHeap.Less), of the container's non-internal networks, a dual-stack one (an
 * IPv4 and an IPv6 gateway: the container has an IPv6 address there) before one with a single family, then the one whose name sorts
 * first (a review, real dockerd 20.10.24: `side`, IPv4 only, lost to the dual-stack `zeta`);
 * `gateway NETWORK;` names it (`ignoreGateway`: what libnetwork would pick without it). None when every network is
 * internal (then nothing is published).
 */
export function publishingNetwork(c: Container, networks: Map<string, Network>, opts?: { ignoreGateway: boolean }): Network | undefined {
  if (c.gateway && !opts?.ignoreGateway) {
    const n = networks.get(c.gateway.name);
    return n && !n.internal ? n : undefined;
  }
  let first: Network | undefined;
  let firstDual = false;
  let firstPrio = 0;
  for (let i = 0; i < c.endpoints.length; i++) {
    const e = c.endpoints[i]!;
    const n = networks.get(e.network.name);
    if (!n || n.internal) continue;
    // Dual-stack to libnetwork: the endpoint has an IPv6 gateway, which a network without IPv6 enabled does not give
    // (its IPAM may still hold an IPv6 subnet: a review). The container's IPv6 address there says it.
    const dual = subnetOf(n, 4) !== undefined && subnetOf(n, 6) !== undefined && e.addresses.some((a) => a.value.family === 6);
    // Docker 28+: the highest gateway priority first (Endpoint.Less); where a family's choice differs, facts/settings.ts refuses.
    const prio = e.gwPriority ?? 0;
    if (!first || prio > firstPrio || (prio === firstPrio && ((dual && !firstDual) || (dual === firstDual && n.name < first.name)))) {
      first = n;
      firstDual = dual;
      firstPrio = prio;
    }
  }
  return first;
}

/**
 * The networks Docker 28+ sets a container's published ports up on, per family (libnetwork's
 * Endpoint.Less and getGatewayEndpoint): its endpoints on non-internal networks, ordered by
 * gateway priority (highest first), then those with a gateway of both families, then by name;
 * the IPv4 bindings go on the first with an IPv4 gateway, the IPv6 ones on the first with an
 * IPv6 gateway — except before 29.4.1, where the first with both, if any, takes both whatever
 * the priorities (moby 18327745c0 "FIXME", changed by e30a6fa93b, PR #52328).
 */
export function dockerGateways(c: Container, networks: Map<string, Network>, version: { major: number; minor?: number; patch?: number }): Partial<Record<Family, Network>> {
  const eps = c.endpoints.flatMap((e) => {
    const n = networks.get(e.network.name);
    if (!n || n.internal) return [];
    const has = (f: Family) => subnetOf(n, f) !== undefined && e.addresses.some((a) => a.value.family === f);
    return [{ n, v4: has(4), v6: has(6), prio: e.gwPriority ?? 0 }];
  });
  eps.sort((a, b) => b.prio - a.prio || Number(b.v4) + Number(b.v6) - (Number(a.v4) + Number(a.v6)) || (a.n.name < b.n.name ? -1 : a.n.name > b.n.name ? 1 : 0));
  const before2941 = version.major < 29 || (version.major === 29 && ((version.minor ?? 99) < 4 || (version.minor === 4 && (version.patch ?? 99) < 1)));
  const dual = before2941 ? eps.find((e) => e.v4 && e.v6) : undefined;
  if (dual) return { 4: dual.n, 6: dual.n };
  const g4 = eps.find((e) => e.v4)?.n;
  const g6 = eps.find((e) => e.v6)?.n;
  return { ...(g4 ? { 4: g4 } : {}), ...(g6 ? { 6: g6 } : {}) };
}

export function addressOn(c: Container, n: Network, family: Family): Ip | undefined {
  return c.endpoints.find((e) => e.network.name === n.name)?.addresses.find((a) => a.value.family === family)?.value;
}

/** One host port → container port binding, as Docker's port mapper sees it. */
export interface Binding {
  publish: Publish;
  proto: Proto;
  hostIp?: Ip;
  hostPort: number;
  containerPort: number;
}

/** A publish's bindings, one per port of its range; worked out once per publish (the checker and both families' plans all ask). */
export function bindings(p: Publish): readonly Binding[] {
  let out = bindingsOf.get(p);
  if (out) return out;
  out = [];
  const s = p.spec;
  for (let i = 0; i <= s.host.to - s.host.from; i++) {
    out.push({ publish: p, proto: s.proto, hostIp: s.hostIp, hostPort: s.host.from + i, containerPort: s.container.from + i });
  }
  bindingsOf.set(p, out);
  return out;
}

const bindingsOf = new WeakMap<Publish, Binding[]>();

/** The host address a binding is published on: its own, else the network's host-binding, else the daemon's `ip`. */
export function bindAddress(p: Policy, pub: Publish, n: Network): Ip | undefined {
  return pub.spec.hostIp ?? n.hostBinding?.value ?? p.docker.ip?.value;
}


export function isUnspecified(ip: Ip): boolean {
  return ip.value === 0n;
}

export function isLoopback(ip: Ip): boolean {
  return ip.family === 4 ? ip.value >> 24n === 127n : ip.value === 1n;
}



