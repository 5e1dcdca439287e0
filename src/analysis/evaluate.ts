// A packet evaluator over dockwall's own rule IR: given a packet, walk the chains as the kernel
// does (raw, mangle and nat PREROUTING, then mangle and filter INPUT or FORWARD) and say what becomes of it and which rule
// decided (and, asked for, each rule on the way that changed or decided it). It serves the
// lockout guard of `apply` and `dockwall explain`; tests prove its answers against the kernel.
// Pure. A match it does not understand makes the answer "unknown" rather than a guess.
import { bits, fastIpv4, readIp } from "../ir/address.js";
import type { Chain, Match, Neg, Rule, Ruleset, Table } from "../ir/ruleset.js";
import { dnatOf, readNatTo, targetOptionsView, typedMatch, type DnatTo, type PortList } from "../ir/match.js";
import type { Family } from "../model/values.js";
import type { Policy } from "../model/types.js";

export interface Packet {
  family: Family;
  /** The interface it arrives on. */
  in: string;
  src: string;
  dst: string;
  proto: "tcp" | "udp" | "icmp";
  sport?: number;
  dport?: number;
  /** ICMP type (icmp packets): 8 is an IPv4 echo request, 128 an IPv6 one. */
  icmpType?: number;
  /** Conntrack state: NEW for a first packet. */
  state: "NEW" | "ESTABLISHED" | "RELATED" | "INVALID";
  /** The host's own addresses (addrtype LOCAL). */
  local: string[];
  /** Bridged within one bridge, not routed (br_netfilter shows it to FORWARD): `-m physdev --physdev-is-bridged`. */
  bridged?: boolean;
  /** The host's routes, to find where a DNAT'd packet leaves (e.g. a bridge's subnet → its bridge). */
  routes?: { dst: string; dev: string }[];
  /** Sent by the host itself: the OUTPUT path (then, addressed to the host, INPUT on lo); `in` is not used. */
  fromHost?: boolean;
  /**
   * IPv4: the interfaces route_localnet is on for, where Linux routes the host's packet from 127.0.0.0/8 out (a DNAT of
   * its connection to 127.0.0.1 elsewhere); `read`: from the kernel (--live), else what dockerd sets (its bridges, with
   * userland-proxy off). Undefined: not known.
   */
  localnet?: { on: string[]; read: boolean };
  /** The source address is not known (the host's, to an outside address): a rule that looks at it makes the answer unknown. */
  srcUnknown?: boolean;
}

export interface Decision {
  table: Table["name"];
  chain: string;
  /** Index in the chain; -1: the chain's policy. */
  index: number;
  rule?: Rule;
}

/** A rule on the packet's way that changed or decided it (or the chain's policy: index -1). */
export interface Step extends Decision {
  action: "jump" | "dnat" | "notrack" | "accept" | "drop" | "reject" | "return" | "policy";
}

export interface Verdict {
  verdict: "ACCEPT" | "DROP" | "REJECT" | "unknown";
  /** Where the packet went: the host itself (INPUT), a container or on (DNAT, then FORWARD), or out from the host (OUTPUT). */
  path: "input" | "forward" | "output";
  /** After DNAT: the address and port it was sent on to. */
  dnat?: { addr: string; port?: number };
  decided?: Decision;
  /** Why the answer is unknown: the match dockwall cannot evaluate. */
  why?: string;
  /** Unknown because it is a packet from outside to loopback, not DNATed: whatever happens to it, no container gets it. */
  martian?: boolean;
  /** The connection's replies are dropped (by `decided`): the packet that opens it gets through, the connection does not. */
  reply?: boolean;
  /** With reply: not dropped but taken out of conntrack (`decided` is the NOTRACK), so not translated back: no connection either. */
  untracked?: boolean;
  /** The connection's later packets from the side that opened it (its ACK, its data) are dropped (by `decided`): no connection. */
  later?: boolean;
  /**
   * With reply: the replies after the first are dropped (by `decided`), a TCP connection whose own packets are not tracked:
   * conntrack takes them for a new connection of their own (loose pickup), NEW.
   */
  replyLoose?: boolean;
  /**
   * With reply: not dropped but DNATed elsewhere (by `decided`), away from the connection's client: the replies (the UDP
   * reply, a TCP connection's replies after the first: replyLoose) of a connection whose own packets are not tracked.
   */
  replyDnat?: boolean;
  /** With `trace`: every rule that changed or decided the packet, in the order the kernel met them. */
  steps?: Step[];
  /** Dropped by Linux itself, not by a rule (`decided` is none): why (loopbackOut: route_localnet read from the kernel, off). */
  kernel?: string;
}

/**
 * A test of the packet's source address that a walk made (a rule's `-s`, `-m iprange
 * --src-range`, `-m addrtype --src-type LOCAL`), and its answer. Nothing else a walk looks at
 * depends on the source: a packet that differs only in its source, and gets the same answers
 * to every test the walk made, goes the same way to the same verdict (sameWay). The matrix
 * walks one packet per class of sources and reuses the verdict for the others.
 */
export interface SourceTest {
  kind: "cidr" | "range" | "local" | "set";
  value: string;
  hit: boolean;
  /** cidr and range: the addresses it holds, first to last (read once, when the walk made the test). */
  v6?: boolean;
  from?: bigint;
  to?: bigint;
  /** set (nftables: whether a reply's destination is one a long chain's rules are addressed to, NftRecord): its addresses, in order too. */
  members?: { has: Set<bigint>; sorted: bigint[] };
}

/** What a source test answers for this packet. */
function sourceAnswer(kind: SourceTest["kind"], value: string, p: Pick<Packet, "src" | "local">): boolean {
  return kind === "cidr" ? inCidr(p.src, value) : kind === "range" ? inRange(p.src, value) : p.local.includes(p.src);
}

/** Whether `p` answers every test of a walk as the walked packet did (then it goes the same way: same verdict). */
export function sameWay(tests: readonly SourceTest[], p: Pick<Packet, "src" | "local"> & { num?: Num }): boolean {
  let n = p.num;
  for (let i = 0; i < tests.length; i++) {
    const t = tests[i]!;
    let hit: boolean;
    if (t.kind === "local") hit = p.local.includes(p.src);
    else {
      n ??= numOf(p.src);
      hit = n.v6 === t.v6 && (t.kind === "set" ? t.members!.has.has(n.value) : t.from! <= n.value && n.value <= t.to!);
    }
    if (hit !== t.hit) return false;
  }
  return true;
}

/**
 * The highest address up to which every address from `p`'s source on answers each of a walk's
 * source tests as the source does (sameWay holds from it to there): the matrix walks its pieces
 * in ascending order, and a piece below that goes the walk's way without a lookup. The source
 * itself when a test asks whether it is the host's own (the host's addresses are single points).
 */
export function sameWayUntil(tests: readonly SourceTest[], p: { num: Num }): bigint {
  const n = p.num;
  let until = n.v6 ? (1n << 128n) - 1n : (1n << 32n) - 1n;
  for (let i = 0; i < tests.length; i++) {
    const t = tests[i]!;
    if (t.kind === "local") return n.value;
    if (t.v6 !== n.v6) continue;
    if (t.kind === "set") {
      // Up to the next of its addresses above the source (a member itself is noted as a range).
      const next = firstAbove(t.members!.sorted, n.value);
      if (next !== undefined && next - 1n < until) until = next - 1n;
      if (t.hit) return n.value;
    } else if (t.hit) {
      if (t.to! < until) until = t.to!;
    } else if (t.from! > n.value && t.from! - 1n < until) until = t.from! - 1n;
  }
  return until;
}

/** The first of these ascending numbers above `v`. */
function firstAbove(sorted: bigint[], v: bigint): bigint | undefined {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return sorted[lo];
}

/**
 * A test of the packet's source port that a walk made (a rule's `--sport`, multiport's `--sports`
 * or `--ports`; in the connection's reply, its destination port), and its answer. As for the
 * source address: a packet that differs only in its source port and answers every such test
 * alike goes the same way (sameSport). A neighbour picks its source port: the matrix walks one of
 * each class the rules tell apart (a review found `--sport 53 -j ACCEPT`, the classic hole for DNS
 * replies, unseen, every cell walked from port 40000).
 */
export interface PortTest {
  ports: PortList;
  hit: boolean;
}

/** Whether a packet from this source port answers every port test of a walk as the walked packet did. */
export function sameSport(tests: readonly PortTest[], port: number): boolean {
  for (let i = 0; i < tests.length; i++) if (tests[i]!.ports.has(port) !== tests[i]!.hit) return false;
  return true;
}

/**
 * Walks of one packet from each class of source ports in [lo, hi] that the walks' own port tests
 * tell apart: the first from `first`, each next one from the lowest port of a class that no walk
 * so far answers alike (every port of a class, cut at each end of each port range tested, answers
 * them as its lowest does). Stops early when `enough` says so of a walk; at `most` walks, undefined.
 */
export function eachSourcePort<T extends { sports: PortTest[] }>(first: number, lo: number, hi: number, walk: (port: number) => T, enough?: (t: T) => boolean, most = 256): { port: number; walked: T }[] | undefined {
  const done: { port: number; walked: T }[] = [];
  for (let port: number | undefined = first; port !== undefined; ) {
    if (done.length >= most) return undefined;
    const walked = walk(port);
    done.push({ port, walked });
    if (enough?.(walked)) break;
    // No test of the source port at all: every port goes the same way.
    if (done.length === 1 && walked.sports.length === 0) break;
    const at = new Set<number>([lo]);
    for (const d of done) for (const t of d.walked.sports) for (const [a, b] of t.ports.ranges) {
      if (a > lo && a <= hi) at.add(a);
      if (b + 1 > lo && b + 1 <= hi) at.add(b + 1);
    }
    port = [...at].sort((a, b) => a - b).find((c) => !done.some((d) => sameSport(d.walked.sports, c)));
  }
  return done;
}

