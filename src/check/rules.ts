// allow / forward / host rules: targets that exist and are published, families that can meet.
import type { Check, CheckContext } from "./context.js";
import { bindAddress, bindings, isLoopback, publishingNetwork, type Binding } from "../model/derive.js";
import { familyOf, formatCidr, formatIp, type AddressSpec, type Ip, type TargetSpec } from "../model/values.js";
import type { Container, Located, NameRef, Policy, Publish, Zone } from "../model/types.js";
import { sourcesMeet } from "../policy/zones.js";
import { joinSpans, type Span } from "../diagnostics.js";

/** A target as written: web, web:8080, shop/web:8000-8002/udp. */
function targetText(r: { name: string; ports?: { from: number; to: number }; proto?: string }): string {
  return `${r.name}${r.ports ? `:${r.ports.from === r.ports.to ? r.ports.from : `${r.ports.from}-${r.ports.to}`}` : ""}${r.proto ? `/${r.proto}` : ""}`;
}

/**
 * Each allow target names ports its container publishes. Under `factsWarn` (dockwall watch),
 * a target that only Docker's facts of the moment break (the port is no longer published, the
 * container is not as declared) is a warning and is left out of `targets`: it admits nothing,
 * and the rest of the policy still compiles.
 */
export const allowTargets: Check = (ctx) => {
  const bindingsOf = new Map<Container, Binding[]>();
  const internal = new Map<Container, boolean>();
  const onlyInternal = (c: Container): boolean => {
    let v = internal.get(c);
    if (v === undefined) {
      v = c.publishes.length > 0 && c.endpoints.length > 0 && c.endpoints.every((e) => ctx.networks.has(e.network.name)) && !publishingNetwork(c, ctx.networks, { ignoreGateway: true });
      internal.set(c, v);
    }
    return v;
  };
  const warn = ctx.factsWarn;
  const disagrees = warn ? ctx.policy.withFacts?.disagrees : undefined;
  const allows = ctx.policy.allows;
  for (let i = 0; i < allows.length; i++) {
    const a = allows[i]!;
    const kept: Located<TargetSpec>[] = [];
    // A written target (`web`) names each port of its container: said once per container, not once per port.
    const told = new Set<string>();
    for (let k = 0; k < a.targets.length; k++) {
      const t = a.targets[k]!;
      const c = ctx.containers.get(t.value.container);
      if (!c) {
        kept.push(t);
        continue; // reported by `references`
      }
      const want = t.value;
      const differs = disagrees?.get(c.name);
      if (differs) {
        const w = a.written.findIndex((x) => x.span === t.span);
        if (!told.has(`${w} ${c.name}`)) {
          told.add(`${w} ${c.name}`);
          const written = a.written[w]?.value;
          ctx.problems.factsError(true, "facts-mismatch", t.span, differs.why, `${written ? targetText(written) : c.name} is left out of this allow until they agree (it admits nothing meanwhile)`, {
            notes: [{ message: `declared here`, span: differs.span }],
          });
        }
        continue;
      }
      let published = bindingsOf.get(c);
      if (!published) bindingsOf.set(c, (published = c.publishes.flatMap(bindings)));
      let missing = false;
      for (let port = want.ports.from; port <= want.ports.to; port++) {
        let hit = false;
        for (let j = 0; j < published.length && !hit; j++) hit = published[j]!.hostPort === port && (!want.proto || published[j]!.proto === want.proto);
        if (!hit) {
          const list = c.publishes.map((p) => `${p.spec.host.from === p.spec.host.to ? p.spec.host.from : `${p.spec.host.from}-${p.spec.host.to}`}/${p.spec.proto}`);
          const portText = want.ports.from === want.ports.to ? `${port}` : `${port} (in ${want.ports.from}-${want.ports.to})`;
          const sameOtherProto = published.find((b) => b.hostPort === port);
          ctx.problems.factsError(warn, "not-published", t.span, `container '${c.name}' does not publish port ${portText}${want.proto ? `/${want.proto}` : ""}`, `${targetText({ name: c.name, ports: want.ports, proto: want.proto })} is left out of this allow until it does (it admits nothing meanwhile)`, {
            help: sameOtherProto
              ? `'${c.name}' publishes ${port}/${sameOtherProto.proto}: write ${c.name}:${port}/${sameOtherProto.proto}`
              : list.length
                ? `allow names host ports; '${c.name}' publishes ${list.join(", ")}`
                : `'${c.name}' publishes no port; add 'publish HOSTPORT:CONTAINERPORT;' to it`,
            notes: [{ message: c.span.docker ? `what Docker publishes for it` : `'${c.name}' is declared here`, span: c.span }],
          });
          missing = true;
          break;
        }
      }
      if (missing && warn) continue;
      kept.push(t);
      if (onlyInternal(c)) ctx.problems.warning("internal-publish", t.span, `'${c.name}' is only on internal networks: this allow opens nothing`);
      else if (ctx.policy.docker.published === "closed") hostOnly(ctx, c, t); // open: Docker's own 127.0.0.1 leak stays
    }
    a.targets = kept;
  }
};

