// What dockerd knows when it writes its rules: networks in creation order and port
// bindings in the order it processes them. Layouts turn a Plan into chains.
import { addressOn, bindAddress, bindings, byName, gatewayOf, isLoopback, publishingNetwork, subnetOf } from "../model/derive.js";
import type { Container, Network, Policy, Publish } from "../model/types.js";
import { formatIp, formatNetwork, type Family, type Proto, type Version } from "../model/values.js";
import { SharedParts } from "../ir/ruleset.js";
import type { Layout } from "./layout.js";
import { effectiveVersion } from "./layouts.js";

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
  /** Published on a loopback address (host-only). */
  loopback: boolean;
  hostPort: number;
  containerIp: string;
  /** The container's address as rules match it: `a.b.c.d/32` (or `/128`). */
  containerHost: string;
  containerPort: number;
  /** What the rules for this binding say they are for: `web: 8080/tcp -> 172.17.0.2:80`. */
  comment: string;
}

/** A container as dockerd starts it: its NAT-network endpoints, then its port bindings in processing order. */
export interface ContainerPlan {
  name: string;
  endpoints: { ip: string; bridge: string }[];
  ports: PortPlan[];
}

export interface Plan {
  family: Family;
  layout: Layout;
  /** The release the policy means (a bare major resolved to its newest). */
  version: Version;
  userlandProxy: boolean;
  networks: NetPlan[];
  containers: ContainerPlan[];
  /** Every port binding, in processing order. */
  ports: PortPlan[];
  /** Rule parts the rules of this plan share. */
  parts: SharedParts;
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


/**
 * The plan of a policy for a family and layout, made once: generate and the nft renderer (its
 * networks, its own table, Docker's tables) each ask for it, and a compile does not change the
 * policy once it generates.
 */
const made = new WeakMap<Policy, Map<Layout, Partial<Record<Family, Plan>>>>();
export function makePlan(p: Policy, family: Family, layout: Layout): Plan {
  let byLayout = made.get(p);
  if (!byLayout) made.set(p, (byLayout = new Map()));
  let byFamily = byLayout.get(layout);
  if (!byFamily) byLayout.set(layout, (byFamily = {}));
  return (byFamily[family] ??= planOf(p, family, layout));
}

/**
 * Each container's plan as an earlier compile made it, with what it was made from besides the
 * container: the family, the layout's port order, the daemon's `ip` and every network (as the
 * plan reads them). A container object read again as it was (facts/read.ts FactsMemo, watch)
 * is not planned again among networks that read the same.
 */
const planned = new WeakMap<Container, Partial<Record<Family, { key: string; cp: ContainerPlan }>>>();

function planContext(p: Policy, family: Family, layout: Layout, plans: Map<string, NetPlan>): string {
  const ip = p.docker.ip?.value;
  const nets = p.networks.map((n) => [n.name, n.internal, n.hostBinding ? [n.hostBinding.value.family, String(n.hostBinding.value.value)] : null, plans.get(n.name)]);
  const key = JSON.stringify([family, layout.portOrder, ip ? [ip.family, String(ip.value)] : null, nets]);
  // The key an earlier compile made, where it reads the same: each container's is then the same string, not one of the same
  // text, and comparing it costs nothing (compared text by text, 2,000 keys took a millisecond of a reconcile).
  const was = contexts.get(key);
  if (was !== undefined) return was;
  if (contexts.size >= 16) contexts.clear();
  contexts.set(key, key);
  return key;
}

/** The plan contexts of the latest compiles, each kept as the one string containers' plans are keyed by. */
const contexts = new Map<string, string>();

function planOf(p: Policy, family: Family, layout: Layout): Plan {
  const version = effectiveVersion(p.docker.version?.value);
  const nets = byName(p.networks);
  const plans = new Map(p.networks.map((n) => [n.name, netPlan(n, p)]));
  const containers: ContainerPlan[] = [];
  const context = planContext(p, family, layout, plans);
  for (let i = 0; i < p.containers.length; i++) {
    const c = p.containers[i]!;
    const was = planned.get(c)?.[family];
    if (was && was.key === context) {
      containers.push(was.cp);
      continue;
    }
    const cp = containerPlan(p, c, family, layout, nets, plans);
    containers.push(cp);
    let byFamily = planned.get(c);
    if (!byFamily) planned.set(c, (byFamily = {}));
    byFamily[family] = { key: context, cp };
  }
  return {
    family,
    layout,
    version,
    userlandProxy: p.docker.userlandProxy,
    networks: p.networks.map((n) => plans.get(n.name)!),
    containers,
    ports: allPorts(containers),
    parts: new SharedParts(),
  };
}

/** Every container's bindings, in order (a loop: flatMap took a millisecond of a reconcile at 2,000 containers). */
function allPorts(containers: ContainerPlan[]): PortPlan[] {
  const out: PortPlan[] = [];
  for (let i = 0; i < containers.length; i++) {
    const ports = containers[i]!.ports;
    for (let k = 0; k < ports.length; k++) out.push(ports[k]!);
  }
  return out;
}

/** One container's plan: its endpoints, and its bindings in the order dockerd processes them. */
function containerPlan(p: Policy, c: Container, family: Family, layout: Layout, nets: Map<string, Network>, plans: Map<string, NetPlan>): ContainerPlan {
  const endpoints: ContainerPlan["endpoints"] = [];
  for (let k = 0; k < c.endpoints.length; k++) {
    const e = c.endpoints[k]!;
    const n = nets.get(e.network.name);
    const ip = n && !n.internal ? addressOn(c, n, family) : undefined;
    if (n && ip) endpoints.push({ ip: formatIp(ip), bridge: n.bridge.value });
  }
  const cp: ContainerPlan = { name: c.name, endpoints, ports: [] };
  const n = publishingNetwork(c, nets);
  if (!n) return cp;
  const cip = addressOn(c, n, family);
  if (!cip) return cp;
  const containerIp = formatIp(cip);
  const containerHost = `${containerIp}/${family === 4 ? 32 : 128}`;
  const mine: PortPlan[] = [];
  for (let k = 0; k < c.publishes.length; k++) {
    const pub = c.publishes[k]!;
    const host = bindAddress(p, pub, n);
    // An address of the other family means this family gets no binding.
    if (host && host.family !== family) continue;
    const hostIp = host && host.value !== 0n ? formatIp(host) : undefined;
    const loopback = host !== undefined && isLoopback(host);
    const bs = bindings(pub);
    for (let j = 0; j < bs.length; j++) {
      const b = bs[j]!;
      mine.push({
        family,
        container: c,
        publish: pub,
        network: plans.get(n.name)!,
        proto: b.proto,
        hostIp,
        loopback,
        hostPort: b.hostPort,
        containerIp,
        containerHost,
        containerPort: b.containerPort,
        comment: portComment(family, c.name, hostIp, b.hostPort, b.proto, containerIp, b.containerPort),
      });
    }
  }
  // dockerd 20.10–26 processes a container's bindings by descending container port; 27+
  // ascending by container port, then protocol, then host port.
  const proto = (a: PortPlan, b: PortPlan) => (a.proto < b.proto ? -1 : a.proto > b.proto ? 1 : 0);
  if (mine.length < 2) {
    // nothing to order
  } else if (layout.portOrder === "descending") mine.sort((a, b) => b.containerPort - a.containerPort || proto(a, b) || b.hostPort - a.hostPort);
  else mine.sort((a, b) => a.containerPort - b.containerPort || proto(a, b) || a.hostPort - b.hostPort);
  cp.ports = mine;
  return cp;
}


/** The comment of a binding's rules. Joined, not concatenated: one flat string that thousands of rules share. */
function portComment(family: Family, container: string, hostIp: string | undefined, hostPort: number, proto: string, containerIp: string, containerPort: number): string {
  const v6 = family === 6;
  const host = hostIp ? (v6 ? `[${hostIp}]:` : `${hostIp}:`) : "";
  return [container, ": ", host, hostPort, "/", proto, " -> ", v6 ? `[${containerIp}]` : containerIp, ":", containerPort].join("");
}