/**
 * A test of the address the packet was first sent to (one of the host's: a `dnat` or `host`
 * cell), before any DNAT: a rule's `-d`, `iprange --dst-range`, `conntrack --ctorigdst`, and in
 * the reply (its source, where no DNAT changed it) `-s` and `--src-range`; or a long chain's
 * index by destination, which passes by the rules addressed to other single addresses. A packet
 * to another of the host's addresses that answers every such test alike goes the same way
 * (sameDestination): the matrix walks one per class of the host's addresses the walks tell apart.
 */
export type DestinationTest =
  | { kind: "range"; v6: boolean; from: bigint; to: bigint; hit: boolean }
  | { kind: "index"; by: Map<string, number[]>; key: string }
  /** One of these addresses (nftables: the host's own, `fib daddr type local`). */
  | { kind: "set"; v6: boolean; members: Set<bigint>; hit: boolean };

/** Whether a packet to this address (one of the host's) answers every destination test of a walk as the walked packet did. */
export function sameDestination(tests: readonly DestinationTest[], dst: Num, key = keyOf(dst)): boolean {
  for (let i = 0; i < tests.length; i++) {
    const t = tests[i]!;
    if (t.kind === "index") {
      if (key !== t.key && (t.by.has(key) || t.by.has(t.key))) return false;
    } else if (t.kind === "set") {
      if ((t.v6 === dst.v6 && t.members.has(dst.value)) !== t.hit) return false;
    } else if ((t.v6 === dst.v6 && t.from <= dst.value && dst.value <= t.to) !== t.hit) return false;
  }
  return true;
}

/** A test of the address the packet was first sent to, its answer noted when the walk keeps them. */
function destinationTest(ctx: Ctx, kind: "cidr" | "range", value: string, addr: string): boolean {
  const hit = kind === "cidr" ? inCidr(addr, value) : inRange(addr, value);
  if (ctx.destinations) {
    if (kind === "cidr") {
      const c = nets.get(value)!;
      ctx.destinations.push({ kind: "range", v6: c.v6, from: c.net, to: c.net | (((1n << BigInt(c.v6 ? 128 : 32)) - 1n) ^ c.mask), hit });
    } else {
      const r = ranges.get(value)!;
      ctx.destinations.push({ kind: "range", v6: r.v6, from: r.from, to: r.to, hit });
    }
  }
  return hit;
}

/** A source to hold against walks' tests (sameWay), its address read once. */
export function sourceOf(src: string, local: string[]): { src: string; local: string[]; num: Num } {
  return { src, local, num: numOf(src) };
}

/** A source test, its answer noted when the walk keeps them. */
function sourceTest(ctx: Ctx, kind: SourceTest["kind"], value: string): boolean {
  return noted(ctx, kind, value, sourceAnswer(kind, value, ctx.packet));
}

/** A reply's test of its destination (the source of the packet that opened the connection), noted as a source test. */
function originTest(ctx: Ctx, kind: SourceTest["kind"], value: string): boolean {
  const p = ctx.packet;
  // Before conntrack undoes a source NAT, the reply is addressed to the translated source, whatever the original was: not a test of it.
  if (ctx.reply?.snat === null) throw new Unknown("the address a masqueraded connection's replies come back to (the host's on the interface it left by) is not known");
  if (ctx.reply?.dstUnknown) throw new Unknown("the address the host's connection is sent from, which its replies come back to, is not known");
  // (The reply of the host's own connection goes to one of its addresses, or to loopback: LOCAL too. A fuzzer found 127.0.0.1 taken for not.)
  const hit = kind === "cidr" ? inCidr(p.dst, value) : kind === "range" ? inRange(p.dst, value) : ctx.reply?.orig.fromHost ? isLocal(p, p.dst) : p.local.includes(p.dst);
  return ctx.reply?.snat !== undefined ? hit : noted(ctx, kind, value, hit);
}

function noted(ctx: Ctx, kind: SourceTest["kind"], value: string, hit: boolean): boolean {
  if (ctx.sources) {
    if (kind === "cidr") {
      const c = nets.get(value)!; // read by inCidr just now
      const width = c.v6 ? 128 : 32;
      ctx.sources.push({ kind, value, hit, v6: c.v6, from: c.net, to: c.net | (((1n << BigInt(width)) - 1n) ^ c.mask) });
    } else if (kind === "range") {
      const r = ranges.get(value)!;
      ctx.sources.push({ kind, value, hit, v6: r.v6, from: r.from, to: r.to });
    } else ctx.sources.push({ kind, value, hit });
  }
  return hit;
}

class Unknown extends Error {
  /** A packet from outside to loopback (loopbackFromOutside): the kernel drops it, or delivers it to the host; never to a container. */
  martian?: boolean;
}

// Addresses, networks, ranges and port lists are parsed once and kept (a matrix walks the same
// rules for thousands of packets): the text of a rule or a packet is the key, its meaning the
// value. Bounded: past CACHE_MAX entries a cache starts again.
const CACHE_MAX = 100_000;
function cached<V>(cache: Map<string, V>, key: string, make: (k: string) => V): V {
  let v = cache.get(key);
  if (v === undefined) {
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(key, (v = make(key)));
  }
  return v;
}

/** An address as its family and number. */
export interface Num {
  v6: boolean;
  value: bigint;
}
const addrs = new Map<string, Num>();
export const numOf = (addr: string): Num =>
  cached(addrs, addr, (a) => {
    const q = fastIpv4(a);
    if (q !== undefined) return { v6: false, value: BigInt(q) };
    const ip = readIp(a);
    if (!ip) throw new Unknown(`the address ${a}`);
    return { v6: ip.family === 6, value: ip.value };
  });

/** A network as its family, its first address and its mask. */
const nets = new Map<string, { v6: boolean; net: bigint; mask: bigint }>();
function inCidr(addr: string, cidr: string): boolean {
  if (/\/.*[.:]/.test(cidr)) throw new Unknown(`the address mask ${cidr}`);
  const a = numOf(addr);
  const n = cached(nets, cidr, (c) => {
    const slash = c.indexOf("/");
    const ip = readIp(slash < 0 ? c : c.slice(0, slash));
    const width = ip ? bits(ip.family) : 0;
    const len = slash < 0 ? width : /^\d{1,3}$/.test(c.slice(slash + 1)) ? Number(c.slice(slash + 1)) : NaN;
    if (!ip || !(len <= width)) throw new Unknown(`the network ${c}`);
    const mask = ((1n << BigInt(width)) - 1n) ^ ((1n << BigInt(width - len)) - 1n);
    return { v6: ip.family === 6, net: ip.value & mask, mask };
  });
  if (a.v6 !== n.v6) return false;
  return (a.value & n.mask) === n.net;
}

/** `a-b` (iprange), both ends included. */
const ranges = new Map<string, { v6: boolean; from: bigint; to: bigint }>();
function inRange(addr: string, range: string): boolean {
  const r = cached(ranges, range, (x) => {
    const [from, to = from] = x.split("-");
    const a = numOf(from!);
    return { v6: a.v6, from: a.value, to: numOf(to).value };
  });
  const a = numOf(addr);
  if (a.v6 !== r.v6) return false;
  return r.from <= a.value && a.value <= r.to;
}

function ifaceMatches(pattern: string, iface: string | undefined): boolean {
  if (iface === undefined) return false;
  return pattern.endsWith("+") ? iface.startsWith(pattern.slice(0, -1)) : pattern === iface;
}

function neg<T>(n: Neg<T> | undefined, test: (v: T) => boolean): boolean {
  if (!n) return true;
  return test(n.value) !== Boolean(n.neg);
}

function portIs(ports: PortList, port: number | undefined): boolean {
  return port !== undefined && ports.has(port);
}

/** A test of the source port of the packet that opened the connection, its answer noted when the walk keeps them. */
function sportTest(ctx: Ctx, ports: PortList, port: number | undefined): boolean {
  const hit = portIs(ports, port);
  if (port !== undefined) ctx.sports?.push({ ports, hit });
  return hit;
}