/**
 * An allow target that an earlier allow already names with the same zones and sources: its
 * rule is written once (policy/owned.ts), and the repeat is warned about.
 */
export const duplicateAllows: Check = (ctx) => {
  const first = new Map<string, Span>();
  const allows = ctx.policy.allows;
  for (let i = 0; i < allows.length; i++) {
    const a = allows[i]!;
    const who = `${a.zones.map((z) => z.name).join(", ")}${a.sources.length ? ` from ${a.sources.map((s) => addressText(s.value)).join(", ")}` : ""}`;
    for (let k = 0; k < a.written.length; k++) {
      const w = a.written[k]!;
      const r = w.value;
      const target = targetText(r);
      const key = `${who} to ${target}`;
      const prev = first.get(key);
      if (!prev) {
        first.set(key, w.span);
        continue;
      }
      ctx.problems.warning("duplicate-allow", w.span, `'allow ${key}' repeats an earlier allow (same zones, sources and target); its rule is written once`, {
        help: `remove this one`,
        notes: [{ message: `first allowed here`, span: prev }],
      });
    }
  }
};

/**
 * An allow that names only ports published on a loopback address (127.0.0.1, ::1, or the
 * network's `host-binding`): allow rules are for connections from outside the host, which
 * never reach those (dockwall closes the 127.0.0.1 routing leak), so it opens nothing.
 */
function hostOnly(ctx: CheckContext, c: Container, t: Located<TargetSpec>): void {
  const n = publishingNetwork(c, ctx.networks);
  if (!n) return;
  const want = t.value;
  let named: { pub: Publish; host?: Ip } | undefined;
  for (const pub of c.publishes) {
    const s = pub.spec;
    if ((want.proto && s.proto !== want.proto) || s.host.to < want.ports.from || want.ports.to < s.host.from) continue;
    const host = bindAddress(ctx.policy, pub, n);
    if (!host || !isLoopback(host)) return; // some named port is reachable from outside
    named ??= { pub, host };
  }
  if (!named) return; // reported as not-published
  const s = named.pub.spec;
  const ports = (r: { from: number; to: number }) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`);
  const target = `${c.name}:${ports(want.ports)}${want.proto ? `/${want.proto}` : ""}`;
  const suggestion = `publish ${ports(s.host)}:${ports(s.container)}${s.proto === "udp" ? "/udp" : ""};`;
  ctx.problems.warning("host-only-port", t.span, `${target} is published only on ${formatIp(named.host!)}: no connection from outside the host can reach it, so this allow opens nothing`, {
    help: s.hostIp
      ? `a port published on a loopback address is for the host itself (dockwall also closes the routing leak to it); publish it on an address the clients reach (e.g. '${suggestion}'), or remove this allow`
      : `a port published on a loopback address is for the host itself (dockwall also closes the routing leak to it); ${n.hostBinding ? `network '${n.name}' binds its ports to ${formatIp(named.host!)} (host-binding)` : `the docker block's 'ip' binds ports to ${formatIp(named.host!)}`}: publish it on an address the clients reach, or remove this allow`,
    notes: [{ message: "published here", span: named.pub.span }],
  });
}

/**
 * Each source in `from` must be able to meet one of the named zones: one without a `from` of its
 * own, or with a network of the source's family. (A review found it asked of every zone, so that
 * `allow lan, admin from 10.1.0.5, fd02::7` was refused with an IPv4 lan and an IPv6 admin.)
 */
function sourcesFitZones(ctx: CheckContext, zones: NameRef[], sources: Located<AddressSpec>[]): void {
  if (sources.length === 0) return;
  const named = zones.map((zr) => ctx.zones.get(zr.name)).filter((z): z is Zone => z !== undefined);
  if (named.length < zones.length || named.some((z) => z.sources.length === 0)) return;
  for (const s of sources) {
    const f = familyOf(s.value);
    if (named.some((z) => z.sources.some((zs) => familyOf(zs.value) === f))) continue;
    const names = named.map((z) => `'${z.name}'`);
    const which = names.length === 1 ? `zone ${names[0]}` : `zones ${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
    ctx.problems.error("family-mismatch", s.span, `IPv${f} source in a rule for ${which}, whose sources are all IPv${f === 4 ? 6 : 4}`, {
      help: `this rule can never match; use an IPv${f === 4 ? 6 : 4} source or another zone`,
      notes: named.map((z) => ({ message: `zone '${z.name}' is declared here`, span: z.span })),
    });
  }
}

