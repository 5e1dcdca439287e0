// An allow that another covers entirely (issue 23, item 6): every packet it lets in, to every
// port it opens, the other lets in too, so it adds nothing — a leftover, or a narrowing that
// does not narrow (`allow wan from 203.0.113.0/24 to web;` under `allow wan to web;`). Decided
// exactly over the classes of sources the two statements and the zones tell apart (the
// matrix's), on every interface a zone names, on one of each wildcard's that no zone names
// (never one another zone names: eth+ beside eth0 is tried on eth1), and on one no zone takes.
import { admits, classRepresentatives } from "../analysis/matrix.js";
import { interfaceKinds } from "../policy/interfaces.js";
import { bindings } from "../model/derive.js";
import type { AllowRule, Container } from "../model/types.js";
import type { Check } from "./context.js";

/** The published ports an allow opens, as `container port/proto` (a target without a protocol opens each one published there). */
function opened(a: AllowRule, containers: Map<string, Container>): Set<string> {
  const out = new Set<string>();
  for (const t of a.targets) {
    const c = containers.get(t.value.container);
    for (const pub of c?.publishes ?? []) {
      for (const b of bindings(pub)) {
        if (b.hostPort < t.value.ports.from || b.hostPort > t.value.ports.to || (t.value.proto && t.value.proto !== b.proto)) continue;
        out.add(`${t.value.container} ${b.hostPort}/${b.proto}`);
      }
    }
  }
  return out;
}

/** The same zones, sources and targets, as written. */
function sameWords(a: AllowRule, b: AllowRule): boolean {
  const words = (x: AllowRule) => JSON.stringify([x.zones.map((z) => z.name).sort(), x.sources.map((s) => JSON.stringify(s.value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))).sort(), x.written.map((w) => JSON.stringify(w.value)).sort()]);
  return words(a) === words(b);
}

/** The same zones and sources, and only targets the other names too: each is a duplicate-allow warning already. */
function repeats(a: AllowRule, b: AllowRule): boolean {
  const who = (x: AllowRule) => JSON.stringify([x.zones.map((z) => z.name), x.sources.map((s) => JSON.stringify(s.value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)))]);
  const named = new Set(b.written.map((w) => JSON.stringify(w.value)));
  return who(a) === who(b) && a.written.every((w) => named.has(JSON.stringify(w.value)));
}

export const coveredAllows: Check = (ctx) => {
  const p = ctx.policy;
  const allows = p.allows.filter((a) => a.targets.length > 0);
  if (allows.length < 2) return;
  // Only allows that share a container can cover one another.
  const byContainer = new Map<string, AllowRule[]>();
  for (let i = 0; i < allows.length; i++) {
    const a = allows[i]!;
    for (let k = 0; k < a.targets.length; k++) {
      const c = a.targets[k]!.value.container;
      let list = byContainer.get(c);
      if (!list) byContainer.set(c, (list = []));
      if (list.at(-1) !== a) list.push(a);
    }
  }
  const ifaces = interfaceKinds(p.zones.flatMap((z) => z.interfaces.map((i) => i.value)));
  const zoneSpecs = p.zones.flatMap((z) => z.sources.map((s) => s.value));
  const reported = new Set<AllowRule>();
  // The ports each opens, worked out only for the pairs whose targets could nest.
  const ports = new Map<AllowRule, Set<string>>();
  const portsOf = (x: AllowRule) => {
    let s = ports.get(x);
    if (!s) ports.set(x, (s = opened(x, ctx.containers)));
    return s;
  };
  const nests = (x: AllowRule, y: AllowRule) =>
    x.targets.every((t) => y.targets.some((u) => u.value.container === t.value.container && u.value.ports.from <= t.value.ports.from && t.value.ports.to <= u.value.ports.to && (!u.value.proto || !t.value.proto || u.value.proto === t.value.proto)));
  const within = (x: AllowRule, y: AllowRule) => nests(x, y) && [...portsOf(x)].every((k) => portsOf(y).has(k));
  /** Whether y lets in every packet x does, from every class of source, on every kind of interface (and x lets some in). */
  const letsIn = (x: AllowRule, y: AllowRule): boolean => {
    const specs = [...zoneSpecs, ...x.sources.map((s) => s.value), ...y.sources.map((s) => s.value)];
    let admitsAny = false;
    for (const family of [4, 6] as const) {
      for (const src of classRepresentatives(specs, family)) {
        for (const iface of ifaces) {
          if (!admits(ctx.zones, x.zones, x.sources, iface, src)) continue;
          admitsAny = true;
          if (!admits(ctx.zones, y.zones, y.sources, iface, src)) return false;
        }
      }
    }
    return admitsAny;
  };
  for (let i = 0; i < allows.length; i++) {
    const a = allows[i]!;
    if (reported.has(a)) continue;
    // Only the allows that name a's first container can cover it (every one of its ports must be theirs).
    const candidates = byContainer.get(a.targets[0]!.value.container)!;
    if (candidates.length < 2) continue;
    for (let k = 0; k < candidates.length; k++) {
      const b = candidates[k]!;
      if (b === a || reported.has(b)) continue;
      if (!within(a, b) || portsOf(a).size === 0) continue;
      if (!letsIn(a, b)) continue;
      // Two that cover each other (ports and sources both): the later one is the one to remove (an exact repeat is duplicate-allow's).
      // Ports alone are not enough: the narrower of two that name the same ports is the one covered, first or not.
      const mutual = within(b, a) && letsIn(b, a);
      if (mutual && p.allows.indexOf(b) > p.allows.indexOf(a)) continue;
      if ((mutual && sameWords(a, b)) || repeats(a, b)) continue; // a repeat: duplicate-allow says so
      reported.add(a);
      ctx.problems.warning("covered-allow", a.span, `everything this allow lets in, the allow on line ${b.span.line} already does (every source, on every port it names)`, {
        help: `remove it, or narrow the other allow if this one was meant to be the only way in`,
        notes: [{ message: `covered by this allow`, span: b.span }],
      });
      break;
    }
  }
};
