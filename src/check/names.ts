// Names: duplicates, and references to zones, networks and containers that do not exist.
import { publishingNetwork } from "../model/derive.js";
import { closest, suggestion } from "../diagnostics.js";
import type { NameRef } from "../model/types.js";
import type { Check, CheckContext } from "./context.js";

export const duplicateNames: Check = (ctx) => {
  const p = ctx.policy;
  const kinds: [string, { name: string; span: import("../diagnostics.js").Span; implicit?: boolean; builtin?: boolean }[]][] = [
    ["zone", p.zones],
    ["network", p.networks.filter((n) => !n.implicit)],
    ["container", p.containers],
  ];
  for (const [kind, items] of kinds) {
    const first = new Map<string, (typeof items)[number]>();
    for (const it of items) {
      if (kind === "zone" && it.name === "any") {
        ctx.problems.error("duplicate-name", it.span, `'any' is the built-in zone that holds every packet`, { help: `choose another name for this zone` });
        continue;
      }
      const prev = first.get(it.name);
      if (prev) {
        ctx.problems.error("duplicate-name", it.span, `${kind} '${it.name}' is declared twice`, {
          help: `rename one of them or merge the two blocks`,
          notes: [{ message: `first declared here`, span: prev.span }],
        });
      } else first.set(it.name, it);
    }
  }
};

function resolve(ctx: CheckContext, ref: NameRef, kind: "zone" | "network" | "container"): boolean {
  const table = kind === "zone" ? ctx.zones : kind === "network" ? ctx.networks : ctx.containers;
  if (table.has(ref.name)) return true;
  const names = [...table.keys()];
  const help = suggestion(ref.name, names, kind);
  const near = closest(ref.name, names);
  const target = near ? table.get(near) : undefined;
  const notes = target && !("implicit" in target && target.implicit) && !("builtin" in target && target.builtin)
    ? [{ message: `'${near}' is declared here`, span: target.span }]
    : [];
  ctx.problems.error("unknown-name", ref.span, `unknown ${kind} '${ref.name}'`, { help, notes });
  return false;
}

export const references: Check = (ctx) => {
  const p = ctx.policy;
  for (let i = 0; i < p.containers.length; i++) {
    const c = p.containers[i]!;
    for (let k = 0; k < c.endpoints.length; k++) resolve(ctx, c.endpoints[k]!.network, "network");
    if (c.gateway && resolve(ctx, c.gateway, "network") && !c.endpoints.some((e) => e.network.name === c.gateway!.name)) {
      ctx.problems.error("bad-gateway", c.gateway.span, `container '${c.name}' is not on network '${c.gateway.name}'`, {
        help: `add 'network ${c.gateway.name} ADDRESS;' to the container, or name one of its networks`,
      });
    } else if (c.gateway && ctx.networks.get(c.gateway.name)?.internal) {
      // Docker never makes an internal network the gateway: with a normal one beside it, it publishes there, and a policy
      // that publishes nothing would leave those ports unguarded (a review: the wan reached one).
      const real = publishingNetwork(c, ctx.networks, { ignoreGateway: true });
      ctx.problems.error("bad-gateway", c.gateway.span, `network '${c.gateway.name}' is internal: Docker never publishes on it, nor routes a container out through it`, {
        help: real ? `remove the gateway line (Docker publishes on network '${real.name}'), or name one of the container's other networks` : `remove the gateway line: on internal networks only, the container publishes nothing`,
      });
    }
  }
  for (let i = 0; i < p.allows.length; i++) {
    const a = p.allows[i]!;
    for (let k = 0; k < a.zones.length; k++) resolve(ctx, a.zones[k]!, "zone");
    // (Its targets' names were resolved before the checker: model/targets.ts.)
  }
  for (const f of p.forwards) {
    for (const z of [...f.zones, ...f.to]) resolve(ctx, z, "zone");
  }
  for (const r of p.host?.rules ?? []) for (const z of r.zones) resolve(ctx, z, "zone");
};