/** A source as the policy wrote it: 10.0.0.0/8, 203.0.113.7, 192.168.5.1-192.168.5.9. */
function addressText(a: AddressSpec): string {
  if (a.kind === "range") return `${formatIp({ family: a.range.family, value: a.range.from })}-${formatIp({ family: a.range.family, value: a.range.to })}`;
  return a.cidr.explicitPrefix ? formatCidr(a.cidr) : formatIp(a.cidr);
}

/** Where a zone's sources are written (all of them when they share a line). */
function sourcesSpan(z: Zone): Span {
  const first = z.sources[0]!.span;
  const last = z.sources.at(-1)!.span;
  return first.line === last.line && last.endLine === first.line ? joinSpans(first, last) : first;
}

function zoneSourcesText(z: Zone): string {
  const list = z.sources.slice(0, 8).map((s) => addressText(s.value));
  return list.join(", ") + (z.sources.length > 8 ? ", …" : "");
}

/**
 * A rule's `from` narrows its zones: a source that meets none of the zones' own `from`
 * networks makes a rule (or part of one) that can never match. Sources of a family the zones
 * lack are reported by sourcesFitZones.
 */
function sourcesInsideZones(ctx: CheckContext, refs: NameRef[], sources: Located<AddressSpec>[]): void {
  if (sources.length === 0) return;
  const zones: Zone[] = [];
  for (const r of refs) {
    const z = ctx.zones.get(r.name);
    if (!z) return; // reported by `references`
    if (z.sources.length === 0) return; // a zone without `from` holds every source
    if (!zones.includes(z)) zones.push(z);
  }
  for (const s of sources) {
    const f = familyOf(s.value);
    const sameFamily = zones.filter((z) => z.sources.some((zs) => familyOf(zs.value) === f));
    if (sameFamily.length === 0) continue;
    if (sameFamily.some((z) => z.sources.some((zs) => sourcesMeet(zs.value, s.value)))) continue;
    const one = sameFamily.length === 1;
    const listed = sameFamily.map((z) => `'${z.name}' (from ${zoneSourcesText(z)})`);
    const what = one ? listed[0]! : `${listed.slice(0, -1).join(", ")} and ${listed.at(-1)!}`;
    ctx.problems.error("outside-zone", s.span, `source ${addressText(s.value)} is outside zone${one ? "" : "s"} ${what}: this rule can never match`, {
      help: one
        ? `a rule's 'from' narrows its zone (a packet must be in both): write a source inside ${zoneSourcesText(sameFamily[0]!)}, or name a zone that holds ${addressText(s.value)}`
        : `a rule's 'from' narrows its zones (a packet must be in both): write a source inside one zone's sources, or name a zone that holds ${addressText(s.value)}`,
      notes: sameFamily.map((z) => ({ message: `zone '${z.name}' holds only these sources`, span: sourcesSpan(z) })),
    });
  }
}

export const ruleFamilies: Check = (ctx) => {
  const allows = ctx.policy.allows;
  for (let i = 0; i < allows.length; i++) {
    sourcesFitZones(ctx, allows[i]!.zones, allows[i]!.sources);
    sourcesInsideZones(ctx, allows[i]!.zones, allows[i]!.sources);
  }
  for (const f of ctx.policy.forwards) {
    sourcesFitZones(ctx, f.zones, f.sources);
    sourcesInsideZones(ctx, f.zones, f.sources);
  }
  for (const r of ctx.policy.host?.rules ?? []) {
    sourcesFitZones(ctx, r.zones, r.sources);
    sourcesInsideZones(ctx, r.zones, r.sources);
  }
};

