// Containers: addresses inside their network, not taken twice; host ports published once.
import type { Check } from "./context.js";
import { bindings, gatewayOf, isUnspecified, publishingNetwork, subnetOf, type Binding } from "../model/derive.js";
import { broadcastOf, formatIp, formatNetwork, hostMask, networkOf, type Cidr, type Family, type Ip } from "../model/values.js";
import type { Container, Located, Network } from "../model/types.js";
import type { Span } from "../diagnostics.js";

function nextFree(ctx: Parameters<Check>[0], netName: string): string | undefined {
  const n = ctx.networks.get(netName);
  const s = n && subnetOf(n, 4);
  if (!n || !s) return undefined;
  const used = new Set<bigint>([gatewayOf(n, 4)!.value]);
  for (const c of ctx.policy.containers) for (const e of c.endpoints) if (e.network.name === netName) for (const a of e.addresses) used.add(a.value.value);
  for (let v = networkOf(s) + 1n; v < broadcastOf(s); v++) if (!used.has(v)) return formatIp({ family: 4, value: v });
  return undefined;
}

export const containerAddresses: Check = (ctx) => {
  // Per network and family, the addresses taken so far.
  const taken = new Map<string, Map<bigint, { c: Container; a: Located<Ip> }>>();
  // Per network and family, its subnet's numbers, worked out once (not per container address).
  const known = new Map<Network, (SubnetFacts | undefined)[]>();
  const facts = (n: Network, family: Family): SubnetFacts | undefined => {
    let byFamily = known.get(n);
    if (!byFamily) {
      byFamily = [subnetFacts(n, 4), subnetFacts(n, 6)];
      known.set(n, byFamily);
    }
    return byFamily[family === 4 ? 0 : 1];
  };
  const containers = ctx.policy.containers;
  for (let i = 0; i < containers.length; i++) {
    const c = containers[i]!;
    if (c.endpoints.length === 0) {
      ctx.problems.error("no-network", c.span, `container '${c.name}' is on no network`, {
        help: `add the network and the address Docker gives it, e.g. network bridge ${nextFree(ctx, "bridge") ?? "172.17.0.2"};`,
      });
    }
    const onNet = new Map<string, Span>();
    for (let k = 0; k < c.endpoints.length; k++) {
      const e = c.endpoints[k]!;
      const n = ctx.networks.get(e.network.name);
      if (!n) continue;
      const prev = onNet.get(n.name);
      if (prev) {
        ctx.problems.error("duplicate-endpoint", e.network.span, `container '${c.name}' joins network '${n.name}' twice`, { notes: [{ message: "first joined here", span: prev }] });
        continue;
      }
      onNet.set(n.name, e.network.span);
      if (!e.addresses.some((a) => a.value.family === 4) && !ctx.policy.withFacts?.addressless) {
        const free = nextFree(ctx, n.name);
        ctx.problems.error("missing-address", e.network.span, `container '${c.name}' has no IPv4 address on network '${n.name}'`, {
          help: `give the address Docker assigns it${free ? `, e.g. network ${n.name} ${free};` : ""}`,
        });
      }
      for (let j = 0; j < e.addresses.length; j++) {
        const a = e.addresses[j]!;
        const f = facts(n, a.value.family);
        const ip = () => formatIp(a.value); // for messages only
        if (!f) {
          ctx.problems.error("family-mismatch", a.span, `${ip()} is an IPv${a.value.family} address but network '${n.name}' has no IPv${a.value.family} subnet`, {
            help: a.value.family === 6 ? `add an IPv6 subnet to network '${n.name}' (subnet fd00:…/64;)` : undefined,
          });
          continue;
        }
        const s = f.subnet;
        if ((a.value.value & f.mask) !== f.network) {
          ctx.problems.error("outside-subnet", a.span, `${ip()} is outside network '${n.name}''s subnet ${formatNetwork(s)}`, {
            help: `choose an address inside ${formatNetwork(s)}`,
            notes: n.implicit ? [] : [{ message: `network '${n.name}' is declared here`, span: n.span }],
          });
          continue;
        }
        if (a.value.value === f.network || (a.value.family === 4 && a.value.value === f.broadcast)) {
          const what = a.value.value === f.network ? "network" : "broadcast";
          ctx.problems.error("reserved-address", a.span, `${ip()} is the ${what} address of ${formatNetwork(s)}; no container can have it`, { help: `choose a host address, e.g. ${nextFree(ctx, n.name) ?? "another one"}` });
          continue;
        }
        if (f.gateway === a.value.value) {
          ctx.problems.error("reserved-address", a.span, `${ip()} is the gateway of network '${n.name}' (the bridge's own address)`, { help: `choose another address, e.g. ${nextFree(ctx, n.name) ?? "a free one"}` });
          continue;
        }
        const netKey = `${n.name}|${a.value.family}`;
        let onThisNet = taken.get(netKey);
        if (!onThisNet) taken.set(netKey, (onThisNet = new Map()));
        const other = onThisNet.get(a.value.value);
        if (other) {
          ctx.problems.error("duplicate-address", a.span, `containers '${other.c.name}' and '${c.name}' both have ${ip()} on network '${n.name}'`, {
            help: `give '${c.name}' another address${nextFree(ctx, n.name) ? `, e.g. ${nextFree(ctx, n.name)}` : ""}`,
            notes: [{ message: `'${other.c.name}' has it here`, span: other.a.span }],
          });
        } else onThisNet.set(a.value.value, { c, a });
      }
    }
  }
};

