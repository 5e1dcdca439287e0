// A rule's matches as typed values: the ports, conntrack states, address ranges and types that
// dockwall writes and the evaluator understands, each parsed once where the rule is made (or
// read from iptables-save), not module text that every consumer parses again. A match of
// another tool's that dockwall does not model (`-m recent`, `-m limit`, options in an order
// iptables-save does not print) stays as it was read (`other`): the iptables and ferm outputs
// write it back as it was, and the evaluator answers `unknown` naming it.
//
// The edges translate: moduleView() is a match as iptables writes it (its module and options,
// in iptables-save's order), what the iptables and ferm renderers print; typedMatch() is the
// reverse, for the iptables-save reader.
import { readIp } from "./address.js";
import type { Neg } from "./ruleset.js";

/** One `--option [value]` of a match, as iptables writes it. */
export interface Opt {
  name: string;
  value?: string;
  neg?: boolean;
}

/** A match as iptables writes it: `-m MODULE --opt value …`. */
export interface ModuleMatch {
  module: string;
  options: Opt[];
}

/** Ports as iptables writes them (`80`, `8000:8080`, a multiport list `80,443,1000:2000`), and the ranges they cover. */
export class PortList {
  private parsed?: readonly (readonly [number, number])[];
  constructor(readonly text: string) {}

  /** Each port or range as [first, last]; `:1024` from 0, `1024:` to 65535. */
  get ranges(): readonly (readonly [number, number])[] {
    return (this.parsed ??= this.text.split(",").map((p): [number, number] => {
      const [a, b] = p.split(":");
      return b === undefined ? [Number(a), Number(a)] : [a === "" ? 0 : Number(a), b === "" ? 65535 : Number(b)];
    }));
  }

  /** The one port when it is a single one (`80`), else undefined. */
  get single(): number | undefined {
    return /^\d+$/.test(this.text) ? Number(this.text) : undefined;
  }

  has(port: number): boolean {
    for (const [a, b] of this.ranges) if (a <= port && port <= b) return true;
    return false;
  }

  toJSON(): string {
    return this.text;
  }
}

/** Conntrack states as iptables writes them (`RELATED,ESTABLISHED`), and each of them. */
export class CtStates {
  private parsed?: readonly string[];
  constructor(readonly text: string) {}
  get states(): readonly string[] {
    return (this.parsed ??= this.text.split(","));
  }
  has(state: string): boolean {
    return this.states.includes(state);
  }
  toJSON(): string {
    return this.text;
  }
}

export interface TcpUdpMatch {
  kind: "tcp" | "udp";
  sport?: Neg<PortList>;
  dport?: Neg<PortList>;
  /** `--tcp-flags MASK COMP` (tcp only), as written: `FIN,SYN,RST,ACK SYN`. */
  flags?: Neg<string>;
}
export interface MultiportMatch {
  kind: "multiport";
  /** `--sports` or `--dports` (one per match). */
  /** `--ports`: either port (a fuzzer found it read as a match the evaluator does not know). */
  dir: "sports" | "dports" | "ports";
  ports: Neg<PortList>;
}
export interface ConntrackMatch {
  kind: "conntrack";
  state?: Neg<CtStates>;
  /** `--ctorigdst`: the address the connection was first sent to (a network, as written). */
  origDst?: Neg<string>;
  /** `--ctorigdstport`: the port it was first sent to. */
  origDstPort?: Neg<PortList>;
}
export interface StateMatch {
  kind: "state";
  state: Neg<CtStates>;
}
export interface AddrtypeMatch {
  kind: "addrtype";
  /** `--src-type`/`--dst-type`: LOCAL, UNICAST, … */
  src?: Neg<string>;
  dst?: Neg<string>;
}
export interface IprangeMatch {
  kind: "iprange";
  /** `--src-range`/`--dst-range`: `FROM-TO`. */
  src?: Neg<string>;
  dst?: Neg<string>;
}
export interface IcmpMatch {
  kind: "icmp" | "icmp6";
  /** `--icmp-type`/`--icmpv6-type`: a number, TYPE/CODE, or a name. */
  type: Neg<string>;
}
export interface CommentMatch {
  kind: "comment";
  text: string;
}
export interface PhysdevMatch {
  kind: "physdev";
  /** `--physdev-is-bridged` (and nothing else of physdev's). */
  bridged: { neg?: boolean };
}
export interface SetMatch {
  kind: "set";
  /** `--match-set NAME FLAGS`: `docker-ext-bridges-v4 dst`. */
  set: Neg<string>;
}
/** A match dockwall does not model, as it was read. */
export interface OtherMatch extends ModuleMatch {
  kind: "other";
}

export type Match = TcpUdpMatch | MultiportMatch | ConntrackMatch | StateMatch | AddrtypeMatch | IprangeMatch | IcmpMatch | CommentMatch | PhysdevMatch | SetMatch | OtherMatch;

