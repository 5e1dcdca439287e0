// allow / forward / host rules: targets that exist and are published, families that can meet.
import type { Check, CheckContext } from "./context.js";
import { bindings, publishingNetwork, type Binding } from "../model/derive.js";
import { familyOf, type AddressSpec } from "../model/values.js";
import type { Container, Located, NameRef } from "../model/types.js";

export const allowTargets: Check = (ctx) => {
  const bindingsOf = new Map<Container, Binding[]>();
  const internal = new Map<Container, boolean>();
  const onlyInternal = (c: Container): boolean => {
    let v = internal.get(c);
    if (v === undefined) {
      v = c.publishes.length > 0 && c.endpoints.length > 0 && c.endpoints.every((e) => ctx.networks.has(e.network.name)) && !publishingNetwork(c, ctx.networks);
      internal.set(c, v);
    }
    return v;
  };
  // (Indexed loops: for…of allocates per step in code that is not yet optimised.)
  const allows = ctx.policy.allows;
  for (let i = 0; i < allows.length; i++) {
    const a = allows[i]!;
    for (let k = 0; k < a.targets.length; k++) {
      const t = a.targets[k]!;
      const c = ctx.containers.get(t.value.container);
      if (!c) continue; // reported by `references`
      const want = t.value;
      let published = bindingsOf.get(c);
      if (!published) bindingsOf.set(c, (published = c.publishes.flatMap(bindings)));
      for (let port = want.ports.from; port <= want.ports.to; port++) {
        let hit = false;
        for (let j = 0; j < published.length && !hit; j++) hit = published[j]!.hostPort === port && (!want.proto || published[j]!.proto === want.proto);
        if (!hit) {
          const list = c.publishes.map((p) => `${p.spec.host.from === p.spec.host.to ? p.spec.host.from : `${p.spec.host.from}-${p.spec.host.to}`}/${p.spec.proto}`);
          const portText = want.ports.from === want.ports.to ? `${port}` : `${port} (in ${want.ports.from}-${want.ports.to})`;
          const sameOtherProto = published.find((b) => b.hostPort === port);
          ctx.problems.error("not-published", t.span, `container '${c.name}' does not publish port ${portText}${want.proto ? `/${want.proto}` : ""}`, {
            help: sameOtherProto
              ? `'${c.name}' publishes ${port}/${sameOtherProto.proto}: write ${c.name}:${port}/${sameOtherProto.proto}`
              : list.length
                ? `allow names host ports; '${c.name}' publishes ${list.join(", ")}`
                : `'${c.name}' publishes no port; add 'publish HOSTPORT:CONTAINERPORT;' to it`,
            notes: [{ message: c.span.docker ? `what Docker publishes for it` : `'${c.name}' is declared here`, span: c.span }],
          });
          break;
        }
      }
      if (onlyInternal(c)) ctx.problems.warning("internal-publish", t.span, `'${c.name}' is only on internal networks: this allow opens nothing`);
    }
  }
};

/** Sources in `from` must be able to meet the zone's own `from` networks (same family). */
function sourcesFitZones(ctx: CheckContext, zones: NameRef[], sources: Located<AddressSpec>[]): void {
  if (sources.length === 0) return;
  for (const zr of zones) {
    const z = ctx.zones.get(zr.name);
    if (!z || z.sources.length === 0) continue;
    for (const s of sources) {
      const f = familyOf(s.value);
      if (!z.sources.some((zs) => familyOf(zs.value) === f)) {
        ctx.problems.error("family-mismatch", s.span, `IPv${f} source in a rule for zone '${z.name}', whose sources are all IPv${f === 4 ? 6 : 4}`, {
          help: `this rule can never match; use an IPv${f === 4 ? 6 : 4} source or another zone`,
          notes: [{ message: `zone '${z.name}' is declared here`, span: z.span }],
        });
      }
    }
  }
}

export const ruleFamilies: Check = (ctx) => {
  const allows = ctx.policy.allows;
  for (let i = 0; i < allows.length; i++) sourcesFitZones(ctx, allows[i]!.zones, allows[i]!.sources);
  for (const f of ctx.policy.forwards) sourcesFitZones(ctx, f.zones, f.sources);
  for (const r of ctx.policy.host?.rules ?? []) sourcesFitZones(ctx, r.zones, r.sources);
};

export const forwardZones: Check = (ctx) => {
  for (const f of ctx.policy.forwards) {
    for (const t of f.to) {
      const z = ctx.zones.get(t.name);
      if (!z) continue;
      if (z.builtin || z.interfaces.length === 0) {
        ctx.problems.error("no-interface", t.span, `'forward … to ${t.name}' needs a zone with an interface to send through`, {
          help: `add 'interface NAME;' to zone '${t.name}'${z.builtin ? " (use a declared zone, not 'any')" : ""}`,
          notes: z.builtin ? [] : [{ message: `zone '${t.name}' is declared here`, span: z.span }],
        });
      }
    }
  }
};
