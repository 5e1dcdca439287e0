// What dockerd knows when it writes its rules: networks in creation order and port
// bindings in the order it processes them. Layouts turn a Plan into chains.
import { addressOn, bindings, byName, gatewayOf, ip6tablesOn, publishingNetwork, subnetOf } from "../model/derive.js";
import type { Container, Network, Policy, Publish } from "../model/types.js";
import { formatIp, formatNetwork, type Family, type Ip, type Proto } from "../model/values.js";

export interface NetPlan {
  name: string;
  bridge: string;
  /** `a.b.c.d/p` per family the network has. */
  subnet: Partial<Record<Family, string>>;
  gateway: Partial<Record<Family, string>>;
  internal: boolean;
  icc: boolean;
  masquerade: boolean;
  isDefault: boolean;
}

export interface PortPlan {
  family: Family;
  container: Container;
  publish: Publish;
  network: NetPlan;
  proto: Proto;
  /** The host address the DNAT matches (`-d`), when one is bound. */
  hostIp?: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export interface Plan {
  family: Family;
  version: { major: number; minor: number };
  userlandProxy: boolean;
  networks: NetPlan[];
  ports: PortPlan[];
}

export function netPlan(n: Network, p: Policy): NetPlan {
  const subnet: NetPlan["subnet"] = {};
  const gateway: NetPlan["gateway"] = {};
  for (const f of [4, 6] as const) {
    const s = subnetOf(n, f);
    if (s) {
      subnet[f] = formatNetwork(s);
      gateway[f] = formatIp(gatewayOf(n, f)!);
    }
  }
  const isDefault = n.name === "bridge";
  return {
    name: n.name,
    bridge: n.bridge.value,
    subnet,
    gateway,
    internal: n.internal,
    icc: isDefault ? n.icc && p.docker.icc : n.icc,
    masquerade: isDefault ? n.masquerade && p.docker.ipMasq : n.masquerade,
    isDefault,
  };
}

/** Which host address a binding is published on, before family filtering. */
function hostAddress(pub: Publish, n: Network, p: Policy): Ip | undefined {
  return pub.spec.hostIp ?? n.hostBinding?.value ?? p.docker.ip?.value;
}

export function makePlan(p: Policy, family: Family): Plan {
  const major = p.docker.version?.value.major ?? 29;
  const minor = p.docker.version?.value.minor ?? 99;
  const nets = byName(p.networks);
  const plans = new Map(p.networks.map((n) => [n.name, netPlan(n, p)]));
  const ports: PortPlan[] = [];
  for (const c of p.containers) {
    const n = publishingNetwork(c, nets);
    if (!n) continue;
    const cip = addressOn(c, n, family);
    if (!cip) continue;
    const mine: PortPlan[] = [];
    for (const pub of c.publishes) {
      const host = hostAddress(pub, n, p);
      // An address of the other family means this family gets no binding.
      if (host && host.family !== family) continue;
      for (const b of bindings(pub)) {
        mine.push({
          family,
          container: c,
          publish: pub,
          network: plans.get(n.name)!,
          proto: b.proto,
          hostIp: host && host.value !== 0n ? formatIp(host) : undefined,
          hostPort: b.hostPort,
          containerIp: formatIp(cip),
          containerPort: b.containerPort,
        });
      }
    }
    // dockerd 20.10–26 processes a container's bindings by descending container port.
    mine.sort((a, b) => b.containerPort - a.containerPort || (a.proto < b.proto ? -1 : a.proto > b.proto ? 1 : 0) || b.hostPort - a.hostPort);
    ports.push(...mine);
  }
  return {
    family,
    version: { major, minor },
    userlandProxy: p.docker.userlandProxy,
    networks: p.networks.map((n) => plans.get(n.name)!),
    ports,
  };
}

export { ip6tablesOn };