const opt = (name: string, n: Neg<{ text: string } | string> | undefined, out: Opt[]): void => {
  if (!n) return;
  const value = typeof n.value === "string" ? n.value : n.value.text;
  out.push(n.neg ? { name, value, neg: true } : { name, value });
};

const views = new WeakMap<Match, ModuleMatch>();

/** A match as iptables writes it: its module, and its options in the order iptables-save prints them. */
export function moduleView(m: Match): ModuleMatch {
  let v = views.get(m);
  if (v) return v;
  const spec = TYPED[m.kind];
  if (spec) {
    // The modules of TYPED: their options in the order the table gives, which is iptables-save's.
    const o: Opt[] = [];
    for (const x of spec) opt(x.name, (m as unknown as Record<string, Neg<{ text: string } | string> | undefined>)[x.field], o);
    v = { module: m.kind, options: o };
  } else if (m.kind === "multiport") {
    const o: Opt[] = [];
    opt(m.dir, m.ports, o);
    v = { module: "multiport", options: o };
  } else if (m.kind === "comment") v = { module: "comment", options: [{ name: "comment", value: m.text }] };
  else if (m.kind === "physdev") v = { module: "physdev", options: [m.bridged.neg ? { name: "physdev-is-bridged", neg: true } : { name: "physdev-is-bridged" }] };
  else if (m.kind === "other") v = { module: m.module, options: m.options };
  else throw new Error(`a match of kind ${m.kind} with no options of its own`);
  views.set(m, v);
  return v;
}

