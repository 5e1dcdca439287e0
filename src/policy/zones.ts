// Zones → the (interface, source) pairs that iptables can match, per family.
import type { Located, NameRef, Zone } from "../model/types.js";
import { bits, familyOf, formatIp, type AddressSpec, type Family } from "../model/values.js";
import { rule as makeRule, type Match, type Neg, type Rule } from "../ir/ruleset.js";

/**
 * One way a packet can be in a zone, as iptables matches it: arriving on an interface (`in`,
 * if set), from a source written as `-s` (`src`) or as an iprange match (`match`).
 */
export interface Matcher {
  in?: Neg<string>;
  src?: Neg<string>;
  match?: Match;
}

export interface Interval {
  family: Family;
  from: bigint;
  to: bigint;
}

function interval(a: AddressSpec): Interval {
  if (a.kind === "range") return { family: a.range.family, from: a.range.from, to: a.range.to };
  const host = (1n << BigInt(bits(a.cidr.family) - a.cidr.prefix)) - 1n;
  const from = a.cidr.value & ~host;
  return { family: a.cidr.family, from, to: from | host };
}

function intersect(a: Interval, b: Interval): Interval | undefined {
  if (a.family !== b.family) return undefined;
  // Nested (always so for two prefixes): the inner one itself, so what is cached on it stands.
  if (a.from >= b.from && a.to <= b.to) return a;
  if (b.from >= a.from && b.to <= a.to) return b;
  const from = a.from > b.from ? a.from : b.from;
  const to = a.to < b.to ? a.to : b.to;
  return from <= to ? { family: a.family, from, to } : undefined;
}

/** Whether two sources share an address (same family, overlapping). */
export function sourcesMeet(a: AddressSpec, b: AddressSpec): boolean {
  return familyOf(a) === familyOf(b) && intersect(interval(a), interval(b)) !== undefined;
}

/** A list of sources as intervals of one family, worked out once per list (a zone's sources serve every rule that names it). */
function intervalsOf(sources: Located<AddressSpec>[], family: Family): readonly Interval[] {
  if (sources.length === 0) return NO_INTERVALS;
  const cache = intervalCache[family];
  let out = cache.get(sources);
  if (!out) {
    const list: Interval[] = [];
    for (let i = 0; i < sources.length; i++) if (familyOf(sources[i]!.value) === family) list.push(interval(sources[i]!.value));
    cache.set(sources, (out = list.slice())); // sized to fit: it lives as long as the policy
  }
  return out;
}

const NO_INTERVALS: readonly Interval[] = [];
const intervalCache = { 4: new WeakMap<Located<AddressSpec>[], Interval[]>(), 6: new WeakMap<Located<AddressSpec>[], Interval[]>() };

/** The sources a rule narrows to: the zone's `from` ∩ the rule's `from`, in this family. */
function sourceSet(zone: Zone, ruleSources: Located<AddressSpec>[], family: Family): readonly (Interval | undefined)[] | undefined {
  const z = intervalsOf(zone.sources, family);
  const r = intervalsOf(ruleSources, family);
  if (zone.sources.length > 0 && z.length === 0) return undefined; // the zone has no source of this family
  if (ruleSources.length > 0 && r.length === 0) return undefined;
  if (z.length === 0 && r.length === 0) return [undefined];
  if (z.length === 0) return r;
  if (r.length === 0) return z;
  const out: Interval[] = [];
  for (let i = 0; i < z.length; i++) {
    for (let k = 0; k < r.length; k++) {
      const both = intersect(z[i]!, r[k]!);
      if (both) out.push(both);
    }
  }
  return out.length ? out : undefined;
}

/**
 * The ways a packet can be in any of these zones and come from one of `sources`. The result
 * may be shared (callers only read it): what a zone matches on its own, for rules without
 * sources of their own, is worked out once per zone.
 */
/** A statement that admits packets by zones and sources, as written (an allow, a host rule, a forward). */
export interface Admitting {
  zones: { name: string }[];
  sources: { value: AddressSpec }[];
}

