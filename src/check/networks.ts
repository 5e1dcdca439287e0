// Networks: subnets (one per family, no host bits, no overlap), gateways, bridge names.
import type { Check } from "./context.js";
import { cidrContains, cidrsOverlap, formatNetwork, formatCidr, networkOf, formatIp } from "../model/values.js";
import type { Located } from "../model/types.js";
import type { Cidr } from "../model/values.js";

export const networkShape: Check = (ctx) => {
  const seenBridge = new Map<string, Located<string>>();
  for (const n of ctx.policy.networks) {
    const fam = new Map<number, Located<Cidr>>();
    for (const s of n.subnets) {
      const prev = fam.get(s.value.family);
      if (prev) {
        ctx.problems.error("duplicate-subnet", s.span, `network '${n.name}' has two IPv${s.value.family} subnets`, {
          help: `a network has one IPv4 and at most one IPv6 subnet`,
          notes: [{ message: `the first IPv${s.value.family} subnet`, span: prev.span }],
        });
        continue;
      }
      fam.set(s.value.family, s);
      if (networkOf(s.value) !== s.value.value) {
        ctx.problems.error("host-bits", s.span, `subnet ${formatCidr(s.value)} has host bits set`, { help: `did you mean ${formatNetwork(s.value)}?` });
      }
    }
    if (n.subnets.length > 0 && !fam.has(4)) {
      ctx.problems.error("missing-option", n.span, `network '${n.name}' has no IPv4 subnet`, { help: `Docker bridge networks always have an IPv4 subnet; add one, e.g. subnet 172.20.0.0/16;` });
    }
    for (const g of n.gateways) {
      const s = fam.get(g.value.family);
      if (!s) {
        ctx.problems.error("family-mismatch", g.span, `gateway ${formatIp(g.value)} is IPv${g.value.family} but network '${n.name}' has no IPv${g.value.family} subnet`);
      } else if (!cidrContains(s.value, g.value)) {
        ctx.problems.error("outside-subnet", g.span, `gateway ${formatIp(g.value)} is outside network '${n.name}''s subnet ${formatNetwork(s.value)}`, { notes: [{ message: "the subnet", span: s.span }] });
      }
    }
    if (n.bridge.value) {
      const prev = seenBridge.get(n.bridge.value);
      if (prev) {
        ctx.problems.error("duplicate-bridge", n.bridge.span, `bridge '${n.bridge.value}' is used by two networks`, { help: `each Docker network has its own bridge interface`, notes: [{ message: "first used here", span: prev.span }] });
      } else seenBridge.set(n.bridge.value, n.bridge);
    }
  }
};

export const overlappingSubnets: Check = (ctx) => {
  const nets = ctx.policy.networks;
  for (let i = 0; i < nets.length; i++) {
    for (let j = i + 1; j < nets.length; j++) {
      for (const a of nets[i]!.subnets) {
        for (const b of nets[j]!.subnets) {
          if (!cidrsOverlap(a.value, b.value)) continue;
          const implicitA = nets[i]!.implicit;
          ctx.problems.error("overlapping-subnets", b.span, `subnet ${formatNetwork(b.value)} of network '${nets[j]!.name}' overlaps ${formatNetwork(a.value)} of network '${nets[i]!.name}'`, {
            help: implicitA ? `the default bridge uses ${formatNetwork(a.value)}; pick another subnet, or move the default bridge with 'bip' in the docker block` : `Docker refuses overlapping networks; pick a subnet that does not overlap`,
            notes: implicitA ? [] : [{ message: `'${nets[i]!.name}''s subnet`, span: a.span }],
          });
        }
      }
    }
  }
};