/** A word of a rule as iptables-save writes it: in double quotes when it holds a space, a quote or a backslash (or is empty). */
export function quoteWord(w: string): string {
  return w === "" || /[\s"\\']/.test(w) ? `"${w.replace(/(["\\])/g, "\\$1")}"` : w;
}

/** Options whose value is two words, written without quotes (`--match-set NAME FLAGS`, `--tcp-flags MASK COMP`). */
export const TWO_WORDS = new Set(["tcp-flags", "match-set", "add-set", "del-set"]);

/** An option's value as iptables-save writes it: a two-word value as two words, any other text quoted where it needs to be. */
export function optionValue(name: string, value: string): string {
  return TWO_WORDS.has(name) ? value : quoteWord(value);
}

function pushOpt(out: string[], name: string, n: Neg<{ text: string } | string> | undefined): void {
  if (n) out.push(n.neg ? " ! --" : " --", name, " ", typeof n.value === "string" ? n.value : n.value.text);
}

/**
 * Appends a match as iptables-save prints it (` -m MODULE --opt value …`) to `out`: what
 * moduleView says, without making its objects (the iptables output of a large host writes tens
 * of thousands; test/ir/match.test.ts holds the two to each other).
 */
export function pushIptablesMatch(out: string[], m: Match): void {
  const spec = TYPED[m.kind];
  if (spec) {
    // (A typed value is one word, or two where the option takes two: never quoted.)
    out.push(" -m ", m.kind);
    for (let i = 0; i < spec.length; i++) pushOpt(out, spec[i]!.name, (m as unknown as Record<string, Neg<{ text: string } | string> | undefined>)[spec[i]!.field]);
    return;
  }
  if (m.kind === "comment") {
    out.push(" -m comment --comment ", quoteWord(m.text));
    return;
  }
  const v = moduleView(m);
  out.push(" -m ", v.module);
  for (const x of v.options) {
    out.push(x.neg ? " ! --" : " --", x.name);
    if (x.value !== undefined) out.push(" ", optionValue(x.name, x.value));
  }
}

/** The options each modelled module takes, in iptables-save's order, and how each value is read. */
const TYPED: Record<string, { name: string; field: string; read: (v: string) => unknown }[]> = {
  tcp: [
    { name: "sport", field: "sport", read: (v) => new PortList(v) },
    { name: "dport", field: "dport", read: (v) => new PortList(v) },
    { name: "tcp-flags", field: "flags", read: (v) => v },
  ],
  udp: [
    { name: "sport", field: "sport", read: (v) => new PortList(v) },
    { name: "dport", field: "dport", read: (v) => new PortList(v) },
  ],
  conntrack: [
    { name: "ctstate", field: "state", read: (v) => new CtStates(v) },
    { name: "ctorigdst", field: "origDst", read: (v) => v },
    { name: "ctorigdstport", field: "origDstPort", read: (v) => new PortList(v) },
  ],
  state: [{ name: "state", field: "state", read: (v) => new CtStates(v) }],
  addrtype: [
    { name: "src-type", field: "src", read: (v) => v },
    { name: "dst-type", field: "dst", read: (v) => v },
  ],
  iprange: [
    { name: "src-range", field: "src", read: (v) => v },
    { name: "dst-range", field: "dst", read: (v) => v },
  ],
  icmp: [{ name: "icmp-type", field: "type", read: (v) => v }],
  icmp6: [{ name: "icmpv6-type", field: "type", read: (v) => v }],
  set: [{ name: "match-set", field: "set", read: (v) => v }],
};

/**
 * A match as iptables wrote it, typed where dockwall models every option of it in the order
 * iptables-save prints them (so that moduleView gives back exactly what was read); `other`
 * otherwise.
 */
export function typedMatch(module: string, options: Opt[]): Match {
  const other = (): OtherMatch => ({ kind: "other", module, options });
  if (options.length === 0) return other();
  if (module === "comment") return options.length === 1 && options[0]!.name === "comment" && options[0]!.value !== undefined && !options[0]!.neg ? { kind: "comment", text: options[0]!.value } : other();
  if (module === "physdev") return options.length === 1 && options[0]!.name === "physdev-is-bridged" && options[0]!.value === undefined ? { kind: "physdev", bridged: options[0]!.neg ? { neg: true } : {} } : other();
  if (module === "multiport") {
    const o = options[0]!;
    if (options.length !== 1 || (o.name !== "sports" && o.name !== "dports" && o.name !== "ports") || o.value === undefined) return other();
    return { kind: "multiport", dir: o.name, ports: o.neg ? { value: new PortList(o.value), neg: true } : { value: new PortList(o.value) } };
  }
  const spec = TYPED[module];
  if (!spec) return other();
  const m: Record<string, unknown> = { kind: module };
  let at = 0;
  for (const o of options) {
    while (at < spec.length && spec[at]!.name !== o.name) at++;
    if (at === spec.length || o.value === undefined) return other();
    const s = spec[at++]!;
    m[s.field] = o.neg ? { value: s.read(o.value), neg: true } : { value: s.read(o.value) };
  }
  // icmp and icmp6 have their type always; a set its name.
  if ((module === "icmp" || module === "icmp6") && !m.type) return other();
  if (module === "state" && !m.state) return other();
  return m as unknown as Match;
}

/**
 * A NAT target's `ADDR[:PORT[-PORT]]` as iptables writes it (DNAT's `--to-destination`, SNAT's
 * `--to-source`): IPv6 in brackets when a port follows, bare otherwise (a fuzzer found a bare one
 * cut at its last colon). The one address it names, and its port or range of ports; null for a
 * range of addresses, or none.
 */
export function readNatTo(text: string): { addr: string; port?: number; toPort?: number } | null {
  const m = /^\[?([^\]]+?)\]?(?::(\d+)(?:-(\d+))?)?$/.exec(text.includes("[") ? text : text.split(":").length > 2 ? `[${text}]` : text);
  if (!m || !readIp(m[1]!)) return null;
  return { addr: m[1]!, ...(m[2] ? { port: Number(m[2]) } : {}), ...(m[3] ? { toPort: Number(m[3]) } : {}) };
}

/**
 * DNAT's `--to-destination` as written (`172.17.0.2:80`, `[fd00::2]:80`), and the one address
 * and port it names; a range of addresses or ports, or no address, names none (which one the
 * kernel picks is not known here).
 */
export class DnatTo {
  private parsed?: { addr: string; port?: number } | null;
  constructor(readonly text: string) {}

  get one(): { addr: string; port?: number } | undefined {
    if (this.parsed === undefined) {
      const to = readNatTo(this.text);
      this.parsed = to && to.toPort === undefined ? { addr: to.addr, port: to.port } : null;
    }
    return this.parsed ?? undefined;
  }

  toJSON(): string {
    return this.text;
  }
}

/** One `--option value` of a target, as iptables writes it. */
export interface TargetOpt {
  name: string;
  value: string;
}

/** A target's options: typed where dockwall models them (DNAT's destination, CT's --notrack), as read otherwise. */
export type TargetOptions = { kind: "dnat"; to: DnatTo } | { kind: "notrack" } | { kind: "other"; options: TargetOpt[] };

const targetViews = new WeakMap<TargetOptions, TargetOpt[]>();

/** A target's options as iptables writes them. */
export function targetOptionsView(t: TargetOptions | undefined): TargetOpt[] | undefined {
  if (!t) return undefined;
  let v = targetViews.get(t);
  if (!v) targetViews.set(t, (v = t.kind === "dnat" ? [{ name: "to-destination", value: t.to.text }] : t.kind === "notrack" ? [{ name: "notrack", value: "" }] : t.options));
  return v;
}

/** Where a DNAT sends the packet: its typed destination, or the --to-destination of another tool's DNAT beside other options (--random…). */
export function dnatOf(t: TargetOptions | undefined): DnatTo | undefined {
  if (t?.kind === "dnat") return t.to;
  const text = t?.kind === "other" ? t.options.find((o) => o.name === "to-destination")?.value : undefined;
  return text === undefined ? undefined : new DnatTo(text);
}

/** A target's options as iptables wrote them, typed where they are exactly what dockwall models. */
export function typedTargetOptions(target: string, options: TargetOpt[]): TargetOptions {
  const [o, more] = options;
  if (target === "DNAT" && o?.name === "to-destination" && !more) return { kind: "dnat", to: new DnatTo(o.value) };
  if (target === "CT" && o?.name === "notrack" && o.value === "" && !more) return { kind: "notrack" };
  return { kind: "other", options };
}