/**
 * A zone interface's wildcard that also takes the bridges dockerd names itself: br-<12 hex
 * digits> (`br+`, `br-0+`) or docker0 (`d+`). (A network dockwall knows, whatever its bridge's
 * name, has its own rules ahead of the forwards; one made later, not yet, and a policy must not
 * stop compiling because of its name.)
 */
function takesDockerBridges(name: string): string | undefined {
  if (!name.endsWith("+")) return undefined;
  const prefix = name.slice(0, -1);
  if ("br-".startsWith(prefix) || (prefix.startsWith("br-") && /^[0-9a-f]{0,12}$/.test(prefix.slice(3)))) return "br-…";
  return "docker0".startsWith(prefix) ? "docker0" : undefined;
}

export const forwardZones: Check = (ctx) => {
  // A forward through a wildcard that takes Docker's bridges would route to and from Docker networks before their
  // own rules (a network not known yet, or an internal one, past its isolation): refused, never compiled open.
  for (const f of ctx.policy.forwards) {
    for (const ref of [...f.zones, ...f.to]) {
      const z = ctx.zones.get(ref.name);
      for (const i of z?.interfaces ?? []) {
        const bridge = takesDockerBridges(i.value);
        if (!bridge) continue;
        ctx.problems.error("forward-docker-bridges", ref.span, `'forward' through zone '${ref.name}', whose interface '${i.value}' also matches Docker's bridges (${bridge}): it would route to and from Docker's networks ahead of Docker's own rules (an internal network, or one dockwall does not know yet)`, {
          help: `name the host's own interfaces in zone '${ref.name}' (e.g. 'interface br0;'); containers are reached with 'allow', not 'forward'`,
          notes: [{ message: `'${i.value}' is here`, span: i.span }],
        });
      }
    }
  }
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

/**
 * An allow from a zone on a Docker network's bridge: traffic between containers follows Docker's own
 * rules (DOCKER-USER returns a bridge's own traffic to them before any allow), so the allow admits
 * none of that network's containers and keeps none out (a review: a policy reading "only .11 may
 * reach a:8080" let every container of the network in, and matrix held it against the allow).
 */
export const bridgeZones: Check = (ctx) => {
  const byBridge = new Map(ctx.policy.networks.map((n) => [n.bridge.value, n.name]));
  // The networks an interface takes: by name, or by a wildcard (br-+ takes every br-<id> Docker names: a review).
  const takes = (i: string): string[] => (i.endsWith("+") ? [...byBridge].filter(([b]) => b.startsWith(i.slice(0, -1))).map(([, n]) => n) : byBridge.has(i) ? [byBridge.get(i)!] : []);
  for (const a of ctx.policy.allows) {
    for (const ref of a.zones) {
      const z = ctx.zones.get(ref.name);
      if (!z || z.builtin) continue;
      const on = z.interfaces.filter((i) => takes(i.value).length > 0);
      if (on.length === 0) continue;
      const nets = [...new Set(on.flatMap((i) => takes(i.value)))];
      const all = on.length === z.interfaces.length;
      const where = on
        .map((i) => {
          const ns = takes(i.value);
          return i.value.endsWith("+") ? `${i.value}, which takes the bridge${ns.length > 1 ? "s" : ""} of network${ns.length > 1 ? "s" : ""} ${ns.join(", ")}` : `${i.value}, network ${ns[0]}'s bridge`;
        })
        .join("; ");
      ctx.problems.warning("allow-from-bridge", ref.span, `zone '${ref.name}' is on ${where}: ${nets.length === 1 ? `${nets[0]}'s containers` : `the containers of networks ${nets.join(", ")}`} reach published ports as Docker's own rules let them, whatever an allow says, so this allow lets none ${all ? "" : "of them "}in and keeps none out`, {
        help: `to keep containers from each other, put them on separate networks (or set 'icc off' on the network); a 'host' block's rules for zone '${ref.name}' do apply to them`,
        notes: on.map((i) => ({ message: `${i.value} is here`, span: i.span })),
      });
    }
  }
};