const ICMP_TYPES: Record<4 | 6, Record<string, number>> = {
  4: { "echo-reply": 0, pong: 0, "destination-unreachable": 3, "echo-request": 8, ping: 8, "time-exceeded": 11, "parameter-problem": 12 },
  6: { "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4, "echo-request": 128, "echo-reply": 129, "router-solicitation": 133, "router-advertisement": 134, "neighbour-solicitation": 135, "neighbor-solicitation": 135, "neighbour-advertisement": 136, "neighbor-advertisement": 136 },
};

/** An --icmp-type / --icmpv6-type value (a number, TYPE/CODE, or a name) as a type; a code is not checked. */
function icmpTypeOf(value: string, family: 4 | 6): number | "any" | undefined {
  if (value === "any") return "any";
  const t = value.split("/")[0]!;
  if (/^\d+$/.test(t)) return value.includes("/") ? undefined : Number(t);
  return ICMP_TYPES[family][t];
}

/** Targets that do not decide a packet's fate: the walk goes on after them. */
const NON_TERMINAL = new Set(["MASQUERADE", "SNAT", "LOG", "NFLOG", "MARK", "CONNMARK", "TOS", "DSCP", "TCPMSS", "CHECKSUM", "TRACE", "AUDIT", "CLASSIFY"]);
/** Of those, the ones that may set the packet's mark: walked, so that a mark test after one that matched is unknown. */
const SETS_MARK = new Set(["MARK", "CONNMARK"]);

interface Ctx {
  packet: Packet;
  /** What the ruleset's ipsets hold, where known (Ruleset.ipsets). */
  ipsets?: Record<string, string[]>;
  /** raw PREROUTING said NOTRACK: conntrack state UNTRACKED, and no nat. */
  untracked?: boolean;
  /** The rule that said so. */
  untrackedBy?: Decision;
  /** Set once nat PREROUTING has DNAT'd the packet. */
  dnat?: { addr: string; port?: number };
  /** The interface a forwarded packet leaves by. */
  out?: string;
  steps?: Step[];
  /** A packet the host sent to itself, now on INPUT by lo. */
  inLo?: boolean;
  /** The table whose chain is walked now: raw runs before conntrack, which has not seen the packet yet. */
  table?: Table["name"];
  /** Every rule of a chain is tried, none passed by through the index (tests compare both ways). */
  noIndex?: boolean;
  /** The tests of the source the walk makes, noted (sameWay). */
  sources?: SourceTest[];
  /** The tests of the source port the walk makes, noted (sameSport). */
  sports?: PortTest[];
  /** The tests of the address the packet was first sent to, noted (sameDestination). */
  destinations?: DestinationTest[];
  /**
   * Walking the reply of a connection (`packet` is the reply): the packet that opened it, and its
   * DNAT. The reply's destination is the original's source: tests of it are noted as source tests.
   */
  reply?: {
    orig: Packet;
    dnat?: { addr: string; port?: number };
    snat?: string | null;
    /** Whether nat POSTROUTING translated the connection's source (conntrack's SNAT status), worked out when a rule asks; null where not known. */
    snatted?: () => boolean | null;
    /** The reply of the host's own connection from an address the walk does not know: a test of the reply's destination is unknown. */
    dstUnknown?: boolean;
    /** A DNATed connection's reply whose source nat has mapped back (the host's to itself, in again by lo): from the address first sent to. */
    srcRestored?: boolean;
  };
  /**
   * A forwarded connection's source as nat POSTROUTING rewrote it (MASQUERADE: the host's address on
   * the way out; SNAT --to-source), null where the address is not known: its replies come back to
   * it, and raw and mangle PREROUTING see them so (before conntrack undoes it).
   */
  snat?: string | null;
  /** snat worked out (connectionSnat): undefined there is no translation. */
  snatDone?: boolean;
  /**
   * Walking a later packet of a TCP connection from the side that opened it (`packet`, ESTABLISHED): the DNAT its connection
   * has, applied where nat's chain would run (nat's chains are not consulted again), and whether nat translated its source.
   */
  later?: { dnat?: { addr: string; port?: number }; snatted: () => boolean | null };
  /**
   * Walking a TCP connection's replies after the first where its own packets are not tracked: its ACK and its data
   * (`packet` NEW: conntrack picks them up as a connection of their own), or a FIN sent with its data (INVALID).
   */
  laterReply?: "data" | "fin";
  /** laterNat has looked at nat's chains for it. */
  natChecked?: boolean;
  /** A rule on the way that may have set the packet's mark (MARK, CONNMARK) matched it: a mark test is unknown then. */
  markSet?: boolean;
}

/**
 * conntrack's SNAT status: set once nat POSTROUTING translated the connection's source, so only a
 * reply or a later packet can have it here (the packet that opens a connection meets nat
 * POSTROUTING after every other chain but mangle POSTROUTING's, which runs before it).
 */
function snatStatus(ctx: Ctx): boolean {
  const s = ctx.reply?.snatted?.() ?? ctx.later?.snatted() ?? false;
  if (s === null) throw new Unknown("--ctstate SNAT: the address masquerade gives the connection (the host's on the interface it leaves by) is not known");
  return s;
}

/** The same address, however written. */
function sameAddress(a: string, b: string): boolean {
  const x = numOf(a);
  const y = numOf(b);
  return x.v6 === y.v6 && x.value === y.value;
}

/** Whether a test holds, turned by its `!`. */
const held = (n: { neg?: boolean }, hit: boolean): boolean => hit !== Boolean(n.neg);

function matchOne(m: Match, p: Packet, ctx: Ctx): boolean {
  switch (m.kind) {
    case "tcp":
    case "udp": {
      // (A reply's destination port is the source port of the packet that opened the connection.)
      if (m.dport && !held(m.dport, p.proto === m.kind && (ctx.reply ? sportTest(ctx, m.dport.value, p.dport) : portIs(m.dport.value, ctx.dnat?.port ?? p.dport)))) return false;
      if (m.sport && !held(m.sport, p.proto === m.kind && (ctx.reply ? portIs(m.sport.value, p.sport) : sportTest(ctx, m.sport.value, p.sport)))) return false;
      if (m.flags) {
        // MASK COMP: the packet's flags under MASK must be COMP. A new connection's first packet is a bare SYN.
        const [mask, comp] = m.flags.value.split(" ");
        let hit: boolean;
        if (p.proto !== "tcp") hit = false;
        else {
          // A new connection's first packet is a bare SYN; the first reply, a SYN-ACK.
          // A later packet from the opener: its ACK, then its data (PSH too); a test that tells them apart is unknown.
          // (The replies after the first of a connection whose own packets are not tracked: its data, or a FIN with it.)
          const has = ctx.laterReply === "fin" ? [["FIN", "ACK"], ["FIN", "ACK", "PSH"]] : ctx.later || ctx.laterReply ? [["ACK"], ["ACK", "PSH"]] : p.state === "NEW" ? [["SYN"]] : ctx.reply ? [["SYN", "ACK"]] : undefined;
          if (!has || mask === undefined || comp === undefined) throw new Unknown(`-m tcp --tcp-flags ${m.flags.value}`);
          const set = (v: string) => new Set(v === "ALL" ? ["FIN", "SYN", "RST", "PSH", "ACK", "URG"] : v === "NONE" ? [] : v.split(","));
          const want = [...set(comp)];
          const hits = has.map((flags) => {
            const under: string[] = flags.filter((f) => set(mask).has(f));
            return under.length === want.length && want.every((f) => under.includes(f));
          });
          if (hits.some((h) => h !== hits[0])) throw new Unknown(`-m tcp --tcp-flags ${m.flags.value}: a connection's ACK and its data answer it otherwise`);
          hit = hits[0]!;
        }
        if (!held(m.flags, hit)) return false;
      }
      return true;
    }
    case "multiport": {
      // --ports: either port. The source port of the packet that opened the connection: its reply's destination port.
      const dport = m.dir !== "sports" && (ctx.reply ? sportTest(ctx, m.ports.value, p.dport) : portIs(m.ports.value, ctx.dnat?.port ?? p.dport));
      const sport = m.dir !== "dports" && (ctx.reply ? portIs(m.ports.value, p.sport) : sportTest(ctx, m.ports.value, p.sport));
      return held(m.ports, dport || sport);
    }
    case "conntrack":
    case "state": {
      // No connection to read: the packet taken out of conntrack (UNTRACKED), or in the raw table, which runs before conntrack
      // has seen it (INVALID there, whatever the connection; a review proved both with packets), but for the host's packet to
      // itself back in by lo, which carries its entry; or INVALID, which has none (the SYN-ACK or echo reply of a connection
      // taken out of conntrack: a fuzzer found its --ctorigdst read from the connection). As xt_conntrack then: the state
      // test alone decides, and a rule without one does not match.
      const none = ctx.untracked || p.state === "INVALID" || (ctx.table === "raw" && !ctx.inLo);
      if (m.state) {
        const states = m.state.value;
        const hit = none
          ? states.has(ctx.untracked ? "UNTRACKED" : "INVALID")
          : states.has(p.state) || (states.has("DNAT") && (ctx.dnat ?? ctx.reply?.dnat) !== undefined) || (states.has("SNAT") && snatStatus(ctx));
        if (!held(m.state, hit)) return false;
      }
      if (m.kind === "state") return true;
      if (none) return m.state !== undefined;
      // The address and port the connection was first addressed to: before DNAT, or the only one. (A reply that is NEW began a
      // connection of its own, the UDP reply of one taken out of conntrack: its original direction is itself; a fuzzer.)
      const orig = (p.state !== "NEW" && ctx.reply?.orig) || p;
      if (m.origDst && !held(m.origDst, destinationTest(ctx, "cidr", m.origDst.value, orig.dst))) return false;
      if (m.origDstPort && !held(m.origDstPort, portIs(m.origDstPort.value, orig.dport))) return false;
      return true;
    }
    case "iprange":
      if (m.src) {
        if (p.srcUnknown) throw new Unknown(`-m iprange --src-range ${m.src.value}: the host's source address for this destination is not known`);
        if (!held(m.src, ctx.reply ? (ctx.reply.dnat && !ctx.reply.srcRestored ? inRange(p.src, m.src.value) : destinationTest(ctx, "range", m.src.value, p.src)) : sourceTest(ctx, "range", m.src.value))) return false;
      }
      return !m.dst || held(m.dst, ctx.reply ? originTest(ctx, "range", m.dst.value) : ctx.dnat ? inRange(ctx.dnat.addr, m.dst.value) : destinationTest(ctx, "range", m.dst.value, p.dst));
    case "addrtype":
      if (m.src) {
        if (m.src.value !== "LOCAL") throw new Unknown(`addrtype --src-type ${m.src.value}`);
        if (!held(m.src, p.fromHost === true || (ctx.reply ? isLocal(p, p.src) : sourceTest(ctx, "local", "")))) return false;
      }
      if (m.dst) {
        if (m.dst.value !== "LOCAL") throw new Unknown(`addrtype --dst-type ${m.dst.value}`);
        if (!held(m.dst, ctx.reply ? originTest(ctx, "local", "") : isLocal(p, ctx.dnat ? ctx.dnat.addr : p.dst))) return false;
      }
      return true;
    case "icmp":
    case "icmp6": {
      if (p.proto !== "icmp" || (m.kind === "icmp6") !== (p.family === 6)) return held(m.type, false);
      const want = icmpTypeOf(m.type.value, p.family);
      if (want === undefined || p.icmpType === undefined) throw new Unknown(`${m.kind} type ${m.type.value}`);
      return held(m.type, want === "any" || want === p.icmpType);
    }
    case "comment":
      return true;
    case "physdev":
      // Bridged (br_netfilter): in and out by ports of one bridge, never routed.
      return held(m.bridged, p.bridged === true);
    case "set": {
      // An ipset of networks or addresses whose members are known (Docker 28.0.0's of its bridges' subnets), matched on the
      // destination (the address after any DNAT, as -d): each member tried as a -d of its own. A source one would cut the
      // matrix's rows at addresses no rule names: unknown, as a set whose members are not known.
      const [name, flags, ...more] = m.set.value.split(" ");
      const members = name !== undefined ? ctx.ipsets?.[name] : undefined;
      if (!members || flags !== "dst" || more.length) throw new Unknown(`-m set --match-set ${m.set.value}${members ? "" : ": what the set holds is not known"}`);
      const dst = ctx.dnat ? ctx.dnat.addr : p.dst;
      const six = p.family === 6;
      const hit = members.some((v) => v.includes(":") === six && (ctx.reply ? originTest(ctx, "cidr", v) : ctx.dnat ? inCidr(dst, v) : destinationTest(ctx, "cidr", v, dst)));
      return held(m.set, hit);
    }
    case "other":
      if (m.module === "(repeated)") throw new Unknown(`${m.options.map((o) => `-m ${o.name}`).join(", ")} given twice in one rule`);
      // A packet's mark is 0 until a rule on its way sets one (kube-proxy's KUBE-FIREWALL drop looks for its own mark).
      if (m.module === "mark" && m.options.length === 1 && m.options[0]!.name === "mark" && !ctx.markSet) {
        const [value, mask = "0xffffffff"] = (m.options[0]!.value ?? "").split("/");
        const v = Number(value);
        const k = Number(mask);
        if (!Number.isInteger(v) || !Number.isInteger(k)) throw new Unknown(`-m mark --mark ${m.options[0]!.value}`);
        return held({ neg: m.options[0]!.neg }, (0 & k) === (v & k));
      }
      // The kernel's own reply (an echo reply) has no socket: an owner test holds only where every option is negated (xt_owner).
      if (m.module === "owner" && ctx.reply && p.fromHost && p.proto === "icmp") return m.options.every((o) => o.neg);
      // A module that tests the packet without options (-m socket, -m frag): not known.
      if (m.options.length === 0) throw new Unknown(`-m ${m.module}`);
      // Another tool's match: each option the evaluator knows is tried in turn (one that fails is enough), and the first it does not know is unknown.
      for (const o of m.options) {
        const one = typedMatch(m.module, [o]);
        if (one.kind === "other") throw new Unknown(`-m ${m.module} --${o.name}`);
        if (!matchOne(one, p, ctx)) return false;
      }
      return true;
  }
}

function matches(r: Rule, p: Packet, ctx: Ctx): boolean {
  const dst = ctx.dnat ? ctx.dnat.addr : p.dst;
  // Interfaces and protocol first: a rule for another interface is passed by without a test of the addresses (fewer noted, none unknown for nothing).
  if (!neg(r.in, (v) => ifaceMatches(v, p.fromHost && !ctx.inLo ? undefined : p.in))) return false;
  if (r.out && !neg(r.out, (v) => ifaceMatches(v, ctx.out))) return false;
  if (r.proto && r.proto !== "all") {
    const proto = p.proto === "icmp" ? (p.family === 4 ? "icmp" : "ipv6-icmp") : p.proto;
    if (r.proto !== proto && !(r.proto === "icmpv6" && proto === "ipv6-icmp")) return false;
  }
  if (r.src && p.srcUnknown) throw new Unknown(`-s ${r.src.neg ? "! " : ""}${r.src.value}: the host's source address for this destination is not known`);
  // (A reply's source is the address its connection was first sent to, where no DNAT changed it.)
  if (r.src && !neg(r.src, (v) => (ctx.reply ? (ctx.reply.dnat && !ctx.reply.srcRestored ? inCidr(p.src, v) : destinationTest(ctx, "cidr", v, p.src)) : sourceTest(ctx, "cidr", v)))) return false;
  if (!neg(r.dst, (v) => (ctx.reply ? originTest(ctx, "cidr", v) : ctx.dnat ? inCidr(dst, v) : destinationTest(ctx, "cidr", v, dst)))) return false;
  for (const m of r.matches) if (!matchOne(m, p, ctx)) return false;
  return true;
}

type Walk = { verdict: "ACCEPT" | "DROP" | "REJECT" | "RETURN" | "DNAT"; decided: Decision; to?: DnatTo };

/** A table's chains by name (a table is not changed once built). */
const chainMaps = new WeakMap<Table, Map<string, Chain>>();
function chainOf(table: Table, name: string): Chain | undefined {
  let m = chainMaps.get(table);
  if (!m || m.size !== table.chains.length) chainMaps.set(table, (m = new Map(table.chains.map((c) => [c.name, c]))));
  return m.get(name);
}

/**
 * A long chain's rules by the one address they are addressed to (`-d ADDR`, `-d ADDR/32`), or
 * else by the one port (`-p tcp -m tcp --dport N`, the match first): a packet to another
 * address or port meets none of them, so the walk passes them by (Docker writes one or more
 * per published port and container). Only rules that nothing before that test could make
 * "unknown" are indexed (not a source or destination given as an address mask); rules to
 * networks, to `!` an address, or with other matches first stay among the others.
 */
interface DstIndex {
  rules: Rule[];
  length: number;
  by: Map<string, number[]>;
  byPort: Map<string, number[]>;
  others: number[];
}
const INDEX_FROM = 16;
const indexes = new WeakMap<Chain, DstIndex>();
export const keyOf = (n: Num) => `${n.v6 ? 6 : 4}:${n.value}`;
function indexOf(chain: Chain): DstIndex {
  let x = indexes.get(chain);
  if (x && x.rules === chain.rules && x.length === chain.rules.length) return x;
  x = { rules: chain.rules, length: chain.rules.length, by: new Map(), byPort: new Map(), others: [] };
  const add = (m: Map<string, number[]>, k: string, i: number) => (m.get(k) ?? m.set(k, []).get(k)!).push(i);
  chain.rules.forEach((r, i) => {
    if (SETS_MARK.has(r.target)) return void x!.others.push(i);
    if (NON_TERMINAL.has(r.target)) return;
    const masked = (r.src && /\/.*[.:]/.test(r.src.value)) || (r.dst && /\/.*[.:]/.test(r.dst.value));
    const d = !masked && r.dst && !r.dst.neg ? hostOf(r.dst.value) : undefined;
    const first = r.matches[0];
    const single = !masked && first && (first.kind === "tcp" || first.kind === "udp") && first.dport && !first.dport.neg && !first.sport && !first.flags ? first.dport.value.single : undefined;
    const port = single !== undefined ? `${first!.kind}:${single}` : undefined;
    if (d !== undefined) add(x!.by, d, i);
    else if (port !== undefined) add(x!.byPort, port, i);
    else x!.others.push(i);
  });
  indexes.set(chain, x);
  return x;
}
/** The key of `-d` when it names one address, else undefined. */
function hostOf(v: string): string | undefined {
  const [a, len] = v.split("/");
  // keyOf(numOf(a)), without making the number (most rules of a long chain are IPv4).
  const q = fastIpv4(a!);
  if (q !== undefined) return len !== undefined && Number(len) !== 32 ? undefined : `4:${q}`;
  if (!readIp(a!)) return undefined;
  const n = numOf(a!);
  if (len !== undefined && Number(len) !== (n.v6 ? 128 : 32)) return undefined;
  return keyOf(n);
}

/** Chains walked once: a chain is indexed at its second walk (one packet, as explain walks it, costs less without). */
const walkedOnce = new WeakSet<Chain>();
function walkedBefore(chain: Chain): boolean {
  if (walkedOnce.has(chain)) return true;
  walkedOnce.add(chain);
  return false;
}

/** The indexes of the rules a packet to `dst` may match, in order. */
function* candidates(chain: Chain, p: Packet, ctx: Ctx): Generator<number> {
  const dst = ctx.dnat ? ctx.dnat.addr : p.dst;
  const port = ctx.dnat?.port ?? p.dport;
  if (chain.rules.length < INDEX_FROM || p.srcUnknown || ctx.noIndex || !walkedBefore(chain)) {
    for (let i = 0; i < chain.rules.length; i++) if (!NON_TERMINAL.has(chain.rules[i]!.target) || SETS_MARK.has(chain.rules[i]!.target)) yield i;
    return;
  }
  const x = indexOf(chain);
  const key = keyOf(numOf(dst));
  // Before DNAT the rules passed by are those addressed to another of the host's addresses (or anyone's): noted.
  if (!ctx.dnat && ctx.destinations) ctx.destinations.push({ kind: "index", by: x.by, key });
  const lists = [x.by.get(key) ?? NONE, (port === undefined ? undefined : x.byPort.get(`${p.proto}:${port}`)) ?? NONE, x.others];
  const at = [0, 0, 0];
  for (;;) {
    let k = -1;
    for (let j = 0; j < 3; j++) if (at[j]! < lists[j]!.length && (k < 0 || lists[j]![at[j]!]! < lists[k]![at[k]!]!)) k = j;
    if (k < 0) return;
    yield lists[k]![at[k]!++]!;
  }
}
const NONE: number[] = [];

function walk(table: Table, chainName: string, p: Packet, ctx: Ctx, depth = 0): Walk | undefined {
  if (depth > 32) throw new Unknown(`chains nested deeper than 32 (a loop?)`);
  const chain: Chain | undefined = chainOf(table, chainName);
  if (!chain) return undefined;
  ctx.table = table.name;
  // A rule that only notes or marks the packet decides nothing, whatever it matches: not among the candidates.
  for (const i of candidates(chain, p, ctx)) {
    const r = chain.rules[i]!;
    if (SETS_MARK.has(r.target)) {
      // It decides nothing; whether it set the mark (matched, or may have) is noted.
      if (!ctx.markSet) {
        try {
          if (matches(r, p, ctx)) ctx.markSet = true;
        } catch (e) {
          if (!(e instanceof Unknown)) throw e;
          ctx.markSet = true;
        }
      }
      continue;
    }
    if (!matches(r, p, ctx)) continue;
    const decided = { table: table.name, chain: chain.name, index: i, rule: r };
    const step = (action: Step["action"]) => ctx.steps?.push({ ...decided, action });
    switch (r.target) {
      case "ACCEPT":
      case "DROP":
      case "REJECT":
        step(r.target === "ACCEPT" ? "accept" : r.target === "DROP" ? "drop" : "reject");
        return { verdict: r.target, decided };
      case "RETURN":
        step("return");
        return { verdict: "RETURN", decided };
      case "DNAT":
        step("dnat");
        return { verdict: "DNAT", decided, to: dnatOf(r.targetOptions) };
      case "NOTRACK":
        step("notrack");
        ctx.untracked = true;
        ctx.untrackedBy ??= decided;
        continue;
      case "CT":
        // Only --notrack is understood: other CT options change what conntrack does next.
        if (r.targetOptions?.kind !== "notrack") throw new Unknown(`target CT${targetOptionsView(r.targetOptions)?.map((o) => ` --${o.name}`).join("") ?? ""}`);
        step("notrack");
        ctx.untracked = true;
        ctx.untrackedBy ??= decided;
        continue;
      default: {
        if (!chainOf(table, r.target)) throw new Unknown(`target ${r.target}`);
        step("jump");
        const sub = walk(table, r.target, p, ctx, depth + 1);
        if (sub && sub.verdict !== "RETURN") return sub;
      }
    }
  }
  return undefined;
}

function policyOf(table: Table | undefined, chain: string): "ACCEPT" | "DROP" {
  return (table && chainOf(table, chain)?.policy) ?? "ACCEPT";
}

/** A DNAT to the address and port the packet already has translates nothing: no DNAT status either (a fuzzer proved it with packets). */
function translated(to: { addr: string; port?: number }, p: Packet): { addr: string; port?: number } | undefined {
  return sameAddress(to.addr, p.dst) && (to.port === undefined || to.port === p.dport) ? undefined : to;
}

function parseDnat(to: DnatTo): { addr: string; port?: number } {
  // A range of addresses or ports, or no address: which one the kernel picks is not known here.
  const one = to.one;
  if (!one) throw new Unknown(`DNAT --to-destination ${to.text}`);
  return one;
}

/** A later packet of a connection: its DNAT, where nat's chain would have made it (one taken out of conntrack on the way is not translated: unknown). */
function carried(ctx: Ctx): void {
  if (!ctx.later) return;
  if (ctx.untracked) throw new Unknown("a later packet of the connection taken out of conntrack (NOTRACK) where its first was not: not translated, where it goes is not worked out");
  ctx.dnat = ctx.later.dnat;
}

/**
 * A packet the host sends: raw, mangle and nat OUTPUT (Docker DNATs the host's own connections
 * to published ports there), then filter OUTPUT decides; addressed to the host itself, it then
 * arrives on lo, through filter INPUT. It never crosses FORWARD.
 */
function fromHost(p: Packet, ctx: Ctx, table: (n: Table["name"]) => Table | undefined): Verdict {
  // OUTPUT's chains (raw, mangle, nat, filter: one hook) all see the interface of the route the packet was sent by: a DNAT in
  // nat OUTPUT reroutes it, but only POSTROUTING sees where to (a review traced it in the kernel; `-o` was read as no interface
  // before nat, and as the new one after).
  ctx.out = isLocal(p, p.dst) ? "lo" : routeOf(p, p.dst);
  for (const name of ["raw", "mangle"] as const) {
    const t = table(name);
    if (!t) continue;
    const w = walk(t, "OUTPUT", p, ctx);
    if (w && (w.verdict === "DROP" || w.verdict === "REJECT")) return { verdict: w.verdict, path: "output", decided: w.decided };
    if ((!w || w.verdict === "RETURN") && policyOf(t, "OUTPUT") === "DROP") return { verdict: "DROP", path: "output", decided: { table: name, chain: "OUTPUT", index: -1 } };
  }
  const nat = table("nat");
  if (nat && p.state === "NEW" && !ctx.untracked) {
    const w = walk(nat, "OUTPUT", p, ctx);
    if (w?.verdict === "DNAT" && w.to) ctx.dnat = translated(parseDnat(w.to), p);
  }
  carried(ctx);
  const to = ctx.dnat ? ctx.dnat.addr : p.dst;
  const local = isLocal(p, to);
  // Routed again after the DNAT (before filter OUTPUT): from 127.0.0.1 out of another interface than lo, only with route_localnet.
  const rerouted = ctx.dnat ? loopbackOut(p, local ? "lo" : routeOf(p, to)) : undefined;
  if (rerouted?.dropped) return { verdict: "DROP", path: "output", dnat: ctx.dnat, kernel: rerouted.why };
  if (rerouted) throw new Unknown(rerouted.why);
  const filter = table("filter");
  const w = filter ? walk(filter, "OUTPUT", p, ctx) : undefined;
  ctx.out = local ? "lo" : routeOf(p, to);
  if (w && w.verdict !== "RETURN" && w.verdict !== "DNAT" && w.verdict !== "ACCEPT") return { verdict: w.verdict, path: "output", dnat: ctx.dnat, decided: w.decided };
  const decided: Decision = w && w.verdict === "ACCEPT" ? w.decided : { table: "filter", chain: "OUTPUT", index: -1 };
  if (!(w && w.verdict === "ACCEPT") && policyOf(filter, "OUTPUT") === "DROP") return { verdict: "DROP", path: "output", dnat: ctx.dnat, decided };
  // Out (by lo too): mangle POSTROUTING can still drop it.
  const gate = (name: "raw" | "mangle", chain: string, pk: Packet, path: Verdict["path"]): Verdict | undefined => {
    const t = table(name);
    const w = t ? walk(t, chain, pk, ctx) : undefined;
    if (w && (w.verdict === "DROP" || w.verdict === "REJECT")) return { verdict: w.verdict, path, dnat: ctx.dnat, decided: w.decided };
    if (t && (!w || w.verdict === "RETURN") && policyOf(t, chain) === "DROP") return { verdict: "DROP", path, dnat: ctx.dnat, decided: { table: name, chain, index: -1 } };
    return undefined;
  };
  const out = gate("mangle", "POSTROUTING", p, "output");
  if (out) return out;
  if (!local) {
    const v: Verdict = { verdict: "ACCEPT", path: "output", dnat: ctx.dnat, decided };
    const left = loopbackLeaves(p, ctx.out, () => connectionSnat(p, v, ctx, table));
    if (left?.dropped) return { verdict: "DROP", path: "output", dnat: ctx.dnat, kernel: left.why };
    if (left) throw new Unknown(left.why);
    return v;
  }
  // To the host itself: in again by lo, its conntrack entry with it, through raw and mangle PREROUTING (nat's was decided in
  // OUTPUT), mangle and filter INPUT (a review found drops in each unseen).
  ctx.inLo = true;
  const lo = { ...p, in: "lo" };
  const dropped = gate("raw", "PREROUTING", lo, "input") ?? gate("mangle", "PREROUTING", lo, "input") ?? gate("mangle", "INPUT", lo, "input");
  if (dropped) return dropped;
  const iw = filter ? walk(filter, "INPUT", lo, ctx) : undefined;
  if (iw && iw.verdict !== "RETURN" && iw.verdict !== "DNAT") return { verdict: iw.verdict, path: "input", dnat: ctx.dnat, decided: iw.decided };
  return { verdict: policyOf(filter, "INPUT"), path: "input", dnat: ctx.dnat, decided: { table: "filter", chain: "INPUT", index: -1 } };
}

/**
 * The connection's first reply, walked back the way the kernel takes it (a review found a drop of
 * the replies unseen: `-i docker0 -o eth1 -j DROP` in DOCKER-USER, `--sport 22 -j DROP` in OUTPUT):
 * forwarded, through raw and mangle PREROUTING, mangle and filter FORWARD and mangle POSTROUTING;
 * the host's own, through raw, mangle and filter OUTPUT and mangle POSTROUTING. Replies are
 * ESTABLISHED (nat is not consulted again). A drop there is the connection's verdict; anything
 * the walk cannot tell, unknown. An ICMP message other than an echo request has no reply walked.
 */
/**
 * The first reply of the connection `p` opens, as it comes back (withReply here, withReplyNft in
 * nfteval.ts): forwarded, in by the interface the packet left by (`out`); to the host, from the
 * host itself. `inbound`: the reply of a connection the host opened to another machine, in by
 * `out` too (nfteval.ts withHostReplyNft). Undefined where none is walked: an ICMP message other
 * than an echo request, or a packet whose way out is not known.
 */
export function replyOf(p: Packet, v: { path: string; dnat?: { addr: string; port?: number } }, out: string | undefined, untracked: boolean, inbound = v.path === "forward"): Packet | undefined {
  const echo = p.proto === "icmp" ? (p.icmpType === 8 ? 0 : p.icmpType === 128 ? 129 : undefined) : undefined;
  if (p.proto === "icmp" && echo === undefined) return undefined;
  if (inbound && !out) return undefined;
  return {
    family: p.family,
    in: inbound ? out! : "lo",
    src: v.dnat?.addr ?? p.dst,
    dst: p.src,
    proto: p.proto,
    sport: v.dnat?.port ?? p.dport,
    dport: p.sport,
    icmpType: echo,
    // No conntrack entry for an untracked connection (NOTRACK): its reply starts one, a UDP one as NEW, a SYN-ACK or
    // an echo reply as INVALID (a review found such a reply taken for ESTABLISHED).
    state: !untracked ? "ESTABLISHED" : p.proto === "udp" ? "NEW" : "INVALID",
    local: p.local,
    routes: p.routes,
    ...(inbound ? {} : { fromHost: true }),
  };
}

function withReply(p: Packet, v: Verdict, ctx: Ctx, table: (n: Table["name"]) => Table | undefined): Verdict {
  // The host's own connection to another machine (a container, a neighbour): its reply comes in by the interface it left by,
  // through PREROUTING and INPUT (as withReplyNft walks it). To the host itself: the host sends the reply (OUTPUT and
  // POSTROUTING), and takes it in again by lo (PREROUTING and INPUT; a review found a drop of it in OUTPUT unseen).
  const host = Boolean(p.fromHost);
  if (host && !ctx.out) return v;
  const looped = host && ctx.out === "lo";
  const r = replyOf(p, v, ctx.out, Boolean(ctx.untracked), v.path === "forward" || (host && !looped));
  if (!r) return v;
  const forward = v.path === "forward";
  const snatted = () => connectionSnat(p, v, ctx, table);
  const reply: NonNullable<Ctx["reply"]> = {
    orig: p,
    dnat: ctx.dnat,
    snatted: () => snatBit(connectionSnat(p, v, ctx, table)),
    // The host's own connection from an address the walk does not know (to a neighbour): its reply is addressed to it.
    ...(host && p.srcUnknown ? { dstUnknown: true } : {}),
  };
  // (A reply to the host's own connection tests the host's address, not a row's source: not noted as one.)
  const rctx: Ctx = { packet: r, ipsets: ctx.ipsets, noIndex: true, sources: host ? undefined : ctx.sources, sports: ctx.sports, destinations: ctx.destinations, out: looped ? "lo" : host ? undefined : p.in, reply };
  // A masqueraded (SNATed) connection's reply is addressed to the translated source until nat PREROUTING undoes it: so raw and mangle PREROUTING see it.
  // (Worked out only where raw or mangle PREROUTING test a packet's destination at all.)
  // (A rule of nat POSTROUTING the walk cannot read makes the reply's answer unknown, not an error: a fuzzer.)
  try {
    if ((forward || host) && (["raw", "mangle"] as const).some((n) => testsDestination(table(n), "PREROUTING"))) snatted();
  } catch (e) {
    if (e instanceof Unknown) return { verdict: "unknown", path: v.path, dnat: v.dnat, why: `its reply: ${e.message}` };
    throw e;
  }
  const translated = ctx.snatDone === true && ctx.snat !== undefined;
  const before: Ctx = translated ? { ...rctx, packet: { ...r, dst: ctx.snat ?? r.dst }, reply: { ...reply, snat: ctx.snat } } : rctx;
  const gate = (name: Table["name"], chain: string): { verdict: "DROP" | "REJECT"; decided: Decision } | undefined => {
    const t = table(name);
    if (!t) return undefined;
    const c = chain === "PREROUTING" ? before : rctx;
    const w = walk(t, chain, c.packet, c);
    if (w && (w.verdict === "DROP" || w.verdict === "REJECT")) return { verdict: w.verdict, decided: w.decided };
    if (w && w.verdict === "ACCEPT") return undefined;
    return policyOf(t, chain) === "DROP" ? { verdict: "DROP", decided: { table: name, chain, index: -1 } } : undefined;
  };
  const inward: [Table["name"], string][] = [["raw", "PREROUTING"], ["mangle", "PREROUTING"], ["mangle", "INPUT"], ["filter", "INPUT"]];
  const outward: [Table["name"], string][] = [["raw", "OUTPUT"], ["mangle", "OUTPUT"], ["filter", "OUTPUT"], ["mangle", "POSTROUTING"]];
  const way: [Table["name"], string][] = forward
    ? [["raw", "PREROUTING"], ["mangle", "PREROUTING"], ["mangle", "FORWARD"], ["filter", "FORWARD"], ["mangle", "POSTROUTING"]]
    : looped
      ? [...outward, ...inward]
      : host
        ? inward
        : outward;
  try {
    for (const [name, chain] of way) {
      // (The looped reply, in again by lo, its conntrack entry with it. A DNATed connection's: nat POSTROUTING has mapped its
      // source back to the address the connection was sent to, which PREROUTING and INPUT see (a fuzzer, proven by hand).)
      if (looped && chain === "PREROUTING" && !before.inLo) {
        before.inLo = rctx.inLo = true;
        if (v.dnat) {
          const back: Packet = { ...r, src: p.dst, sport: p.dport };
          for (const c of [rctx, before]) {
            c.packet = back;
            if (c.reply) c.reply = { ...c.reply, srcRestored: true };
          }
        }
      }
      // The UDP reply of a connection whose own packets are not tracked begins a connection of its own (NEW): nat's chains run
      // for it (laterNat), and a DNAT elsewhere takes it away from the client.
      if (ctx.untracked && p.proto === "udp" && (name === "filter" || (name === "mangle" && chain !== "PREROUTING" && chain !== "OUTPUT"))) {
        const taken = laterNat(rctx, chain, table("nat"), looped);
        if (taken) return { verdict: "DROP", path: v.path, dnat: v.dnat, decided: taken, reply: true, replyDnat: true, ...(v.steps ? { steps: v.steps } : {}) };
      }
      const d = gate(name, chain);
      if (d) return { verdict: d.verdict, path: v.path, dnat: v.dnat, decided: d.decided, reply: true, ...(v.steps ? { steps: v.steps } : {}) };
    }
    // A reply taken out of conntrack (NOTRACK in raw; a review proved it with packets) is not translated back: a DNATed
    // connection's leaves from the container's own address and port, a masqueraded one's stays addressed to the host. The
    // client takes it for no connection of its own.
    // (PREROUTING's chains walk `before`, a copy where a masqueraded reply is addressed to the translated source: a NOTRACK
    // there is noted on it.)
    const notrack = before.untrackedBy ?? rctx.untrackedBy;
    if (notrack && !ctx.untracked) {
      if (v.dnat !== undefined || snatted() !== undefined) return { verdict: "DROP", path: v.path, dnat: v.dnat, decided: notrack, reply: true, untracked: true, ...(v.steps ? { steps: v.steps } : {}) };
    }
    // A TCP connection whose own packets are not tracked: its SYN-ACK had no entry (INVALID), and the replies after it (the
    // server's ACK, its data) are taken by conntrack for a connection of their own (nf_conntrack_tcp_loose, on by default),
    // NEW each time, as no packet of the other way is seen (a fuzzer's helper proved a FORWARD that accepts INVALID but not
    // NEW ones closing it). Walked the same way; unless raw takes them out of conntrack too, nat's chains would run for them.
    if (ctx.untracked && p.proto === "tcp") return withLooseReplies(v, r, rctx, way, looped, table);
  } catch (e) {
    if (e instanceof Unknown) return { verdict: "unknown", path: v.path, dnat: v.dnat, why: `its reply: ${e.message}` };
    throw e;
  }
  return v;
}

/**
 * A TCP connection whose own packets are not tracked: its SYN-ACK had no entry (INVALID), and the replies after it (the
 * server's ACK, its data) are taken by conntrack for a connection of their own (nf_conntrack_tcp_loose, on by default),
 * NEW each time, as no packet of the other way is seen (a fuzzer's helper proved a FORWARD that accepts INVALID but not
 * NEW ones closing it). Walked the way the first went (withReply's `way`); unless raw takes them out of conntrack too,
 * nat's chains run for them. Where they do not get through, a FIN the server sends its data with (a server that ends the
 * connection as it answers, or a retransmission the kernel merged with its FIN) is INVALID to conntrack (a FIN begins no
 * connection): where that gets through, whether the client gets the data depends on the server, proven with packets on
 * nftables: unknown, saying so.
 */
function withLooseReplies(v: Verdict, r: Packet, rctx: Ctx, way: [Table["name"], string][], looped: boolean, table: (n: Table["name"]) => Table | undefined): Verdict {
  const why = "its replies after the first (a new connection to conntrack: the connection's own packets are not tracked)";
  const variant = (kind: "data" | "fin"): { verdict: "DROP" | "REJECT"; decided: Decision; dnat?: true } | undefined => {
    const lr: Packet = { ...r, state: kind === "data" ? "NEW" : "INVALID" };
    const lctx: Ctx = { ...rctx, packet: lr, laterReply: kind, untracked: undefined, untrackedBy: undefined, markSet: undefined, inLo: undefined };
    for (const [name, chain] of way) {
      if (looped && chain === "PREROUTING") lctx.inLo = true;
      const taken = kind === "data" && (name === "filter" || (name === "mangle" && chain !== "PREROUTING" && chain !== "OUTPUT")) ? laterNat(lctx, chain, table("nat"), looped) : undefined;
      if (taken) return { verdict: "DROP", decided: taken, dnat: true };
      const t = table(name);
      if (!t) continue;
      const w = walk(t, chain, lr, lctx);
      if (w && (w.verdict === "DROP" || w.verdict === "REJECT")) return { verdict: w.verdict, decided: w.decided };
      if ((!w || w.verdict === "RETURN") && policyOf(t, chain) === "DROP") return { verdict: "DROP", decided: { table: name, chain, index: -1 } };
    }
    return undefined;
  };
  try {
    const data = variant("data");
    if (!data) return v;
    if (!variant("fin")) {
      const how = data.dnat ? `DNATed elsewhere by nat ${data.decided.chain} #${data.decided.index + 1}` : `dropped by ${data.decided.table} ${data.decided.chain} ${data.decided.index < 0 ? "(its policy)" : `#${data.decided.index + 1}`}`;
      return { verdict: "unknown", path: v.path, dnat: v.dnat, why: `${why}: the server's data is ${how}, but a FIN sent with it (INVALID to conntrack) gets through: whether the client gets an answer depends on the server` };
    }
    return { verdict: data.verdict, path: v.path, dnat: v.dnat, decided: data.decided, reply: true, replyLoose: true, ...(data.dnat ? { replyDnat: true } : {}), ...(v.steps ? { steps: v.steps } : {}) };
  } catch (e) {
    if (e instanceof Unknown) return { verdict: "unknown", path: v.path, dnat: v.dnat, why: `${why}: ${e.message}` };
    throw e;
  }
}

/**
 * The replies after the first of a connection whose own packets are not tracked (withReply), or its UDP reply: a new connection to conntrack,
 * for which nat's chains run before the filter chain of its way, and the mangle chains after it (once, at the first of
 * them). A DNAT of them elsewhere takes them from the client: no connection (the rule that does it). A source nat is not
 * worked out: unknown. Not for ones raw took out of conntrack too.
 */
function laterNat(lctx: Ctx, chain: string, nat: Table | undefined, looped: boolean): Decision | undefined {
  if (!nat || lctx.untracked || lctx.natChecked) return undefined;
  lctx.natChecked = true;
  const lr = lctx.packet;
  const chains = chain === "FORWARD" ? ["PREROUTING", "POSTROUTING"] : chain === "INPUT" ? (looped ? [] : ["PREROUTING", "INPUT"]) : ["OUTPUT", "POSTROUTING"];
  for (const c of chains) {
    if (c === "PREROUTING" || c === "OUTPUT") {
      const w = walk(nat, c, lr, lctx);
      if (w?.verdict === "DNAT" && w.to && translated(parseDnat(w.to), lr)) return w.decided;
    } else if (snatOf(nat, lr, lctx, c) !== undefined) throw new Unknown(`nat ${c} translates their source, which is not worked out`);
  }
  return undefined;
}

/**
 * The source nat POSTROUTING gives the connection `p` opened (undefined where none, or where it is
 * the one it had: the kernel then translates nothing, and conntrack's SNAT status is not set; a
 * review proved it with a NOTRACK of the reply); null where the address is not known. Worked out
 * once per walk.
 */
function connectionSnat(p: Packet, v: Verdict, ctx: Ctx, table: (n: Table["name"]) => Table | undefined): string | null | undefined {
  if (ctx.snatDone) return ctx.snat;
  ctx.snatDone = true;
  const nat = table("nat");
  const to = (v.path === "forward" || p.fromHost) && nat && p.state === "NEW" && !ctx.untracked ? snatOf(nat, p, ctx) : undefined;
  ctx.snat = to && !p.srcUnknown && sameAddress(to, p.src) ? undefined : to;
  return ctx.snat;
}

/** conntrack's SNAT status for a connection's source nat: null where it masqueraded to an address not known (which may be the one it had). */
const snatBit = (to: string | null | undefined): boolean | null => (to === null ? null : to !== undefined);

/**
 * A TCP connection's later packets from the side that opened it (its ACK, its data), walked as the
 * kernel takes them once the reply got back (two fuzzers found a connection the kernel never
 * opened, its first packet let in by a rule for NEW ones alone): ESTABLISHED, through the same
 * chains, nat's not consulted but its mapping applied where they would run. A drop there is the
 * connection's verdict.
 */
function withLater(rs: Ruleset, p: Packet, v: Verdict, ctx: Ctx, table: (n: Table["name"]) => Table | undefined): Verdict {
  const q: Packet = { ...p, state: "ESTABLISHED" };
  const lctx: Ctx = { packet: q, ipsets: ctx.ipsets, noIndex: true, sources: ctx.sources, sports: ctx.sports, destinations: ctx.destinations, later: { dnat: ctx.dnat, snatted: () => snatBit(connectionSnat(p, v, ctx, table)) } };
  const w = decide(rs, q, lctx, table);
  if (w.verdict === "unknown") return { verdict: "unknown", path: v.path, dnat: v.dnat, why: `its later packets: ${w.why}` };
  if (w.verdict === "DROP" || w.verdict === "REJECT") return { verdict: w.verdict, path: v.path, dnat: v.dnat, decided: w.decided, later: true, ...(v.steps ? { steps: v.steps } : {}) };
  return v;
}

/** Whether a chain (or one it jumps to) tests a packet's destination address: -d, or a match module that may. */
const destTests = new WeakMap<Table, Map<string, boolean>>();
function testsDestination(t: Table | undefined, chainName: string): boolean {
  if (!t) return false;
  let m = destTests.get(t);
  if (!m) destTests.set(t, (m = new Map()));
  const known = m.get(chainName);
  if (known !== undefined) return known;
  m.set(chainName, false);
  const chain = chainOf(t, chainName);
  const yes = (chain?.rules ?? []).some((r) => r.dst !== undefined || r.matches.some((x) => x.kind !== "tcp" && x.kind !== "udp" && x.kind !== "comment" && x.kind !== "multiport") || (chainOf(t, r.target) !== undefined && testsDestination(t, r.target)));
  m.set(chainName, yes);
  return yes;
}

/**
 * The source nat POSTROUTING gives a new forwarded connection: the first rule that matches of
 * MASQUERADE (the host's address on the interface it leaves by), SNAT (its --to-source, when one
 * address), ACCEPT or RETURN from the chain itself (none); undefined where none, null where the
 * address is not known (tests of it are then unknown).
 */
function snatOf(nat: Table, p: Packet, ctx: Ctx, chainName = "POSTROUTING", depth = 0): string | null | undefined {
  if (depth > 32) throw new Unknown("chains nested deeper than 32 (a loop?)");
  const chain = chainOf(nat, chainName);
  const dst = ctx.dnat ? ctx.dnat.addr : p.dst;
  ctx.table = "nat";
  for (const r of chain?.rules ?? []) {
    if (r.target !== "MASQUERADE" && r.target !== "SNAT" && r.target !== "ACCEPT" && r.target !== "RETURN" && !chainOf(nat, r.target)) continue;
    // A rule for another destination first (Docker's hairpin MASQUERADE, one per published port): passed by, its source not looked at.
    if (r.dst && inCidr(dst, r.dst.value) === Boolean(r.dst.neg)) continue;
    if (!matches(r, p, ctx)) continue;
    if (r.target === "ACCEPT") return undefined;
    if (r.target === "RETURN") return depth === 0 ? undefined : "return";
    // (Of the packet's family: a review found an IPv6 connection's replies taken for addressed to the bridge's IPv4 address.)
    if (r.target === "MASQUERADE") return p.local.find((l) => l.includes(":") === (p.family === 6) && !inCidr(l, p.family === 4 ? "127.0.0.0/8" : "::1/128") && routeOf(p, l) === ctx.out && ctx.out !== undefined) ?? null;
    if (r.target === "SNAT") {
      // Its one address, whatever its ports; a range of addresses: which one is not known.
      return readNatTo(targetOptionsView(r.targetOptions)?.find((o) => o.name === "to-source")?.value ?? "")?.addr ?? null;
    }
    const sub = snatOf(nat, p, ctx, r.target, depth + 1);
    if (sub !== "return") return sub;
  }
  return depth === 0 ? undefined : "return";
}

/**
 * A packet from outside to a loopback address (a neighbour that routes 127.0.0.1 or ::1 via the
 * host): not the host's to take. Linux drops ::1 from any interface but lo before any rule, and
 * 127.0.0.0/8 at the routing decision after the nat table (a DNAT to a container, Docker's for a
 * published port, goes on) unless route_localnet is on for the interface, which dockwall does not
 * read: unknown, saying why (a review: explain said the host took them).
 */
export function loopbackFromOutside(p: Packet, to: string): void {
  if (p.fromHost || p.in === "lo" || !inCidr(to, p.family === 4 ? "127.0.0.0/8" : "::1/128")) return;
  throw Object.assign(new Unknown(martianWhy(p, to)), { martian: true });
}

/**
 * The host's packet from 127.0.0.0/8 routed again after a DNAT, out of `out`, not lo: Linux routes it only where
 * route_localnet is on for that interface (or for all), and drops it at once otherwise, before filter OUTPUT (a fuzzer;
 * proven with packets: a connection to 127.0.0.1 DNATed to a neighbour hangs with it off). Where it is read from the
 * kernel and off, dropped (by Linux, no rule); where not known, unknown; why either way (both evaluators say it alike).
 * Undefined where it goes on.
 */
export function loopbackOut(p: Packet, out: string | undefined): { why: string; dropped: boolean } | undefined {
  if (!p.fromHost || p.family !== 4 || !out || out === "lo" || p.srcUnknown || !/^127\./.test(p.src) || p.localnet?.on.includes(out)) return undefined;
  // Read from the kernel and off: Linux drops it (a verdict, with no rule that decided it).
  if (p.localnet?.read) return { why: `Linux does not route a packet from ${p.src} out of ${out} (where a DNAT sends it): route_localnet is off for ${out} (read from the kernel)`, dropped: true };
  return {
    why: `the host sends it from ${p.src}, and a DNAT routes it out of ${out}: Linux routes it there only if route_localnet is on for ${out}, ${p.localnet === undefined ? "which dockwall does not read" : "which dockerd turns on only for its bridges with userland-proxy off"}`,
    dropped: false,
  };
}

/**
 * The host's packet from loopback (127.0.0.0/8, ::1) that leaves by `out`, not lo. With no source nat (nat POSTROUTING,
 * nftables' postrouting), the machine that gets it takes it for a martian (Linux drops a packet from loopback that comes
 * in by another interface than lo): unknown. IPv6 with one: its replies, mapped back to ::1 as they come in by `out`, are
 * dropped by Linux itself (::1 is lo's alone; IPv6 has no route_localnet): no connection. Proven with packets, a
 * connection to 127.0.0.1 or ::1 DNATed to a neighbour (localnet-kernel.test.ts). Undefined where it goes on.
 */
export function loopbackLeaves(p: Packet, out: string | undefined, snat: () => unknown): { why: string; dropped: boolean } | undefined {
  // (A connection's later packets go as its first did: nat's mapping, not its chains. The source nat is worked out last,
  // for such a packet alone: reading nat POSTROUTING can be unknown.)
  if (!p.fromHost || p.state !== "NEW" || !out || out === "lo" || p.srcUnknown || !(p.family === 4 ? /^127\./.test(p.src) : p.src === "::1")) return undefined;
  if (snat() === undefined) return { why: `it leaves ${out} from ${p.src} (no source nat of it): what gets it drops it, as Linux drops a packet from ${p.family === 4 ? "127.0.0.0/8" : "::1"} that comes in by another interface than lo`, dropped: false };
  if (p.family === 6) return { why: `its replies come back by ${out}, to ::1 once nat maps them back: Linux takes a packet to ::1 by lo alone, and drops them`, dropped: true };
  return undefined;
}

/**
 * Packet.localnet: read from the kernel (`read`: the interfaces route_localnet is on for), else what dockerd sets for the
 * policy (its bridges with userland-proxy off, whatever `iptables` says: docker-layouts README), else not known.
 */
export function localnetOf(p: Policy | undefined, read: string[] | undefined): Packet["localnet"] {
  if (read) return { on: read, read: true };
  if (!p) return undefined;
  return { on: p.docker.userlandProxy ? [] : p.networks.map((n) => n.bridge.value), read: false };
}

/** Why a packet from outside to loopback is not known (both evaluators say it alike). */
export function martianWhy(p: Packet, to: string): string {
  return p.family === 6
    ? `a packet from ${p.in} to ${to}: Linux drops it before any rule (::1 is the loopback interface's alone)`
    : `a packet from ${p.in} to ${to}, not DNATed: Linux drops it at the routing decision unless route_localnet is on for ${p.in}, which dockwall does not read`;
}

/** Addressed to the host itself: one of its addresses, or loopback. */
function isLocal(p: Packet, addr: string): boolean {
  const a = numOf(addr);
  return p.local.some((l) => {
    const n = numOf(l);
    return n.v6 === a.v6 && n.value === a.value;
  }) || inCidr(addr, p.family === 4 ? "127.0.0.0/8" : "::1/128");
}

/** The interface of the longest route that holds `addr`. */
function routeOf(p: Packet, addr: string): string | undefined {
  let best: { dev: string; len: number } | undefined;
  for (const r of p.routes ?? []) {
    if (!inCidr(addr, r.dst)) continue;
    const len = r.dst.includes("/") ? Number(r.dst.split("/")[1]) : 128;
    if (!best || len > best.len) best = { dev: r.dev, len };
  }
  return best?.dev;
}

/** What happens to a packet that arrives at the host, as the kernel would decide it with these rules. */
export function evaluate(rs: Ruleset, p: Packet, opts: { trace?: boolean; noIndex?: boolean; sources?: SourceTest[]; sports?: PortTest[]; destinations?: DestinationTest[]; replies?: boolean } = {}): Verdict {
  const table = (n: Table["name"]) => rs.tables.find((t) => t.name === n);
  const ctx: Ctx = { packet: p, ...(rs.ipsets ? { ipsets: rs.ipsets } : {}), steps: opts.trace ? [] : undefined, noIndex: opts.noIndex, sources: opts.sources, sports: opts.sports, destinations: opts.destinations };
  let v = decide(rs, p, ctx, table);
  if (opts.replies && v.verdict === "ACCEPT" && p.state === "NEW") v = withReply(p, v, ctx, table);
  if (opts.replies && v.verdict === "ACCEPT" && p.state === "NEW" && p.proto === "tcp" && !ctx.untracked) v = withLater(rs, p, v, ctx, table);
  if (ctx.steps) {
    // Off the end of a built-in chain: its policy decided.
    if (v.decided?.index === -1 && !v.reply) ctx.steps.push({ ...v.decided, action: "policy" });
    v.steps = ctx.steps;
  }
  return v;
}

function decide(rs: Ruleset, p: Packet, ctx: Ctx, table: (n: Table["name"]) => Table | undefined): Verdict {
  // raw and mangle decide only by dropping (Docker 28+ drops direct access in raw PREROUTING).
  const early = (name: "raw" | "mangle", chain: string, path: Verdict["path"]): Verdict | undefined => {
    const t = table(name);
    if (!t) return undefined;
    const w = walk(t, chain, p, ctx);
    if (w && (w.verdict === "DROP" || w.verdict === "REJECT")) return { verdict: w.verdict, path, dnat: ctx.dnat, decided: w.decided };
    // Off the end of the chain, or a RETURN in the built-in chain itself: its policy decides.
    if ((!w || w.verdict === "RETURN") && policyOf(t, chain) === "DROP") return { verdict: "DROP", path, dnat: ctx.dnat, decided: { table: name, chain, index: -1 } };
    return undefined;
  };
  try {
    if (rs.unwalked?.length) throw new Unknown(`${rs.unwalked.join(", ")}, which dockwall does not walk`);
    if (p.fromHost) return fromHost(p, ctx, table);
    if (p.family === 6) loopbackFromOutside(p, p.dst);
    const first = isLocal(p, p.dst) ? "input" : "forward";
    const dropped = early("raw", "PREROUTING", first) ?? early("mangle", "PREROUTING", first);
    if (dropped) return dropped;
    const nat = table("nat");
    if (nat && p.state === "NEW" && !ctx.untracked) {
      const w = walk(nat, "PREROUTING", p, ctx);
      if (w?.verdict === "DNAT" && w.to) ctx.dnat = translated(parseDnat(w.to), p);
    }
    carried(ctx);
    const filter = table("filter");
    // Addressed to the host (after DNAT, if any): INPUT; to anyone else: routed, FORWARD.
    const to = ctx.dnat ? ctx.dnat.addr : p.dst;
    loopbackFromOutside(p, to);
    const path = isLocal(p, to) ? "input" : "forward";
    if (path === "forward") ctx.out = routeOf(p, to);
    const chain = path === "forward" ? "FORWARD" : "INPUT";
    const mangled = early("mangle", chain, path);
    if (mangled) return mangled;
    const w = filter ? walk(filter, chain, p, ctx) : undefined;
    const v: Verdict = w && w.verdict !== "RETURN" && w.verdict !== "DNAT" ? { verdict: w.verdict, path, dnat: ctx.dnat, decided: w.decided } : { verdict: policyOf(filter, chain), path, dnat: ctx.dnat, decided: { table: "filter", chain, index: -1 } };
    // Routed on: mangle POSTROUTING can still drop it (a review found such a drop unseen).
    if (v.verdict === "ACCEPT" && path === "forward") return early("mangle", "POSTROUTING", path) ?? v;
    return v;
  } catch (e) {
    if (e instanceof Unknown) return { verdict: "unknown", path: "input", dnat: ctx.dnat, why: e.message, ...(e.martian ? { martian: true } : {}) };
    throw e;
  }
}