/**
 * Its zones and sources as a key (each source with its family: 0.0.0.0/0 and ::/0 are not one):
 * statements with the same key admit the same packets.
 */
const whoKeys = new WeakMap<Admitting, string>();
export function whoOf(st: Admitting): string {
  let k = whoKeys.get(st);
  if (k === undefined) {
    const src = st.sources.map((x) => (x.value.kind === "cidr" ? `${x.value.cidr.family}:${x.value.cidr.value}/${x.value.cidr.prefix}` : `${x.value.range.family}:${x.value.range.from}-${x.value.range.to}`));
    whoKeys.set(st, (k = `${st.zones.map((z) => z.name).join(",")}|${src.join(",")}`));
  }
  return k;
}

export function matchers(zones: Map<string, Zone>, refs: NameRef[], sources: Located<AddressSpec>[], family: Family): readonly Matcher[] {
  if (refs.length === 1) {
    const zone = zones.get(refs[0]!.name);
    return zone ? matchersIn(zone, sources, family) : [];
  }
  const out: Matcher[] = [];
  for (let i = 0; i < refs.length; i++) {
    const zone = zones.get(refs[i]!.name);
    if (zone) out.push(...matchersIn(zone, sources, family));
  }
  return out;
}

function matchersIn(zone: Zone, sources: Located<AddressSpec>[], family: Family): readonly Matcher[] {
  if (sources.length > 0) return zoneMatchersOf(zone, sources, family);
  const cache = zoneMatchers[family];
  let ms = cache.get(zone);
  if (!ms) cache.set(zone, (ms = zoneMatchersOf(zone, sources, family)));
  return ms;
}

const zoneMatchers = { 4: new WeakMap<Zone, Matcher[]>(), 6: new WeakMap<Zone, Matcher[]>() };

function zoneMatchersOf(zone: Zone, sources: Located<AddressSpec>[], family: Family): Matcher[] {
  const out: Matcher[] = [];
  const srcs = sourceSet(zone, sources, family);
  if (!srcs) return out;
  const ifaces = zone.interfaces.length ? zone.interfaces.map((i) => i.value) : [undefined];
  for (let i = 0; i < ifaces.length; i++) {
    const iface = ifaces[i];
    const inMatch = iface === undefined ? undefined : { value: iface };
    for (let k = 0; k < srcs.length; k++) {
      const src = srcs[k];
      const s = src && sourceMatch(src);
      out.push({ in: inMatch, src: s?.src, match: s?.match });
    }
  }
  return out;
}

/** An interval as iptables matches it: a prefix when it is one, else an iprange (once per interval). */
function sourceMatch(iv: Interval): { src?: Neg<string>; match?: Match } {
  let m = sourceMatchCache.get(iv);
  if (!m) sourceMatchCache.set(iv, (m = sourceMatchOf(iv)));
  return m;
}

const sourceMatchCache = new WeakMap<Interval, { src?: Neg<string>; match?: Match }>();

function sourceMatchOf(iv: Interval): { src?: Neg<string>; match?: Match } {
  const size = iv.to - iv.from + 1n;
  const isPow2 = (size & (size - 1n)) === 0n;
  if (isPow2 && (iv.from & (size - 1n)) === 0n) {
    const prefix = bits(iv.family) - (size.toString(2).length - 1);
    return { src: { value: `${formatIp({ family: iv.family, value: iv.from })}/${prefix}` } };
  }
  const range = `${formatIp({ family: iv.family, value: iv.from })}-${formatIp({ family: iv.family, value: iv.to })}`;
  return { match: { kind: "iprange", src: { value: range } } };
}

/** Applies a matcher to a rule (interface and source). */
export function withMatcher(m: Matcher, rule: Rule, origin: Rule["origin"] = rule.origin): Rule {
  return makeRule({
    src: m.src ?? rule.src,
    dst: rule.dst,
    in: m.in ?? rule.in,
    out: rule.out,
    proto: rule.proto,
    matches: m.match ? [m.match, ...rule.matches] : rule.matches,
    targetOptions: rule.targetOptions,
    comment: rule.comment,
    origin,
  }, rule.target);
}