interface SubnetFacts {
  subnet: Cidr;
  mask: bigint;
  network: bigint;
  broadcast: bigint;
  gateway?: bigint;
}

function subnetFacts(n: Network, family: Family): SubnetFacts | undefined {
  const subnet = subnetOf(n, family);
  if (!subnet) return undefined;
  return { subnet, mask: ~hostMask(subnet), network: networkOf(subnet), broadcast: broadcastOf(subnet), gateway: gatewayOf(n, family)?.value };
}

function hostIpText(b: Binding): string {
  return b.hostIp ? formatIp(b.hostIp) : "0.0.0.0";
}

/** Two bindings clash when the port and protocol match and the host addresses can't both be bound. */
function clash(a: Binding, b: Binding): boolean {
  if (a.proto !== b.proto) return false;
  if (!a.hostIp || !b.hostIp) return true;
  if (a.hostIp.family !== b.hostIp.family) return false;
  return isUnspecified(a.hostIp) || isUnspecified(b.hostIp) || a.hostIp.value === b.hostIp.value;
}

export const publishedPorts: Check = (ctx) => {
  // Host port (and protocol) → the publishes that bind it, so a clash is found without
  // comparing every pair.
  const byPort = new Map<number, { c: Container; b: Binding }[]>();
  const keyOf = (proto: string, port: number) => port * 2 + (proto === "udp" ? 1 : 0);
  const containers = ctx.policy.containers;
  for (let i = 0; i < containers.length; i++) {
    const c = containers[i]!;
    for (let k = 0; k < c.publishes.length; k++) {
      const p = c.publishes[k]!;
      const s = p.spec;
      if (s.hostIp?.family === 6 && !c.endpoints.some((e) => e.addresses.some((a) => a.value.family === 6)) && !ctx.policy.withFacts?.addressless) {
        ctx.problems.error("family-mismatch", p.span, `'${c.name}' publishes on an IPv6 host address but has no IPv6 address`, { help: `give the container an IPv6 address on an IPv6 network, or publish on an IPv4 address` });
      }
      const first = bindings(p)[0]!;
      let other: { c: Container; b: Binding } | undefined;
      for (let port = s.host.from; port <= s.host.to && !other; port++) other = byPort.get(keyOf(s.proto, port))?.find((x) => clash(x.b, first));
      if (other) {
        ctx.problems.error("duplicate-publish", p.span, `host port ${hostIpText(first)}:${s.host.from === s.host.to ? s.host.from : `${s.host.from}-${s.host.to}`}/${s.proto} is already published by '${other.c.name}'`, {
          help: `Docker would refuse to start '${c.name}' (port is already allocated); publish on another host port`,
          notes: [{ message: `published here`, span: other.b.publish.span }],
        });
      } else {
        for (let port = s.host.from; port <= s.host.to; port++) {
          const key = keyOf(s.proto, port);
          const list = byPort.get(key);
          if (list) list.push({ c, b: first });
          else byPort.set(key, [{ c, b: first }]);
        }
      }
    }
    // (On internal networks only, whatever a gateway line says: one naming an internal network is an error of its own.)
    if (c.publishes.length > 0 && c.endpoints.length > 0 && !publishingNetwork(c, ctx.networks, { ignoreGateway: true }) && c.endpoints.every((e) => ctx.networks.has(e.network.name))) {
      ctx.problems.warning("internal-publish", c.publishes[0]!.span, `'${c.name}' is only on internal networks, so Docker publishes none of its ports`, {
        help: `connect it to a non-internal network to publish ports, or remove the publish lines`,
      });
    }
  }
};

