// The rule set IR: what every output format is rendered from, and what the evaluator walks. A
// Rule holds its matches (typed: ir/match.ts) in the order iptables-save prints them, so the
// iptables renderer is a plain walk and the kernel's own dump of our output reads the same.
import type { Span } from "../diagnostics.js";
import type { Family } from "../model/values.js";

export interface Neg<T> {
  value: T;
  neg?: boolean;
}

import { CtStates, PortList, type Match, type TargetOptions } from "./match.js";
export type { Match } from "./match.js";

export interface Rule {
  src?: Neg<string>;
  dst?: Neg<string>;
  in?: Neg<string>;
  out?: Neg<string>;
  proto?: string;
  matches: Match[];
  /** ACCEPT, DROP, RETURN, a chain name, MASQUERADE, DNAT, … */
  target: string;
  targetOptions?: TargetOptions;
  /** Printed as a ferm comment above the rule (and grouped with its neighbours). */
  comment?: string;
  /** The policy statement the rule says (an allow, a forward, a host rule): what `dockwall explain` points at. Not rendered. */
  origin?: Origin;
}

/**
 * Where a rule came from: a policy statement (its span), or Docker (what dockerd writes for the
 * daemon itself, a network or a container: the rules dockwall reproduces with `iptables off`, and
 * predicts with `iptables on`). dockwall's own rules without a statement of their own are told by
 * their chain (explain.ts).
 */
export type Origin = PolicyOrigin | DockerOrigin;

export interface PolicyOrigin {
  kind: "policy";
  span: Span;
}

export interface DockerOrigin {
  kind: "docker";
  object: { type: "daemon" | "network" | "container"; name: string };
}

/** The policy statement a rule says, if a statement made it. */
export function statementOf(r: Rule | undefined): Span | undefined {
  return r?.origin?.kind === "policy" ? r.origin.span : undefined;
}

export interface Chain {
  name: string;
  /** Built-in chains have a policy ("ACCEPT"/"DROP"); user chains "-". */
  policy?: "ACCEPT" | "DROP";
  builtin: boolean;
  rules: Rule[];
}

export interface Table {
  name: "raw" | "mangle" | "nat" | "filter";
  chains: Chain[];
}

export interface Ruleset {
  family: Family;
  tables: Table[];
  /**
   * "full": the whole tables are ours (iptables-restore flushes them).
   * "owned": only the listed chains are ours (iptables-restore --noflush; ferm @preserve for the rest).
   */
  scope: "full" | "owned";
  /**
   * Read from the kernel: tables that hold rules the evaluators do not walk (iptables' security
   * table); what they decide is not known, so an answer about a packet is unknown, naming them.
   */
  unwalked?: string[];
  /**
   * What ipsets that rules match (`-m set --match-set NAME dst`) hold, where known: by set name,
   * the networks and addresses (hash:net, hash:ip) as `a.b.c.d/p`. Docker 28.0.0 keeps its
   * bridges' subnets in docker-ext-bridges-v4/-v6; read from the kernel with `ipset save`.
   */
  ipsets?: Record<string, string[]>;
  /**
   * Jumps that must come first in a built-in chain dockwall does not own, or shares with the
   * host (INPUT without a host block): Docker's `FORWARD -j DOCKER-USER` (dockerd puts it
   * there, and an `iptables -F FORWARD` takes it away), dockwall's `INPUT -j DOCKWALL-PROXY`
   * (an ACCEPT above it would open docker-proxy's ports). apply and watch put them back, diff
   * reports them.
   */
  firstJumps?: FirstJump[];
  /**
   * Built-in chains whose rules are not dockwall's but whose policy it sets (iptables on:
   * FORWARD DROP, as dockerd sets it only when it turns IP forwarding on itself: on a host where
   * forwarding was on before dockerd started, FORWARD stays ACCEPT and the host routes between
   * every pair of its interfaces, which the policy does not allow without `forward`).
   */
  policies?: ChainPolicy[];
}

export interface ChainPolicy {
  table: Table["name"];
  chain: string;
  policy: "ACCEPT" | "DROP";
}

export interface FirstJump {
  table: Table["name"];
  chain: string;
  target: string;
  /** dockerd makes it (and dockwall puts it back when it is gone). */
  dockerMakes?: boolean;
}

export const BUILTIN_CHAINS: Record<Table["name"], string[]> = {
  raw: ["PREROUTING", "OUTPUT"],
  mangle: ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
  nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
  filter: ["INPUT", "FORWARD", "OUTPUT"],
};

/** A mutable table under construction, with Docker's insert-at-top and append. */
export class TableBuilder {
  readonly chains = new Map<string, Chain>();

  constructor(readonly name: Table["name"]) {
    for (const c of BUILTIN_CHAINS[name]) this.chains.set(c, { name: c, policy: "ACCEPT", builtin: true, rules: [] });
  }

  chain(name: string): Chain {
    let c = this.chains.get(name);
    if (!c) {
      c = { name, builtin: false, rules: [] };
      this.chains.set(name, c);
    }
    return c;
  }

  append(chain: string, ...rules: Rule[]): void {
    this.chain(chain).rules.push(...rules);
  }

  /** Insert at position 1, as `iptables -I CHAIN`; several rules keep their order. */
  insert(chain: string, ...rules: Rule[]): void {
    this.chain(chain).rules.unshift(...rules);
  }

  /** Delete an identical rule if present (Docker re-inserts its jumps this way). */
  remove(chain: string, rule: Rule): void {
    const c = this.chain(chain);
    const key = ruleKey(rule);
    const i = c.rules.findIndex((r) => ruleKey(r) === key);
    if (i >= 0) c.rules.splice(i, 1);
  }

  setPolicy(chain: string, policy: "ACCEPT" | "DROP"): void {
    this.chain(chain).policy = policy;
  }

  build(): Table {
    // iptables-save lists built-in chains first (in kernel order), then user chains sorted by name.
    const builtins = BUILTIN_CHAINS[this.name].flatMap((n) => this.chains.get(n) ?? []);
    const users = [...this.chains.values()].filter((c) => !c.builtin).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { name: this.name, chains: [...builtins, ...users] };
  }
}

export function ruleKey(r: Rule): string {
  return JSON.stringify({ ...r, comment: undefined, origin: undefined });
}

/**
 * Every Rule is made here, its fields always in one order: the code that reads tens of
 * thousands of rules (renderers, diff) then sees a single object shape.
 */
export function rule(f: Partial<Rule>, target: string = f.target!): Rule {
  return { src: f.src, dst: f.dst, in: f.in, out: f.out, proto: f.proto, matches: f.matches ?? [], target, targetOptions: f.targetOptions, comment: f.comment, origin: f.origin };
}

/**
 * Rule parts that repeat across thousands of rules on a big host (an interface, an address,
 * a port match), made once and shared: rules never change their parts once made. One per
 * plan (docker/plan.ts).
 */
export class SharedParts {
  // Keyed by the value itself (no key string is made per lookup).
  private readonly positive = new Map<string, Neg<string>>();
  private readonly negated = new Map<string, Neg<string>>();
  private readonly ports = new Map<string, Map<number, Match[]>>();
  private readonly dnats = new Map<number, Match>();

  /** `{ value }`: matches this interface or address. */
  is(value: string): Neg<string> {
    let n = this.positive.get(value);
    if (!n) this.positive.set(value, (n = { value }));
    return n;
  }

  /** `{ value, neg }`: anything but this interface or address. */
  not(value: string): Neg<string> {
    let n = this.negated.get(value);
    if (!n) this.negated.set(value, (n = { value, neg: true }));
    return n;
  }

  /** `-m conntrack --ctstate DNAT --ctorigdstport PORT`: a connection DNAT'd from this host port. */
  dnatTo(port: number): Match {
    let m = this.dnats.get(port);
    if (!m) this.dnats.set(port, (m = { kind: "conntrack", state: { value: CT_DNAT }, origDstPort: { value: new PortList(String(port)) } }));
    return m;
  }

  /** `[-m tcp --dport PORT]` (or udp) as a rule's whole match list. */
  dport(proto: string, port: number): Match[] {
    let byPort = this.ports.get(proto);
    if (!byPort) this.ports.set(proto, (byPort = new Map()));
    let m = byPort.get(port);
    if (!m) byPort.set(port, (m = [make.tcpudp(proto, port)]));
    return m;
  }
}

const CT_DNAT = new CtStates("DNAT");

/** Small constructors that keep rule-writing code readable. */
export const make = {
  jump(target: string, extra: Partial<Rule> = {}): Rule {
    return rule(extra, target);
  },
  tcpudp(proto: string, dport?: number | string, sport?: number | string): Match {
    if (proto !== "tcp" && proto !== "udp") throw new Error(`a port match for protocol ${proto}`);
    const m: Match = { kind: proto };
    if (sport !== undefined) m.sport = { value: new PortList(String(sport)) };
    if (dport !== undefined) m.dport = { value: new PortList(String(dport)) };
    return m;
  },
  ctstate(states: string, neg = false): Match {
    return { kind: "conntrack", state: neg ? { value: new CtStates(states), neg } : { value: new CtStates(states) } };
  },
  addrtype(opt: "src-type" | "dst-type", type: string): Match {
    return opt === "src-type" ? { kind: "addrtype", src: { value: type } } : { kind: "addrtype", dst: { value: type } };
  },
};
