// `dockwall matrix` and `dockwall verify` (../shared/spec/analysis.md): who reaches what. Rows
// are the classes of sources the rules treat alike, per interface: the address space is cut at
// every boundary a zone, an allow, a host rule or a loaded rule's source match names, one
// packet per piece is walked (the packet evaluator: exact, or `unknown`), and pieces of one zone
// that every cell treats alike are one row. Columns are the published ports, the ports of the
// host block and ping to the host. Each cell is held against the policy's intent, worked out
// from the policy's statements alone (not from the rules), so a rule that opens or closes what
// the policy does not say shows as a mismatch. Pure.
import type { Rule, Ruleset } from "../ir/ruleset.js";
import { moduleView, type PortList } from "../ir/match.js";
import { addressOn, bindAddress, bindings, byName, gatewayOf, isLoopback, publishingNetwork } from "../model/derive.js";
import { layoutFor } from "../docker/layouts.js";
import { makePlan, type PortPlan } from "../docker/plan.js";
import { dockersOwn, dockerWrites } from "../generate.js";
import { peerRows, type PeerWalk } from "./peers.js";
import type { NftRecord } from "./nfteval.js";
import { PROXY_CHAIN } from "../policy/owned.js";
import { ruleText } from "../targets/iptables.js";
import { parseSave } from "../live/save.js";
import type { Policy, Zone } from "../model/types.js";
import { bits, cidrContains, formatIp, parseCidr, isError, specContains, type AddressSpec, type Cidr, type Family, type Ip } from "../model/values.js";
import { eachSourcePort, evaluate, keyOf, localnetOf, numOf, sameDestination, sameSport, sameWay, sameWayUntil, sourceOf, type DestinationTest, type Num, type Packet, type PortTest, type SourceTest } from "./evaluate.js";
import { whoOf, type Admitting } from "../policy/zones.js";
import { wildcardStandIns } from "../policy/interfaces.js";

export interface MatrixRow {
  id: string;
  kind: "zone" | "other" | "containers" | "host";
  zone?: string;
  /** containers: their network. */
  network?: string;
  interfaces: string[];
  sources: string[];
}

export interface MatrixColumn {
  id: string;
  /** network: the addresses of a Docker network's containers, straight (a port or ping that rules of another tool's, or a hand's, accept). */
  kind: "published" | "host" | "icmp" | "network";
  container?: string;
  network?: string;
  host_address?: string;
  host_port?: number;
  container_port?: number;
  proto: "tcp" | "udp" | "icmp";
}

export type MatrixPath = "dnat" | "proxy" | "direct" | "loopback" | "host";

export interface MatrixCell {
  row: string;
  column: string;
  family: Family;
  path: MatrixPath;
  verdict: "open" | "closed" | "unknown";
  intent: "allowed" | "not-allowed";
  mismatch: boolean;
  probe: string;
  /** Why the verdict is unknown (the match the evaluator does not understand). */
  why?: string;
  /** With `before` rules given: the verdict there (reachability in diff and apply). */
  before?: "open" | "closed" | "unknown";
}

export interface Matrix {
  rows: MatrixRow[];
  columns: MatrixColumn[];
  cells: MatrixCell[];
}

export interface MatrixContext {
  policy: Policy;
  rulesets: Partial<Record<Family, Ruleset>>;
  /** The host's own address on each interface (live: from the kernel); else a stand-in address. */
  hostAddress?: (family: Family, iface: string) => string | undefined;
  /** live: the host's addresses, routes and interfaces (`ip -j addr`: those a zone's wildcard names get rows). */
  host?: { addresses: string[]; routes: { dst: string; dev: string }[]; interfaces?: string[]; localnet?: string[] };
  /** The rules before a change (the loaded ones): each cell says its verdict there too, and the pieces are cut for both. */
  before?: Partial<Record<Family, Ruleset>>;
  /**
   * live, on a host that filters through nftables tables too: each packet walked by the nftables
   * evaluator over the whole ruleset (nfteval.ts) instead of the iptables rules alone, and the
   * source ranges its rules look at, where the classes are cut too.
   */
  nft?: {
    /** With `rec`: its tests of the source noted there (the walk goes the same way for a source that answers them alike). */
    walk: (pk: Packet, rec?: NftRecord) => Walked;
    /** The walk over Docker's own tables alone (`ip`/`ip6 docker-bridges`), where the host has them: the intent of the containers' and the host's own traffic (else Docker's iptables rules for these facts). */
    docker?: (pk: Packet, rec?: NftRecord) => Walked;
    sources: (family: Family) => { from: bigint; to: bigint }[];
    /** The address ranges its rules look at (destinations, and sources: replies), where the host's addresses are told apart; undefined where they cannot all be read (then each address is walked). */
    destinations?: (family: Family) => { from: bigint; to: bigint }[] | undefined;
    /** Every range of ports its rules compare a packet's source port with: one walk per class of source ports they tell apart. */
    sourcePorts?: PortList[];
    /** Every range of ports its rules on the way in (input and prerouting hooks) compare a destination port with: the host's ports cut into classes, a column each. */
    inputPorts?: { from: number; to: number }[];
    /** The input interfaces its rules name (reachability from dumps: rows for those the new policy names no more). */
    interfaces?: string[];
  };
  /**
   * The nftables ruleset before a change (reachability in `diff -f nft` and `apply -f nft`), walked as `nft` is: each cell
   * says its verdict there too, and the classes are cut for both.
   */
  nftBefore?: NonNullable<MatrixContext["nft"]>;
  /** The host's other ports as columns where the host is not known too (reachability in diff and apply, from dumps). */
  otherPorts?: boolean;
  /** Walk every cell's packet, none taken from an earlier walk that went the same way (tests compare both ways). */
  walkEach?: boolean;
  /** verify: only the cells that are mismatches or unknown (the rows are all there). */
  only?: "mismatches";
  /**
   * live: the loaded filter rules that the policy does not load (another tool's, a hand's: see
   * foreignRules), which may accept what Docker's and dockwall's rules drop. Each that accepts,
   * returns or jumps makes columns of the containers' own addresses it can let through, straight
   * (a review: an accept of a container's second address, of a port it does not publish, of
   * ping, went unseen): a port it names, or one no container of the network publishes; ping.
   */
  foreign?: Partial<Record<Family, Rule[]>>;
}

/** Targets that never let a packet through a chain that would drop it. */
const NOT_OPENING = new Set(["DROP", "REJECT", "LOG", "NFLOG", "TRACE", "MARK", "CONNMARK", "CT", "NOTRACK", "TCPMSS", "DSCP", "TOS", "CLASSIFY"]);

/**
 * A port no container of the network publishes (those have cells of their own: what no rule of the policy's tells apart), and
 * that none of `without` holds (a rule's negated port test); undefined when there is none.
 */
function freePort(p: Policy, network: string, proto: "tcp" | "udp", without: PortList[]): number | undefined {
  const published = new Set(p.containers.filter((c) => c.endpoints.some((e) => e.network.name === network)).flatMap((c) => c.publishes.flatMap((x) => bindings(x).filter((b) => b.proto === proto).map((b) => b.containerPort))));
  for (let x = 1; x <= 65535; x++) if (!published.has(x) && !without.some((w) => w.has(x))) return x;
  return undefined;
}

/**
 * The columns of Docker networks' container addresses that foreign rules may open (MatrixContext.foreign): per network, a
 * column per protocol and port (ping for ICMP), each with the addresses of its containers the rules' destinations hold.
 */
function foreignColumns(p: Policy, rules: Rule[], family: Family): { id: string; network: string; proto: "tcp" | "udp" | "icmp"; port?: number; addrs: string[] }[] {
  const out = new Map<string, { id: string; network: string; proto: "tcp" | "udp" | "icmp"; port?: number; addrs: string[] }>();
  const host = family === 4 ? 32 : 128;
  for (const r of rules) {
    if (NOT_OPENING.has(r.target)) continue;
    const dst = r.dst && !r.dst.neg ? parseCidr(r.dst.value.includes("/") ? r.dst.value : `${r.dst.value}/${host}`) : undefined;
    if (dst && (isError(dst) || dst.family !== family)) continue;
    const protos: ("tcp" | "udp" | "icmp")[] = r.proto === "tcp" || r.proto === "udp" ? [r.proto] : r.proto === "icmp" || r.proto === "ipv6-icmp" || r.proto === "icmpv6" ? ["icmp"] : r.proto === undefined || r.proto === "all" ? ["tcp", "udp", "icmp"] : [];
    // The ports it names; a negated test (`! --dport 22`), the ports it leaves out (a review: the column took the one port it
    // does not let through).
    const named: number[] = [];
    const without: PortList[] = [];
    for (const m of r.matches) {
      const ports = (m.kind === "tcp" || m.kind === "udp") && m.dport ? m.dport : m.kind === "multiport" && m.dir !== "sports" ? m.ports : undefined;
      if (!ports) continue;
      if (ports.neg) without.push(ports.value);
      else named.push(...ports.value.ranges.map(([a]) => a));
    }
    for (const n of p.networks) {
      const addrs = p.containers.flatMap((c) => {
        const a = addressOn(c, n, family);
        return a && (!dst || cidrContains(dst as Cidr, a)) ? [formatIp(a)] : [];
      });
      if (!addrs.length) continue;
      for (const proto of protos) {
        const ports = proto === "icmp" ? [undefined] : named.length ? named.slice(0, 16) : [freePort(p, n.name, proto, without)].filter((x) => x !== undefined);
        for (const port of ports) {
          const id = `containers@${n.name}:${proto === "icmp" ? "ping" : `${port}/${proto}`}`;
          const col = out.get(id) ?? { id, network: n.name, proto, ...(port === undefined ? {} : { port }), addrs: [] };
          for (const a of addrs) if (!col.addrs.includes(a)) col.addrs.push(a);
          out.set(id, col);
        }
      }
    }
  }
  return [...out.values()];
}

/** What a walk says of a packet (evaluate.ts's Verdict, or nfteval.ts's). */
export interface Walked {
  verdict: "ACCEPT" | "DROP" | "REJECT" | "unknown";
  path: "input" | "forward" | "output";
  dnat?: { addr: string; port?: number };
  why?: string;
  /** Unknown only as to whether the kernel drops a packet from outside to loopback or takes it itself: never a container's. */
  martian?: boolean;
}

/** A walk made, with the tests of the source address and port, and of the destination, it made (evaluate.ts: sameWay, sameSport, sameDestination). */
interface Remembered {
  tests: SourceTest[];
  sports: PortTest[];
  /** null: its tests of the destination could not all be noted (an nftables rule read it through a mask, say): it holds for its own destination only. */
  dests: DestinationTest[] | null;
  verdict: Walked;
  /** The source port and destination it was walked with: the same again answers every test alike. */
  sport: number;
  dstKey: string;
  /** Its slot's other destinations go its way, and no source port goes another (worked out once). */
  settles?: boolean;
}

/** The verdict of a walk made before for a packet from this source and port, to this destination, that answers its tests alike, else of a new walk (remembered; its tests undefined where they could not be noted). */
function remembered(list: Remembered[], walk: Walker, from: { src: string; local: string[] }, sport: number, dst: { num: Num; key: string }, packet: () => Packet): Omit<Remembered, "tests"> & { tests: SourceTest[] | undefined } {
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if (sameWay(e.tests, from) && (e.sport === sport || sameSport(e.sports, sport)) && (e.dstKey === dst.key || (e.dests !== null && sameDestination(e.dests, dst.num, dst.key)))) return e;
  }
  const r = walk(packet());
  r.dstKey = dst.key;
  // (A walk whose tests cannot say which other sources go its way holds for none: not kept.)
  if (r.tests) list.push(r as Remembered);
  return r;
}

/** A walk that notes its tests (remembered): of the source (undefined: it could not say them), source port and destination. */
type Walker = (pk: Packet) => Omit<Remembered, "tests"> & { tests: SourceTest[] | undefined };

/** The iptables evaluator's walk over `rs`, noting its tests. */
const ruleWalker = (rs: Ruleset): Walker => (pk) => {
  const tests: SourceTest[] = [];
  const sports: PortTest[] = [];
  const dests: DestinationTest[] = [];
  const verdict = evaluate(rs, pk, { sources: tests, sports, destinations: dests, replies: true });
  // (settles set here too: an object that gains a field later takes another shape, and the lookups above slow down.)
  return { tests, sports, dests, verdict, sport: pk.sport ?? SPORT, dstKey: "", settles: undefined };
};

/**
 * The nftables evaluator's walk, noting its tests of the source and of the host's address it was sent to (NftRecord); its
 * "tests" of the source port, every range its rules compare one with (nftSourcePorts).
 */
const nftWalker = (nft: NonNullable<MatrixContext["nft"]>): Walker => (pk) => {
  const rec: NftRecord = { tests: [], poisoned: false, dests: [] };
  const verdict = nft.walk(pk, rec);
  const sport = pk.sport ?? SPORT;
  return { tests: rec.poisoned || !rec.noted ? undefined : rec.tests, sports: (nft.sourcePorts ?? []).map((ports) => ({ ports, hit: ports.has(sport) })), dests: rec.destPoisoned || !rec.noted ? null : rec.dests!, verdict, sport, dstKey: "", settles: undefined };
};

/** The source port of a cell's packet when nothing tells ports apart (and the first one walked). */
const SPORT = 40000;

/** The host's addresses the rules of both walks tell apart (undefined, each walked, where one cannot read them all). */
function nftDestinations(a: NonNullable<MatrixContext["nft"]>, b: MatrixContext["nftBefore"], family: Family): { from: bigint; to: bigint }[] | undefined {
  const x = a.destinations?.(family);
  if (!b) return x;
  const y = b.destinations?.(family);
  return x && y ? [...x, ...y] : undefined;
}

/** The host's address when none is known (compiled rules): rules rarely look at it, and one that does makes the cell hold for this address only. */
const STAND_IN: Record<Family, string> = { 4: "192.0.2.1", 6: "2001:db8:ffff::1" };

interface Piece {
  from: bigint;
  to: bigint;
}

function rangeOf(a: AddressSpec): Piece {
  if (a.kind === "range") return { from: a.range.from, to: a.range.to };
  const host = (1n << BigInt(bits(a.cidr.family) - a.cidr.prefix)) - 1n;
  const from = a.cidr.value & ~host;
  return { from, to: from | host };
}

/** A piece as CIDRs (or a range when it is not a few of them). */
function describePiece(p: Piece, family: Family): string {
  const w = bits(family);
  const out: string[] = [];
  let at = p.from;
  while (at <= p.to && out.length < 4) {
    let len = w;
    while (len > 0) {
      const size = 1n << BigInt(w - len + 1);
      if (at % size !== 0n || at + size - 1n > p.to) break;
      len--;
    }
    out.push(`${formatIp({ family, value: at })}/${len}`);
    at += 1n << BigInt(w - len);
  }
  if (at <= p.to) return `${formatIp({ family, value: p.from })}-${formatIp({ family, value: p.to })}`;
  return out.join(", ");
}

/** The address space of a family cut at both ends of every range: the first address of each piece, in order. */
function boundaries(ranges: Piece[], family: Family): bigint[] {
  const max = (1n << BigInt(bits(family))) - 1n;
  const at = new Set<bigint>([0n]);
  for (const r of ranges) {
    at.add(r.from);
    if (r.to < max) at.add(r.to + 1n);
  }
  return [...at].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The pieces between boundaries (the last one runs to the end of the address space). */
function piecesOf(at: bigint[], family: Family): Piece[] {
  const max = (1n << BigInt(bits(family))) - 1n;
  return at.map((from, i) => ({ from, to: i + 1 < at.length ? at[i + 1]! - 1n : max }));
}

/** The ranges of these sources that are of this family. */
function rangesOf(specs: AddressSpec[], family: Family): Piece[] {
  return specs.filter((v) => (v.kind === "cidr" ? v.cidr.family : v.range.family) === family).map(rangeOf);
}

/** Every address range the rules' tests of the source (`-s`, `iprange --src-range`) or of the destination (`-d`, `--dst-range`, `conntrack --ctorigdst`) name, in this family. */
function ruleRanges(rs: Ruleset | undefined, family: Family, which: "src" | "dst"): Piece[] {
  const ranges: Piece[] = [];
  const host = family === 4 ? 32 : 128;
  const option = which === "src" ? "src-range" : "dst-range";
  for (const t of rs?.tables ?? []) {
    for (const c of t.chains) {
      for (const r of c.rules) {
        const a = r[which];
        if (a) {
          const cidr = parseCidr(a.value.includes("/") ? a.value : `${a.value}/${host}`);
          if (!isError(cidr) && cidr.family === family) ranges.push(rangeOf({ kind: "cidr", cidr }));
        }
        for (const m of r.matches) {
          const { module, options } = moduleView(m);
          for (const o of options) {
            if (which === "dst" && module === "conntrack" && o.name === "ctorigdst" && o.value) {
              const cidr = parseCidr(o.value.includes("/") ? o.value : `${o.value}/${host}`);
              if (!isError(cidr) && cidr.family === family) ranges.push(rangeOf({ kind: "cidr", cidr }));
            }
            if (module !== "iprange" || o.name !== option || !o.value) continue;
            const [x, y = x] = o.value.split("-");
            const from = parseCidr(`${x}/${host}`);
            const to = parseCidr(`${y}/${host}`);
            if (!isError(from) && !isError(to) && from.family === family) ranges.push({ from: from.value, to: to.value });
          }
        }
      }
    }
  }
  return ranges;
}

/**
 * Every range of destination ports a rule on the way in compares a packet's with (`--dport`,
 * multiport's `--dports`): in the chains of raw and mangle PREROUTING, nat PREROUTING, mangle
 * and filter INPUT, and those they jump to.
 */
function ruleDports(rs: Ruleset | undefined, proto: "tcp" | "udp"): (readonly [number, number])[] {
  const out: (readonly [number, number])[] = [];
  for (const [table, starts] of [["raw", ["PREROUTING"]], ["mangle", ["PREROUTING", "INPUT"]], ["nat", ["PREROUTING"]], ["filter", ["INPUT"]]] as const) {
    const t = rs?.tables.find((x) => x.name === table);
    if (!t) continue;
    const seen = new Set<string>();
    const visit = (name: string) => {
      if (seen.has(name)) return;
      seen.add(name);
      for (const r of t.chains.find((c) => c.name === name)?.rules ?? []) {
        for (const m of r.matches) {
          if ((m.kind === "tcp" || m.kind === "udp") && m.kind === proto && m.dport) out.push(...m.dport.value.ranges);
          if (m.kind === "multiport" && m.dir !== "sports" && (r.proto === proto || r.proto === undefined)) out.push(...m.ports.value.ranges);
          // The port a connection was first sent to (a review: '--ctorigdstport 9100 -j ACCEPT' in INPUT made no column).
          if (m.kind === "conntrack" && m.origDstPort && (r.proto === proto || r.proto === undefined)) out.push(...m.origDstPort.value.ranges);
        }
        const to = r.target.startsWith("-g ") ? r.target.slice(3) : r.target;
        if (t.chains.some((c) => c.name === to)) visit(to);
      }
    };
    starts.forEach(visit);
  }
  return out;
}

/** Every boundary of a source range that the policy or the rules name, in this family. */
function cuts(p: Policy, rs: Ruleset | undefined, family: Family, more: Piece[] = []): bigint[] {
  const ranges = [...more, ...rangesOf([...p.zones.flatMap((z) => z.sources), ...p.allows.flatMap((a) => a.sources), ...(p.host?.rules.flatMap((r) => r.sources) ?? [])].map((s) => s.value), family)];
  return boundaries([...ranges, ...ruleRanges(rs, family, "src")], family);
}

/** Addresses a reader knows for examples (RFC 5737, RFC 3849): a piece that holds one is shown by it. */
const EXAMPLES: Record<Family, bigint[]> = {
  4: ["203.0.113.99", "198.51.100.99", "192.0.2.99"].map((a) => a.split(".").reduce((v, o) => (v << 8n) | BigInt(o), 0n)),
  6: [0x20010db8beef00000000000000000099n],
};

/** One address of each piece of the address space cut at every boundary of these sources (the classes they tell apart). */
export function classRepresentatives(specs: AddressSpec[], family: Family): Ip[] {
  return piecesOf(boundaries(rangesOf(specs, family), family), family).map((x) => representative(x, family));
}

/** One packet of this piece: an example address if it holds one, else its third address (not a network's own), else its first. */
function representative(p: Piece, family: Family, own?: Set<bigint>): Ip {
  const ex = EXAMPLES[family].find((e) => p.from <= e && e <= p.to && !own?.has(e));
  if (ex !== undefined) return { family, value: ex };
  const at = p.to - p.from >= 3n ? p.from + 2n : p.from;
  // Not one of the host's own addresses (a review: a piece cut by a rule's -d, 10.0.0.0/8, walked from the host's 10.0.0.2,
  // which goes its own way, and took the class with it): the next address of the piece that is not.
  for (let a = at; own && a <= p.to && a < at + 1024n; a++) if (!own.has(a)) return { family, value: a };
  for (let a = p.from; own && a < at; a++) if (!own.has(a)) return { family, value: a };
  return { family, value: at };
}

/**
 * The interfaces rows are made for: each a zone names, and for a zone's wildcard (`eth+`), the
 * host's interfaces it holds (live) or one stand-in only it names (compiled, `eth0`); a review found
 * such zones with no rows at all, and a hand-made accept from them unreported.
 */
export function rowInterfaces(p: Policy, live: string[] | undefined): string[] {
  // Not the bridges of Docker's networks, a zone's or not: what arrives there is their containers' traffic, which follows
  // Docker's rules and has rows of its own (a review: a zone on a network's bridge had neighbour rows that the allows
  // from it, which change nothing, made mismatches of).
  const bridges = new Set(p.networks.map((n) => n.bridge.value));
  const all = [...new Set(p.zones.flatMap((z) => z.interfaces.map((i) => i.value)))];
  const named = all.filter((i) => !i.endsWith("+") && !bridges.has(i));
  const out = [...named];
  const standIns = live ? new Map<string, string>() : wildcardStandIns([...all, ...bridges]);
  for (const w of all.filter((i) => i.endsWith("+"))) {
    const prefix = w.slice(0, -1);
    if (live) {
      for (const i of live) if (i.startsWith(prefix) && i !== "lo" && !bridges.has(i) && !out.includes(i)) out.push(i);
      continue;
    }
    // Compiled: one interface of the wildcard's own, which no zone names and no longer wildcard takes (eth1 beside eth0 and
    // eth0+; a review found eth0 taken for eth+ there, and no row for what eth+ alone lets in), nor a Docker network's bridge.
    const name = standIns.get(w);
    if (name !== undefined && !out.includes(name)) out.push(name);
  }
  return out;
}

export function inZone(z: Zone, iface: string, src: Ip): boolean {
  if (z.builtin) return true;
  if (z.interfaces.length && !z.interfaces.some((i) => (i.value.endsWith("+") ? iface.startsWith(i.value.slice(0, -1)) : i.value === iface))) return false;
  if (z.sources.length && !z.sources.some((s) => specContains(s.value, src))) return false;
  return z.interfaces.length > 0 || z.sources.length > 0;
}

/** Whether a statement's zones and `from` let in a packet from `src` arriving on `iface`. */
export function admits(zones: Map<string, Zone>, names: { name: string }[], from: { value: AddressSpec }[], iface: string, src: Ip): boolean {
  if (from.length && !from.some((s) => specContains(s.value, src))) return false;
  return names.some((n) => n.name === "any" || (zones.get(n.name) !== undefined && inZone(zones.get(n.name)!, iface, src)));
}

/** The zone a row is named by: one whose `from` holds the source, else one of its interface. */
function zoneName(p: Policy, iface: string, src: Ip): string | undefined {
  const zs = p.zones.filter((z) => !z.builtin && inZone(z, iface, src));
  return (zs.find((z) => z.sources.length > 0) ?? zs[0])?.name;
}

/** An address, with its port where there is one (IPv6 then in brackets). */
export function fmtAddr(a: string, port?: number): string {
  const s = a.includes(":") && port !== undefined ? `[${a}]` : a;
  return port === undefined ? s : `${s}:${port}`;
}

/** How many cells a matrix has (about): columns × pieces × interfaces × paths, per family (each once a walk; now most are taken from an earlier one). */
export function matrixCost(ctx: MatrixContext, families: Family[]): number {
  const p = ctx.policy;
  const ifaces = Math.max(1, new Set(p.zones.flatMap((z) => z.interfaces.map((i) => i.value))).size);
  const columns = p.containers.reduce((n, c) => n + c.publishes.reduce((k, pub) => k + bindings(pub).length, 0), 0) + (p.host ? p.host.rules.reduce((n, r) => n + r.ports.length, 1) : 0);
  // (And the rows of each network's containers, two paths a column, and of the host itself, three.)
  const peers = new Set(p.containers.flatMap((c) => c.endpoints.map((e) => e.network.name))).size * 2 + 3;
  let n = 0;
  for (const f of families) n += columns * (cuts(p, ctx.rulesets[f], f, [...(ctx.nft?.sources(f) ?? []), ...(ctx.nftBefore?.sources(f) ?? [])]).length * ifaces * 3 + peers);
  return n;
}

export function buildMatrix(ctx: MatrixContext, families: Family[]): Matrix {
  const p = ctx.policy;
  const zones = byName(p.zones);
  const nets = byName(p.networks);
  const closed = p.docker.published === "closed";
  const named = rowInterfaces(p, ctx.host?.interfaces);
  // Live, the host's other interfaces too (a review: a third uplink no zone names had no rows, and an accept from it went
  // unreported): what arrives there is in no zone's interface, only in the zones of `from` alone, or any other source.
  // Not loopback, nor the bridges of Docker's networks (their containers' packets).
  const bridges = new Set(p.networks.map((n) => n.bridge.value));
  const unnamed = (ctx.host?.interfaces ?? []).filter((i) => i !== "lo" && !named.includes(i) && !bridges.has(i) && !/^(docker0|br-[0-9a-f]{12})$/.test(i));
  // Reachability of a change, the host's interfaces unknown (dumps): the interfaces the rules before name too (`-i`, nft's `iifname`), where the new
  // policy names them no more (a review: a zone taken away closed its interface's allows, and diff said nothing).
  // (A wildcard there, `-i wg+`, on an interface of its own kind, as a zone's: a review found a zone on `wg+` taken away unsaid.)
  const namedBefore = ctx.host ? [] : [...new Set([...([4, 6] as const).flatMap((f) => ctx.before?.[f]?.tables.flatMap((t) => t.chains.flatMap((c) => c.rules.flatMap((r) => (r.in && !r.in.neg ? [r.in.value] : [])))) ?? []), ...(ctx.nftBefore?.interfaces ?? [])])];
  const standInBefore = namedBefore.some((i) => i.endsWith("+")) ? wildcardStandIns([...new Set([...p.zones.flatMap((z) => z.interfaces.map((i) => i.value)), ...namedBefore, ...bridges])]) : new Map<string, string>();
  const before = [...new Set(namedBefore.map((i) => (i.endsWith("+") ? standInBefore.get(i) : i)).filter((i): i is string => i !== undefined))].filter((i) => i !== "lo" && !named.includes(i) && !bridges.has(i) && !/^(docker0|br-[0-9a-f]{12})$/.test(i));
  // Zones that name no interface: their sources may arrive on any, here one the policy does not name.
  const ifaces = named.length || unnamed.length || before.length ? [...named, ...unnamed, ...before] : ["any0"];
  const rows = new Map<string, MatrixRow>();
  const columns = new Map<string, MatrixColumn>();
  const skipsLinkLocal = layoutFor(p.docker.version?.value)?.dnatSkipLinkLocal === true;
  const cells: MatrixCell[] = [];
  for (const family of families) {
    const rs = ctx.rulesets[family];
    if (!rs) continue;
    // The host's address on an interface. Live, where it has none of this family there (or the interface is one no zone
    // names), another of its addresses of this family: Linux takes a packet for any of its addresses on any interface
    // (and Docker DNATs it: --dst-type LOCAL). With none of this family at all: no such packet, no cell.
    const ownOf = (a: string) => (a.includes(":") ? 6 : 4) === family && !/^(127\.|::1$)/.test(a);
    const nearby = (a: string) => /^(169\.254\.|fe[89ab][0-9a-f]:)/i.test(a);
    const elsewhere = ctx.host ? (ctx.host.addresses.find((a) => ownOf(a) && !nearby(a)) ?? ctx.host.addresses.find(ownOf)) : undefined;
    const hostAddr = (iface: string) => ctx.hostAddress?.(family, iface) ?? (ctx.host ? elsewhere : STAND_IN[family]);
    // Live, every address of the host a packet can be for, from any interface (Linux takes a packet for any of its
    // addresses wherever it arrives, and Docker DNATs it: --dst-type LOCAL): one of each class that the rules' tests of
    // the destination treat alike, the interface's own first. A review found a rule for another interface's address
    // (an accept of the lan's address from the wan) unseen: each row was walked to its own interface's address only.
    // Link-local addresses belong to their own link: only the interface's own is walked. (The rules' tests of the
    // source count too: a connection's replies come from the address it was sent to.)
    const dstRanges = ctx.host
      ? ctx.nft
        ? nftDestinations(ctx.nft, ctx.nftBefore, family)
        : [rs, ctx.before?.[family]].flatMap((x) => [...ruleRanges(x, family, "dst"), ...ruleRanges(x, family, "src")])
      : undefined;
    const classOf = (a: string): string => {
      if (!dstRanges) return a;
      const c = parseCidr(`${a}/${bits(family)}`);
      if (isError(c)) return a;
      let key = "";
      for (let i = 0; i < dstRanges.length; i++) if (dstRanges[i]!.from <= c.value && c.value <= dstRanges[i]!.to) key += `${i},`;
      return key;
    };
    const hostTargets = new Map<string, string[]>();
    const hostAddrs = (iface: string): string[] => {
      let out = hostTargets.get(iface);
      if (out) return out;
      const own = hostAddr(iface);
      out = own === undefined ? [] : [own];
      if (ctx.host) {
        const seen = new Set(out.map(classOf));
        for (const a of ctx.host.addresses) {
          if (!ownOf(a) || (nearby(a) && a !== own)) continue;
          const k = classOf(a);
          if (seen.has(k)) continue;
          seen.add(k);
          out.push(a);
        }
      }
      hostTargets.set(iface, out);
      return out;
    };
    // Columns: the published ports of this family, the host block's ports, ping.
    type Col = MatrixColumn & { containerAddr?: string; loopbackOnly?: boolean; proxied: boolean; addrs?: string[] };
    const cols: Col[] = [];
    for (const c of p.containers) {
      const n = publishingNetwork(c, nets);
      const ep = c.endpoints.find((e) => e.network.name === n?.name)?.addresses.find((a) => a.value.family === family);
      // A container with no address of this family is still reached through docker-proxy, which listens on :: too
      // (a review: its IPv6 cells were missing, and a hand-made accept of them went unreported).
      if (!n || (!ep && !p.docker.userlandProxy)) continue;
      for (const pub of c.publishes) {
        const bound = bindAddress(p, pub, n);
        if (bound && bound.family !== family) continue;
        for (const b of bindings(pub)) {
          const hostIp = bound && bound.value !== 0n ? formatIp(bound) : undefined;
          cols.push({
            id: `${c.name}:${hostIp ? `${fmtAddr(hostIp)}:` : ""}${b.hostPort}/${b.proto}`,
            kind: "published",
            container: c.name,
            ...(hostIp ? { host_address: hostIp } : {}),
            host_port: b.hostPort,
            container_port: b.containerPort,
            proto: b.proto,
            containerAddr: ep ? formatIp(ep.value) : undefined,
            loopbackOnly: bound !== undefined && isLoopback(bound),
            proxied: p.docker.userlandProxy,
          });
        }
      }
    }
    if (p.host) {
      for (const r of p.host.rules) {
        if (r.proto.value === "icmp") continue;
        for (const port of r.ports) for (let x = port.value.from; x <= port.value.to && x < port.value.from + 16; x++) {
          const id = `host:${x}/${r.proto.value}`;
          if (!cols.some((c) => c.id === id)) cols.push({ id, kind: "host", host_port: x, proto: r.proto.value as "tcp" | "udp", proxied: false });
        }
      }
      cols.push({ id: "host:ping", kind: "icmp", proto: "icmp", proxied: false });
      // Live, the host's other ports too, one column per class of ports the loaded rules on the way in tell apart (a
      // review found a hand-made accept of node_exporter's 9100 unreported: no column had that port). The host block
      // lets none of them in (but with `policy accept`). A class that holds a port of the host block is that port's
      // column; one of published ports alone, theirs.
      if (ctx.host || ctx.otherPorts) {
        for (const proto of ["tcp", "udp"] as const) {
          const ranges = [...ruleDports(rs, proto), ...(ctx.before ? ruleDports(ctx.before[family], proto) : []), ...[...(ctx.nft?.inputPorts ?? []), ...(ctx.nftBefore?.inputPorts ?? [])].map((x) => [x.from, x.to] as const)].sort((x, y) => x[0] - y[0]);
          const at = new Set<number>([1]);
          for (const [a, b] of ranges) {
            at.add(Math.max(1, a));
            if (b < 65535) at.add(b + 1);
          }
          const starts = [...at].sort((a, b) => a - b);
          const named = cols.filter((c) => c.kind === "host" && c.proto === proto).map((c) => c.host_port!);
          const published = new Set(cols.filter((c) => c.kind === "published" && c.proto === proto).map((c) => c.host_port!));
          // Classes the same ranges hold are alike (the gaps between published ports, and the ports no rule names): one column.
          const byRanges = new Map<string, Col>();
          let active: number[] = [];
          let next = 0;
          starts.forEach((a, i) => {
            const b = i + 1 < starts.length ? starts[i + 1]! - 1 : 65535;
            while (next < ranges.length && ranges[next]![0] <= a) active.push(next++);
            active = active.filter((r) => ranges[r]![1] >= a);
            // Walked at its first port that the host block does not name and nothing publishes (a review: a class that
            // held the host block's port 22 was that column alone, and the rest of it, every other port where no rule
            // names one, went unseen).
            let port = a;
            while (port <= b && (published.has(port) || named.includes(port))) port++;
            if (port > b) return;
            const key = active.join(",");
            const seen = byRanges.get(key);
            if (seen) {
              if (!seen.id.includes("+") && !seen.id.startsWith("host:other/")) seen.id = seen.id.replace(/\/(tcp|udp)$/, "+/$1");
              return;
            }
            // (The ports no rule on the way in names: every other port.)
            const col: Col = { id: `host:${key === "" ? "other" : a === b ? a : `${a}-${b}`}/${proto}`, kind: "host", host_port: port, proto, proxied: false };
            byRanges.set(key, col);
            cols.push(col);
          });
        }
      }
    }
    // live: the containers' own addresses that rules the policy does not load may open (MatrixContext.foreign).
    for (const f of ctx.foreign?.[family] ? foreignColumns(p, ctx.foreign[family]!, family) : []) {
      cols.push({ id: f.id, kind: "network", network: f.network, ...(f.port !== undefined ? { container_port: f.port } : {}), proto: f.proto, proxied: false, addrs: f.addrs });
    }
    for (const c of cols) {
      const { containerAddr: _a, loopbackOnly: _l, proxied: _p, addrs: _d, ...col } = c;
      columns.set(c.id, col);
    }
    // What each packet is walked with: the host's addresses and routes (the same for every packet of this family).
    const routes = ctx.host?.routes ?? p.networks.flatMap((n) => n.subnets.filter((s) => s.value.family === family).map((s) => ({ dst: `${formatIp(s.value)}/${s.value.prefix}`, dev: n.bridge.value })));
    // The allows that name each container (the intent of its cells).
    const allowsOf = new Map<string, typeof p.allows>();
    for (const a of p.allows) for (const t of a.targets) if (!allowsOf.get(t.value.container)?.includes(a)) allowsOf.set(t.value.container, [...(allowsOf.get(t.value.container) ?? []), a]);
    // Rows: per interface, the pieces of the address space; pieces alike in every cell, one row.
    const rsBefore = ctx.before?.[family];
    // What each packet is walked with, now and before (the nftables evaluator's over the whole ruleset, or the iptables one's).
    const now = ctx.nft ? nftWalker(ctx.nft) : ruleWalker(rs);
    const then = ctx.nftBefore ? nftWalker(ctx.nftBefore) : rsBefore ? ruleWalker(rsBefore) : undefined;
    // The addresses the rules test as a packet's destination cut the sources too: a connection's replies go back to its source,
    // and a rule that drops what goes to some neighbours (an egress block, `-d 192.168.1.128/25 -j DROP` first in DOCKER-USER)
    // closes their connections (a class its -s would make; verify was silent where the block closed what the policy allows).
    // Not within a Docker network's subnets (such a source is spoofed: apart already), loopback or link-local, nor one of the host's own
    // addresses (rules name those everywhere; the host's own address as a neighbour's source is martian).
    const own = new Set((ctx.host?.addresses ?? [STAND_IN[family], ...ifaces.flatMap((i) => ctx.hostAddress?.(family, i) ?? []), ...cols.flatMap((c) => (c.host_address !== undefined ? [c.host_address] : []))]).flatMap((a) => {
      const c = parseCidr(`${a}/${bits(family)}`);
      return isError(c) || c.family !== family ? [] : [c.value];
    }));
    // (Nor link-local: never a neighbour routed here; a review found the usual block of the cloud's metadata service, -d
    // 169.254.169.254, a row of its own in every zone and verify failing on it.)
    const apart = [
      ...p.networks.flatMap((n) => n.subnets.filter((sn) => sn.value.family === family).map((sn) => rangeOf({ kind: "cidr", cidr: sn.value }))),
      ...(family === 4 ? [{ from: 127n << 24n, to: (128n << 24n) - 1n }, { from: (169n << 24n) | (254n << 16n), to: (169n << 24n) | (254n << 16n) | 0xffffn }] : [{ from: 1n, to: 1n }, { from: 0xfe8n << 116n, to: (0xfecn << 116n) - 1n }]),
    ];
    const nftDsts = (x: MatrixContext["nft"]) => x?.destinations?.(family) ?? [];
    const replies = [...ruleRanges(rs, family, "dst"), ...ruleRanges(rsBefore, family, "dst"), ...nftDsts(ctx.nft), ...nftDsts(ctx.nftBefore)].filter(
      (x) => !(x.from === x.to && own.has(x.from)) && !apart.some((a) => a.from <= x.from && x.to <= a.to),
    );
    const at = [...new Set([...cuts(p, rs, family, [...(ctx.nft?.sources(family) ?? []), ...(ctx.nftBefore?.sources(family) ?? []), ...replies]), ...(ctx.before ? cuts(p, rsBefore, family) : [])])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const pieces = piecesOf(at, family);
    // The host's addresses: live, the kernel's; compiled, the interface's and each Docker network's own (its bridge's, as explain
    // takes them: a connection masqueraded out of a bridge comes back to it; a second review found such cells unknown).
    const gateways = p.networks.flatMap((n) => (gatewayOf(n, family) ? [formatIp(gatewayOf(n, family)!)] : []));
    // (And the host addresses published ports are bound to: the host's own, as explain takes them; a review found a port
    // published on one address never opened in the matrix, and diff's reachability silent on it.)
    const bound = [...new Set(cols.flatMap((c) => (c.kind === "published" && c.host_address !== undefined && !c.loopbackOnly ? [c.host_address] : [])))];
    const local = (iface: string) => ctx.host?.addresses ?? [hostAddr(iface)!, ...gateways, ...bound];
    const VERDICTS = ["open", "closed", "unknown"] as const;
    // (127.0.0.1 not DNATed reaches no container, dropped or not: closed, unless docker-proxy, on 0.0.0.0, may take it.)
    const verdictOf = (v: Walked, slot: { path: MatrixPath; col: { proxied: boolean }; opened: (v: Walked) => boolean }) => (v.verdict === "unknown" ? (v.martian && slot.path === "loopback" && !slot.col.proxied ? 1 : 2) : slot.opened(v) ? 0 : 1);
    for (const iface of ifaces) {
      // The cells of a piece, in one order for every piece of this interface: each a column and a path, the packet's
      // destination, what counts as reaching it, and (per piece) whether the policy allows it.
      interface Slot {
        col: Col;
        path: MatrixPath;
        /** The packet's destinations: the cell is open when one is let through (else unknown when one cannot be told). */
        dsts: string[];
        port: number | undefined;
        opened: (v: Walked) => boolean;
        allowed: (src: Ip, srcText: string) => boolean;
      }
      const slots: Slot[] = [];
      // What Docker's own rules do with a packet (the intent of what `published open` leaves to Docker), walked when first asked.
      let dockerRules: Ruleset | undefined;
      const dockerWalk = (pk: Packet): Walked => (ctx.nft?.docker ? ctx.nft.docker(pk) : evaluate((dockerRules ??= dockersOwnRules(p, family)), pk, { replies: true }));
      // Whether a statement's zones and sources admit the piece walked now: one answer per statement and piece (an allow names many ports).
      // Statements alike in their zones and sources (an allow per container of one zone) share the answer.
      // (By number: statements alike share one; per piece, 0 not asked yet, 1 admits, 2 does not.)
      const whoIds = new Map<string, number>();
      const whoSts: Admitting[] = [];
      const idOf = (st: Admitting): number => {
        const who = whoOf(st);
        let id = whoIds.get(who);
        if (id === undefined) whoIds.set(who, (id = whoSts.push(st) - 1));
        return id;
      };
      let admitted = new Uint8Array(0);
      const admitting = (ids: number[], src: Ip): boolean => {
        for (let i = 0; i < ids.length; i++) {
          const id = ids[i]!;
          let a = admitted[id]!;
          if (a === 0) {
            const st = whoSts[id]!;
            admitted[id] = a = admits(zones, st.zones, st.sources, iface, src) ? 1 : 2;
          }
          if (a === 1) return true;
        }
        return false;
      };
      for (const col of cols) {
        if (col.kind === "published") {
          // The allows that name this port (worked out once; which of them admit a piece, per piece).
          const naming = (allowsOf.get(col.container!) ?? []).filter((a) => a.targets.some((t) => t.value.container === col.container && t.value.ports.from <= col.host_port! && col.host_port! <= t.value.ports.to && (!t.value.proto || t.value.proto === col.proto))).map(idOf);
          // Where Docker writes no IPv6 rules (ip6tables off) and no docker-proxy runs, no published port is reached over
          // IPv6 at all: no statement opens that path (a review: every IPv6 allow was "closed, the policy allows it" in
          // verify for good; check says so at the docker block).
          const noV6Path = family === 6 && !dockerWrites(p, 6) && !col.proxied;
          const allowed = (src: Ip) => {
            // Docker 28+ never DNATs an IPv6 link-local source (`! -s fe80::/10`): no statement opens that path (but docker-proxy, where it runs, relays it).
            const linkLocal = family === 6 && skipsLinkLocal && !col.proxied && (src.value >> 118n) === 0x3fan;
            return !noV6Path && !linkLocal && (!closed || admitting(naming, src));
          };
          const reached = (v: Walked) => v.verdict === "ACCEPT" && ((v.path === "forward" && (v.dnat?.addr ?? "") === col.containerAddr) || (v.path === "input" && col.proxied));
          const to = col.host_address !== undefined ? [col.host_address] : hostAddrs(iface);
          if (!col.loopbackOnly && to.length) slots.push({ col, path: "dnat", dsts: to, port: col.host_port, opened: reached, allowed });
          const direct = (v: Walked) => v.verdict === "ACCEPT" && v.path === "forward";
          if (closed) {
            if (col.containerAddr !== undefined) slots.push({ col, path: "direct", dsts: [col.containerAddr], port: col.container_port, opened: direct, allowed: () => false });
            // 127.0.0.1 routed here by a neighbour: no statement opens that path.
            if (family === 4 && (col.loopbackOnly || col.host_address === undefined)) slots.push({ col, path: "loopback", dsts: ["127.0.0.1"], port: col.host_port, opened: reached, allowed: () => false });
          } else {
            // `published open`: Docker's exact behaviour, its leaks included (before Docker 28, a neighbour routing via the host
            // reaches the container's own address, and one routing 127.0.0.1 a port published there): those paths are what
            // Docker's own rules make them, cells like any other (a review: going to `published open` listed only the dnat
            // cells in diff's reachability, while the container's own address and 127.0.0.1 opened to the wan too).
            // (Where Docker writes no IPv6 rules, nothing stops a neighbour's packet to the container's own IPv6 address: its
            // own rules, none, say so; a review found the "no IPv6 DNAT" of the dnat cell taken for no IPv6 path.)
            const docker = (slot: Slot) => (_src: Ip, srcText: string) => slot.opened(dockerWalk(packetOf(slot, srcText, slot.dsts[0]!, SPORT)));
            if (col.containerAddr !== undefined) {
              const slot: Slot = { col, path: "direct", dsts: [col.containerAddr], port: col.container_port, opened: direct, allowed: () => false };
              slot.allowed = docker(slot);
              slots.push(slot);
            }
            if (family === 4 && (col.loopbackOnly || col.host_address === undefined)) {
              const slot: Slot = { col, path: "loopback", dsts: ["127.0.0.1"], port: col.host_port, opened: reached, allowed: () => false };
              slot.allowed = docker(slot);
              slots.push(slot);
            }
          }
        } else if (col.kind === "network") {
          // Straight to the containers' own addresses, a port none of them publishes, or ping: no statement opens that path.
          slots.push({ col, path: "direct", dsts: col.addrs!, port: col.container_port, opened: (v) => v.verdict === "ACCEPT" && v.path === "forward" && v.dnat === undefined, allowed: () => false });
        } else {
          // `policy accept;` in the host block: what no rule drops is let in.
          const naming = (p.host?.rules ?? []).filter((r) => (col.kind === "icmp" ? r.proto.value === "icmp" : r.proto.value === col.proto && r.ports.some((x) => x.value.from <= col.host_port! && col.host_port! <= x.value.to))).map(idOf);
          const allowed = (src: Ip) => p.host?.policy === "accept" || admitting(naming, src);
          const to = hostAddrs(iface);
          // Delivered to the host, DNATed there or not (a review: a DNAT of port 2222 to the host's ssh went unreported).
          if (to.length) slots.push({ col, path: "host", dsts: to, port: col.host_port, opened: (v) => v.verdict === "ACCEPT" && v.path === "input", allowed });
        }
      }
      const packetOf = (slot: Slot, srcText: string, dst: string, sport: number): Packet => {
        const proto = slot.col.proto;
        return { family, in: iface, src: srcText, dst, proto, sport, dport: slot.port, icmpType: proto === "icmp" ? (family === 4 ? 8 : 128) : undefined, state: "NEW", local: local(iface), routes };
      };
      // Per slot, the walks made so far, each with the tests of the source it made: a piece that answers them alike
      // goes the same way (sameWay), and is not walked again. Exact: the walk of a packet depends on its source only
      // through them.
      const walked: Remembered[][] = slots.map(() => []);
      const walkedBefore: Remembered[][] = slots.map(() => []);
      const dstNums = slots.map((s) => s.dsts.map((d) => {
        const num = numOf(d);
        return { num, key: keyOf(num) };
      }));
      // Of a cell's walks (one per destination and class of source ports), the one that says most: open, else unknown, else closed.
      const RANK = [2, 0, 1];
      type One = { verdict: Walked; sports: PortTest[]; dests?: DestinationTest[] | null };
      const most = (slot: Slot, k: number, walk: (dst: string, d: number, sport: number) => One): { v: Walked; d: number; sport: number } => {
        // Most cells: one walk, which tests no source port, and whose tests of the destination every other of the host's addresses answers alike.
        const first = walk(slot.dsts[0]!, 0, SPORT);
        if (first.sports.length === 0 || slot.col.proto === "icmp") {
          let alike = true;
          for (let d = 1; d < slot.dsts.length && alike; d++) alike = first.dests != null && sameDestination(first.dests, dstNums[k]![d]!.num, dstNums[k]![d]!.key);
          if (alike || verdictOf(first.verdict, slot) === 0) return { v: first.verdict, d: 0, sport: SPORT };
        }
        let best: { v: Walked; d: number; sport: number } | undefined;
        const made: One[] = [];
        for (let d = 0; d < slot.dsts.length && (!best || verdictOf(best.v, slot) !== 0); d++) {
          const dst = slot.dsts[d]!;
          // An address every walk so far answers alike goes their way (sameDestination): nothing new there.
          if (d > 0 && made.every((w) => w.dests && sameDestination(w.dests, dstNums[k]![d]!.num, dstNums[k]![d]!.key))) continue;
          // One walk there tests no source port and goes the way of a walk made: that verdict, already counted.
          if (d > 0 && made.some((w) => w.sports.length === 0 && w.dests && sameDestination(w.dests, dstNums[k]![d]!.num, dstNums[k]![d]!.key))) continue;
          // ICMP has no ports; TCP and UDP, each class of source ports the rules tell apart (the neighbour picks its own).
          // (The walk from port 40000 first, the first destination's made already: where it tests no source port, the only one.)
          const w0 = d === 0 ? first : walk(dst, d, SPORT);
          const walks = slot.col.proto === "icmp" || w0.sports.length === 0 ? [{ port: SPORT, walked: w0 }] : eachSourcePort(SPORT, 1, 65535, (port) => (port === SPORT ? w0 : walk(dst, d, port)), (w) => verdictOf(w.verdict, slot) === 0);
          if (!walks) return { v: { verdict: "unknown", path: "input", why: "its rules tell more than 256 classes of source ports apart" }, d, sport: SPORT };
          for (const w of walks) {
            made.push(w.walked);
            if (!best || RANK[verdictOf(w.walked.verdict, slot)]! > RANK[verdictOf(best.v, slot)]!) best = { v: w.walked.verdict, d, sport: w.port };
          }
        }
        return best!;
      };
      /** A walk of its own (walkEach: tests compare both ways): its tests of the source port alone. */
      const walkOne = (w: Walker, slot: Slot, srcText: string, dst: string, sport: number): One => {
        const { verdict, sports } = w(packetOf(slot, srcText, dst, sport));
        return { verdict, sports };
      };
      // One piece's cells: what each walk said (and to which destination, from which port), and each cell's verdict, intent and verdict before, as one code.
      const vs: Walked[] = new Array(slots.length);
      const dstAt = new Uint16Array(slots.length);
      const sportAt = new Uint16Array(slots.length);
      const codes = new Uint8Array(slots.length);
      // Per slot, the last settling walk and the highest address that goes its way (pieces come in ascending order).
      const lastWalk: (Walked | undefined)[] = new Array(slots.length);
      const until: bigint[] = new Array(slots.length).fill(-1n);
      const groups = new Map<string, { zone?: string; pieces: Piece[]; cells: MatrixCell[]; shown: number }>();
      // One piece's cells, walked (a function of its own: the optimiser takes it whole).
      const walkCells = (src: Ip, srcText: string, probe: ReturnType<typeof sourceOf>): void => {
        for (let k = 0; k < slots.length; k++) {
          const slot = slots[k]!;
          // The common case first, as cheaply as it can be (a matrix has millions of cells): a walk made before, or one new walk,
          // from port 40000 to the interface's own address, that tests no source port and whose tests of the destination the
          // host's other addresses answer alike (most() does the rest).
          let v: Walked | undefined;
          let d = 0;
          let sport = SPORT;
          if (!ctx.walkEach) {
            // A piece up to where the last piece's settling walk holds goes its way without a lookup (sameWayUntil).
            if (src.value <= until[k]!) v = lastWalk[k];
            else {
              const r0 = remembered(walked[k]!, now, probe, SPORT, dstNums[k]![0]!, () => packetOf(slot, srcText, slot.dsts[0]!, SPORT));
              if (r0.settles === undefined) {
                let alike = r0.sports.length === 0 || slot.col.proto === "icmp";
                for (let x = 1; x < slot.dsts.length && alike; x++) alike = r0.dests !== null && sameDestination(r0.dests, dstNums[k]![x]!.num, dstNums[k]![x]!.key);
                r0.settles = alike;
              }
              if (r0.settles) {
                v = r0.verdict;
                lastWalk[k] = v;
                // (A walk whose tests could not be noted holds for its own source alone.)
                until[k] = r0.tests ? sameWayUntil(r0.tests, probe) : -1n;
              } else until[k] = -1n;
            }
          }
          if (!v)
            ({ v, d, sport } = most(slot, k, (dst, d, sport) =>
              ctx.walkEach ? walkOne(now, slot, srcText, dst, sport) : remembered(walked[k]!, now, probe, sport, dstNums[k]![d]!, () => packetOf(slot, srcText, dst, sport)),
            ));
          // Not compared where there were no rules of this family before (a dump not given): 3.
          const vb = then && most(slot, k, (dst, d, sport) => (ctx.walkEach ? walkOne(then, slot, srcText, dst, sport) : remembered(walkedBefore[k]!, then, probe, sport, dstNums[k]![d]!, () => packetOf(slot, srcText, dst, sport)))).v;
          vs[k] = v;
          dstAt[k] = d;
          sportAt[k] = sport;
          codes[k] = verdictOf(v, slot) + 3 * (slot.allowed(src, srcText) ? 1 : 0) + 6 * (vb ? verdictOf(vb, slot) : 3);
        }
      };
      for (const piece of pieces) {
        const src = representative(piece, family, own);
        const srcText = formatIp(src);
        const zone = zoneName(p, iface, src);
        // A Docker network's own address, arriving from outside (spoofed): the replies to it go to the bridge, never back
        // to the sender, so its connections do not open whatever the policy allows (Docker 28+ drops them in raw
        // PREROUTING too). Its cells closed are no mismatch; open, they are.
        const spoofed = !bridges.has(iface) && p.networks.some((n) => n.subnets.some((sn) => sn.value.family === family && cidrContains(sn.value, src)));
        const probe = sourceOf(srcText, local(iface));
        admitted = new Uint8Array(whoSts.length);
        walkCells(src, srcText, probe);
        // Pieces alike in every cell (and of one zone), one row: the cells are those of its first piece.
        // (Spoofed pieces apart from the others only where a cell is closed and allowed: there the two differ.)
        const apart = spoofed && codes.some((c) => c % 3 === 1 && Math.floor(c / 3) % 2 === 1);
        const key = `${zone ?? ""}|${apart ? "spoofed" : ""}|${Buffer.from(codes.buffer, codes.byteOffset, codes.length).toString("latin1")}`;
        const g = groups.get(key);
        // The row's cells are those of one of its pieces, alike in every cell: their packets are shown from an address a reader
        // knows for examples where a piece holds one (in EXAMPLES' order), else not from 0.0.0.0/8 (a source the kernel drops as martian before any
        // rule: a review read 'tcp 0.0.0.2:40000 -> …' as no packet that could come).
        const example = EXAMPLES[family].indexOf(src.value);
        const shown = example >= 0 ? example : family === 4 && src.value < 1n << 24n ? 4 : 3;
        if (g && shown >= g.shown) {
          g.pieces.push(piece);
          continue;
        }
        const here: MatrixCell[] = [];
        for (let k = 0; k < slots.length; k++) {
          const slot = slots[k]!;
          const code = codes[k]!;
          const verdict = VERDICTS[code % 3]!;
          const intent = Math.floor(code / 3) % 2 === 1;
          const b = Math.floor(code / 6);
          const mismatch = verdict !== "unknown" && (verdict === "open") !== intent && !(spoofed && verdict === "closed");
          if (ctx.only === "mismatches" && !mismatch && verdict !== "unknown") continue;
          const proto = slot.col.proto;
          here.push({
            row: "",
            ...cellJson(slot.col.id, family, slot.path, verdict, intent, mismatch, `${probeProtocol(proto, family)} ${fmtAddr(srcText, proto === "icmp" ? undefined : sportAt[k]!)} -> ${fmtAddr(slot.dsts[dstAt[k]!]!, slot.port)} in ${iface}`, vs[k]!.why, b !== 3 ? VERDICTS[b]! : undefined),
          });
        }
        if (g) {
          g.pieces.push(piece);
          g.cells = here;
          g.shown = shown;
        } else groups.set(key, { zone, pieces: [piece], cells: here, shown });
      }
      for (const g of groups.values()) {
        // Neighbouring pieces are one range.
        const merged: Piece[] = [];
        for (const x of g.pieces) {
          const last = merged.at(-1);
          if (last && last.to + 1n === x.from) last.to = x.to;
          else merged.push({ ...x });
        }
        const sources = merged.map((x) => describePiece(x, family));
        const id = `${g.zone ?? "other"}@${iface}/${family === 4 ? "ipv4" : "ipv6"}:${sources[0]}${g.pieces.length > 1 ? "+" : ""}`;
        rows.set(id, { id, kind: g.zone ? "zone" : "other", ...(g.zone ? { zone: g.zone } : {}), interfaces: [iface], sources });
        for (const c of g.cells) cells.push({ ...c, row: id });
      }
    }
    // Each Docker network's containers, and the host itself: what the policy leaves to Docker's own rules (peers.ts).
    const peers = peerRows({
      policy: p,
      family,
      columns: cols,
      walk: walker(ctx.nft, rs),
      walkBefore: ctx.nftBefore ? walker(ctx.nftBefore, rs) : rsBefore ? walker(undefined, rsBefore) : undefined,
      docker: ctx.nft?.docker ? walker({ ...ctx.nft, walk: ctx.nft.docker }, rs) : walker(undefined, dockersOwnRules(p, family)),
      hostAddresses: hostAddrs(ifaces[0]!),
      local: ctx.host?.addresses ?? [...[hostAddr(ifaces[0]!)].filter((a): a is string => a !== undefined), ...p.networks.flatMap((n) => (gatewayOf(n, family) ? [formatIp(gatewayOf(n, family)!)] : []))],
      routes,
      localnet: family === 4 ? localnetOf(p, ctx.host?.localnet) : undefined,
      sourceRanges: ctx.nft ? [...ctx.nft.sources(family), ...(ctx.nftBefore?.sources(family) ?? [])] : undefined,
      only: ctx.only,
      ...(ctx.walkEach ? { walkEach: true } : {}),
    });
    for (const r of peers.rows) rows.set(r.id, r);
    cells.push(...peers.cells);
  }
  return { rows: [...rows.values()], columns: [...columns.values()], cells };
}

/** A cell as `--json` has it (but its row). */
export function cellJson(column: string, family: Family, path: MatrixPath, verdict: MatrixCell["verdict"], intent: boolean, mismatch: boolean, probe: string, why: string | undefined, before: MatrixCell["before"]): Omit<MatrixCell, "row"> {
  return { column, family, path, verdict, intent: intent ? "allowed" : "not-allowed", mismatch, probe, ...(verdict === "unknown" ? { why } : {}), ...(before ? { before } : {}) };
}

/** A probe's protocol as a packet says it. */
export const probeProtocol = (proto: "tcp" | "udp" | "icmp", family: Family): string => (proto === "icmp" ? (family === 4 ? "icmp" : "icmpv6") : proto);

/** Docker's own rules in this family, as dockerd writes them for these networks and containers (none where it writes none: ip6tables off). */
function dockersOwnRules(p: Policy, family: Family): Ruleset {
  return (dockerWrites(p, family) ? dockersOwn(p, family).rulesets[family] : undefined) ?? { family, tables: [], scope: "full" };
}

/** A walk that notes its tests of the source address and port: the iptables evaluator's over `rs`, or the nftables one's. */
function walker(nft: MatrixContext["nft"], rs: Ruleset): (pk: Packet) => PeerWalk {
  if (nft) {
    const w = nftWalker(nft);
    return (pk) => {
      const r = w(pk);
      return { verdict: r.verdict, ...(r.tests ? { sources: r.tests } : {}), sports: r.sports, ...(r.dests ? { dests: r.dests } : {}) };
    };
  }
  return (pk) => {
    const sources: SourceTest[] = [];
    const sports: PortTest[] = [];
    const dests: DestinationTest[] = [];
    return { verdict: evaluate(rs, pk, { sources, sports, destinations: dests, replies: true }), sources, sports, dests };
  };
}

/** How a row is named for people: its zone (or the containers of a network, or the host), interfaces and sources. */
export function rowLabel(r: MatrixRow): string {
  if (r.kind === "host") return "the host itself";
  if (r.kind === "containers") return `containers of ${r.network} (${r.interfaces.join(",")}): ${r.sources.join(" ")}`;
  return `${r.zone ?? "any other"} in ${r.interfaces.join(",")}: ${r.sources.join(" ")}`;
}

/** A table people read at a glance: one line per row and family, one column per port; open ●, closed ·, unknown ?, a mismatch marked ! */
export function formatMatrix(m: Matrix): string {
  const out: string[] = [];
  const mark = (cs: MatrixCell[]) => {
    if (cs.length === 0) return "";
    return cs.map((c) => `${c.path === "dnat" || c.path === "host" ? "" : c.path[0]}${c.verdict === "open" ? "●" : c.verdict === "closed" ? "·" : "?"}${c.mismatch ? "!" : ""}`).join(" ");
  };
  // The cells of each row, column and family, in their order (one pass: a matrix has hundreds of thousands).
  const at = new Map<string, MatrixCell[]>();
  const rowsOf = { 4: new Set<string>(), 6: new Set<string>() };
  const colsOf = { 4: new Set<string>(), 6: new Set<string>() };
  for (const c of m.cells) {
    const k = `${c.family} ${c.row} ${c.column}`;
    const list = at.get(k);
    if (list) list.push(c);
    else at.set(k, [c]);
    rowsOf[c.family].add(c.row);
    colsOf[c.family].add(c.column);
  }
  for (const family of [4, 6] as const) {
    const rows = m.rows.filter((r) => rowsOf[family].has(r.id));
    if (rows.length === 0) continue;
    const cols = m.columns.filter((c) => colsOf[family].has(c.id));
    out.push(`IPv${family}: ● open  · closed  ? unknown  ! not what the policy says   (d: straight to the container's address, l: 127.0.0.1 routed from a neighbour, or the host's own)`);
    const header = ["from", ...cols.map((c) => c.id)];
    const lines = rows.map((r) => [rowLabel(r), ...cols.map((c) => mark(at.get(`${family} ${r.id} ${c.id}`) ?? []))]);
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => [...l[i]!].length)));
    const pad = (s: string, w: number) => s + " ".repeat(Math.max(0, w - [...s].length));
    out.push(header.map((h, i) => pad(h, widths[i]!)).join("  ").trimEnd());
    for (const l of lines) out.push(l.map((x, i) => pad(x, widths[i]!)).join("  ").trimEnd());
    out.push("");
  }
  const bad = m.cells.filter((c) => c.mismatch);
  out.push(bad.length === 0 ? "every cell is what the policy says" : `${bad.length} cell${bad.length === 1 ? "" : "s"} not what the policy says:`);
  for (const c of bad) out.push(`  ${c.verdict === "open" ? "open, the policy does not allow it" : "closed, the policy allows it"}: ${c.probe} (${c.path})`);
  return out.join("\n") + "\n";
}

/** verify: only the mismatches, in the words a cron mail would use; empty when all is well. */
export function formatMismatches(m: Matrix): string {
  const bad = m.cells.filter((c) => c.mismatch);
  // A cell the evaluator cannot tell is not one that does what the policy says: said too, never taken for either.
  const unknown = m.cells.filter((c) => c.verdict === "unknown");
  if (bad.length === 0 && unknown.length === 0) return "";
  const rowOf = new Map(m.rows.map((r) => [r.id, r]));
  const from = (c: MatrixCell) => {
    const r = rowOf.get(c.row);
    return r?.kind === "host" ? "the host itself" : r?.kind === "containers" ? `the containers of ${r.network}` : (r?.zone ?? "any other source");
  };
  const what = (c: MatrixCell) => (c.verdict === "unknown" ? `cannot tell (${c.why ?? "a match the evaluator does not understand"})` : c.verdict === "open" ? "open, but the policy does not allow it" : "closed, but the policy allows it");
  // One line per cell read as a wall where a broad rule opened much (a review: a hand-made ACCEPT gave thousands). Per
  // row and family, the columns whose cells by the same paths say the same; rows of one zone alike in all of them, one
  // line; a line of one cell as before. `--json` lists every cell.
  interface Part { paths: MatrixPath[]; columns: string[]; cells: MatrixCell[] }
  interface Group { what: string; from: string; family: Family; rows: string[]; parts: Part[] }
  const byRow = new Map<string, { what: string; from: string; family: Family; row: string; byColumn: Map<string, MatrixCell[]> }>();
  for (const c of [...bad, ...unknown]) {
    const key = `${what(c)}\u0000${c.row}\u0000${c.family}`;
    let g = byRow.get(key);
    if (!g) byRow.set(key, (g = { what: what(c), from: from(c), family: c.family, row: c.row, byColumn: new Map() }));
    const cells = g.byColumn.get(c.column);
    if (cells) cells.push(c);
    else g.byColumn.set(c.column, [c]);
  }
  const groups = new Map<string, Group>();
  for (const g of byRow.values()) {
    const parts = new Map<string, Part>();
    for (const [column, cells] of g.byColumn) {
      const paths = cells.map((c) => c.path);
      const part = parts.get(paths.join(","));
      if (part) part.columns.push(column), part.cells.push(...cells);
      else parts.set(paths.join(","), { paths, columns: [column], cells: [...cells] });
    }
    const shape = [...parts.values()].map((x) => `${x.paths.join(",")}:${x.columns.join(",")}`).join(" ");
    const key = `${g.what}\u0000${g.from}\u0000${g.family}\u0000${shape}`;
    const same = groups.get(key);
    if (same) {
      same.rows.push(g.row);
      same.parts.forEach((x, i) => x.cells.push(...[...parts.values()][i]!.cells));
    } else groups.set(key, { what: g.what, from: g.from, family: g.family, rows: [g.row], parts: [...parts.values()] });
  }
  const list = (xs: string[]) => (xs.length <= 6 ? xs.join(", ") : `${xs.slice(0, 6).join(", ")} and ${xs.length - 6} more`);
  // Where a zone is cut into several rows (classes of its sources, its interfaces), which of them.
  // (A row's family is in its id: verify keeps only the cells that are mismatches, and rows without one count too.)
  const familyOf = (r: MatrixRow) => /\/ipv([46])(?::|$)/.exec(r.id)?.[1];
  const rowsOfLabel = new Map<string, MatrixRow[]>();
  for (const r of m.rows) {
    const label = r.kind === "zone" ? r.zone! : r.kind === "other" ? "any other source" : undefined;
    const key = `${label} ${familyOf(r)}`;
    if (label !== undefined) rowsOfLabel.set(key, [...(rowsOfLabel.get(key) ?? []), r]);
  }
  const which = (g: Group) => {
    const all = rowsOfLabel.get(`${g.from} ${g.family}`) ?? [];
    if (all.length < 2) return "";
    const ifaces = new Set(all.flatMap((x) => x.interfaces));
    const rows = g.rows.map((id) => rowOf.get(id)!);
    const on = [...new Set(rows.flatMap((x) => x.interfaces))];
    const where = ifaces.size > 1 ? ` in ${on.join(", ")}` : "";
    // Rows alike in their sources, on several interfaces: those interfaces (a review read "2 classes of its sources" there).
    if (rows.length > 1) return new Set(rows.map((x) => x.sources.join(","))).size === 1 ? ` (${list(rows[0]!.sources)}${where})` : ` (${rows.length} classes of its sources${where})`;
    return ` (${list(rows[0]!.sources)}${where})`;
  };
  const lines: string[] = [];
  let folded = false;
  for (const g of groups.values()) {
    for (const part of g.parts) {
      const c = part.cells[0]!;
      if (part.cells.length === 1) {
        lines.push(`${g.what}: ${c.column} (${c.path}, IPv${c.family}) from ${g.from}${which(g)}: dockwall explain --live POLICY '${c.probe}'`);
        continue;
      }
      folded = true;
      const columns = part.columns.length === 1 ? part.columns[0]! : `${part.columns.length} columns, ${list(part.columns)}`;
      lines.push(`${g.what}: ${columns} (${part.paths.join(", ")}, IPv${g.family}) from ${g.from}${which(g)}, ${part.cells.length} cells: e.g. dockwall explain --live POLICY '${c.probe}'`);
    }
  }
  const head = [bad.length ? `${bad.length} cell${bad.length === 1 ? "" : "s"} of the loaded rules not what the policy says` : "", unknown.length ? `${unknown.length} cell${unknown.length === 1 ? "" : "s"} it cannot tell` : ""].filter(Boolean).join(", and ");
  return `${head}:\n${lines.join("\n")}\n${folded ? "(each cell, with its packet: dockwall verify POLICY --json)\n" : ""}`;
}

/** Something verify found that is not a cell: the host routing what no `forward` statement allows. */
export interface Finding {
  family: Family;
  message: string;
}

/**
 * verify: FORWARD's policy in each family the host forwards. The policy's words take it to be DROP
 * ("Docker sets the FORWARD policy to DROP"): `forward` statements are how the host routes. But
 * dockerd leaves ACCEPT when forwarding was on before it started (and for IPv6 before 28, or
 * with ip6tables off), and with `iptables on` dockwall does not own it: the host then routes
 * between its interfaces whatever no `forward` allows — outside the matrix's cells, which are
 * the containers' ports and the host's services. Loaded rules with FORWARD's policy ACCEPT and
 * no rule that drops what it does not accept, in a family the kernel forwards (`forwarding`), is
 * a finding.
 */
export function forwardPolicyFindings(p: Policy, rulesets: Partial<Record<Family, Ruleset>>, forwarding: Partial<Record<Family, boolean>>): Finding[] {
  const out: Finding[] = [];
  for (const family of [4, 6] as const) {
    if (!forwarding[family]) continue;
    const chain = rulesets[family]?.tables.find((t) => t.name === "filter")?.chains.find((c) => c.name === "FORWARD");
    // No FORWARD at all (no filter table loaded): the kernel accepts, as with policy ACCEPT. A rule that drops or
    // rejects every packet (a comment aside; or a jump to a chain that does, first) stands for the policy.
    const chains = rulesets[family]?.tables.find((t) => t.name === "filter")?.chains ?? [];
    const catchAll = (r: Rule, depth = 0): boolean =>
      !r.in && !r.out && !r.src && !r.dst && (!r.proto || r.proto === "all") && r.matches.every((m) => moduleView(m).module === "comment") &&
      (r.target === "DROP" || r.target === "REJECT" || (depth === 0 && chains.some((c) => c.name === r.target && !c.builtin && c.rules[0] !== undefined && catchAll(c.rules[0], 1))));
    if (chain && (chain.policy !== "ACCEPT" || chain.rules.some((r) => catchAll(r)))) continue;
    const sysctl = family === 4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding";
    const tool = family === 4 ? "iptables" : "ip6tables";
    out.push({
      family,
      message: `IPv${family}: FORWARD's policy is ACCEPT and the host forwards (${sysctl} = 1): it routes between its interfaces whatever no 'forward' statement allows (dockerd leaves ACCEPT when forwarding was on before it started). ${
        !p.docker.iptables
          ? `'dockwall apply' puts back the DROP the policy compiles to`
          : dockerWrites(p, family)
            ? `'dockwall apply' sets it to DROP, as the iptables and ferm outputs do (or '${tool} -P FORWARD DROP'); Docker's own rules still pass its networks' traffic, and 'forward' statements what they name`
            : `'dockwall apply' sets it to DROP, its DOCKER-USER then accepting what dockerd (writing no IPv6 rules here, ip6tables off) would let through; a '${tool} -P FORWARD DROP' alone would stop its networks' IPv6 traffic too`
      }`,
    });
  }
  return out;
}

/**
 * verify: Docker's DNAT rules out of step with Docker (`iptables off`, where dockwall writes them):
 * a loaded DNAT rule the compiled rules do not have, for a container gone. Docker hands its address
 * to the next container, which the stale rule then reaches on a port it never published (a review,
 * real dockerd 20.10: `docker rm -f web`, then `docker run other`, and the lan reached other on web's
 * port; verify was silent, its columns being the ports published now). One finding per such rule,
 * naming the container that has the address now. Without `dockwall watch`, which keeps the rules in
 * step, this is what happens between a container going and the next apply.
 */
export function staleDnatFindings(p: Policy, compiled: Partial<Record<Family, Ruleset>>, loaded: Partial<Record<Family, Ruleset>>): Finding[] {
  if (p.docker.iptables) return [];
  const out: Finding[] = [];
  for (const family of [4, 6] as const) {
    const want = dnats(compiled[family]);
    const have = dnats(loaded[family]);
    for (const [key, text] of have) {
      if (want.has(key)) continue;
      const to = dnatAddress(text);
      const now = to ? p.containers.find((c) => c.endpoints.some((e) => e.addresses.some((a) => formatIp(a.value) === to))) : undefined;
      const tool = family === 4 ? "iptables" : "ip6tables";
      out.push({
        family,
        message: `IPv${family}: a DNAT rule no running container publishes, loaded: '${text}'${to ? ` (${to} is ${now ? `container ${now.name}'s now: it reaches ${now.name}` : "no running container's now"})` : ""}. Docker gives a freed address to the next container; 'dockwall apply' takes the rule away ('dockwall watch' keeps the rules in step as containers come and go), or '${tool} -t nat -D ${text.replace(/^-A /, "")}'`,
      });
    }
  }
  return out;
}

/**
 * The same on an nftables host (`iptables off`, `--format nft`: Docker's tables are dockwall's to
 * keep): a DNAT of Docker's tables (`ip`/`ip6 docker-bridges`) to a container's address and port
 * that no running container's binding makes: each binding as Docker 29.7 writes it (docker/nft29.ts),
 * its host port, its host address (`ip daddr`, none for every address) and the bridge it is not
 * taken from (`iifname !=`, none with userland-proxy off). A rule that matches more than its
 * binding (every address where the binding is 127.0.0.1's: a review found the lan reaching the
 * container through the host's own address, and verify silent) is one no container makes. Other
 * matches only narrow a rule. Rules it cannot read as one port to one address (a range, a set) are
 * not judged.
 */
export function staleNftDnatFindings(p: Policy, rs: import("./nfteval.js").NftRuleset): Finding[] {
  if (p.docker.iptables) return [];
  const layout = layoutFor(p.docker.version?.value);
  const out: Finding[] = [];
  for (const t of rs.tables) {
    if (t.name !== "docker-bridges" || (t.family !== "ip" && t.family !== "ip6")) continue;
    const family: Family = t.family === "ip" ? 4 : 6;
    const plan = layout ? makePlan(p, family, layout) : undefined;
    const made = new Set<string>();
    const bound = new Map<string, PortPlan[]>();
    for (const c of plan?.containers ?? []) {
      for (const b of c.ports) {
        made.add(nftDnatKey(b.proto, b.hostPort, b.containerIp, b.containerPort, b.hostIp, plan!.userlandProxy ? b.network.bridge : undefined));
        const to = `${b.containerIp} ${b.containerPort} ${b.proto} ${b.hostPort}`;
        bound.set(to, [...(bound.get(to) ?? []), b]);
      }
    }
    for (const c of t.chains.values()) {
      for (const r of c.rules) {
        const dnat = r.expr.map((x) => (x as { dnat?: { addr?: unknown; port?: unknown } }).dnat).find((x) => x !== undefined);
        if (!dnat || typeof dnat.addr !== "string" || typeof dnat.port !== "number") continue;
        type Match = { op?: string; left?: { payload?: { protocol?: string; field?: string }; meta?: { key?: string } }; right?: unknown };
        const matches = r.expr.map((x) => (x as { match?: Match }).match).filter((m): m is Match => m !== undefined);
        const ports = matches.filter((m) => m.op === "==" && m.left?.payload?.field === "dport" && (m.left.payload.protocol === "tcp" || m.left.payload.protocol === "udp"));
        if (ports.length !== 1 || typeof ports[0]!.right !== "number") continue;
        // (The host address and the bridge as the rule reads them: one address, one name, or none; any other spelling is no binding's.)
        const daddr = matches.filter((m) => m.left?.payload?.field === "daddr" && m.left.payload.protocol === t.family);
        const iif = matches.filter((m) => m.left?.meta?.key === "iifname");
        const one = (ms: Match[], op: string) => (ms.length === 0 ? undefined : ms.length === 1 && ms[0]!.op === op && typeof ms[0]!.right === "string" ? ms[0]!.right : null);
        const hostIp = one(daddr, "==");
        const bridge = one(iif, "!=");
        const proto = ports[0]!.left!.payload!.protocol!;
        if (hostIp !== null && bridge !== null && made.has(nftDnatKey(proto, ports[0]!.right, dnat.addr, dnat.port, hostIp, bridge))) continue;
        const now = p.containers.find((x) => x.endpoints.some((e) => e.addresses.some((a) => formatIp(a.value) === dnat.addr)));
        // The container at that address publishing this port another way: what it publishes, as the rule is not that.
        const same = bound.get(`${dnat.addr} ${dnat.port} ${proto} ${ports[0]!.right}`) ?? [];
        const on = same.some((b) => !b.hostIp) ? "on every address" : `on ${[...new Set(same.map((b) => b.hostIp))].join(" and ")} only`;
        const as = same.length ? `, which publishes ${proto} ${ports[0]!.right} ${on}${plan?.userlandProxy ? ` from other interfaces than ${same[0]!.network.bridge}` : ""}` : "";
        out.push({
          family,
          message: `IPv${family}: a DNAT rule no running container publishes, loaded in ${t.family} ${t.name} ${c.name}: '${r.text}' (${dnat.addr} is ${now ? `container ${now.name}'s now: it reaches ${now.name}${as}` : "no running container's now"}). Docker gives a freed address to the next container; 'dockwall apply -f nft' takes the rule away ('dockwall watch -f nft' keeps the tables in step as containers come and go)`,
        });
      }
    }
  }
  return out;
}

/** A DNAT of Docker's nftables tables by what decides where it leads: protocol, host port, target, host address (none: every one), bridge excluded (none: none). */
function nftDnatKey(proto: string, hostPort: number, addr: string, port: number, hostIp: string | undefined, bridge: string | undefined): string {
  return `${proto} ${hostPort} ${addr} ${port} ${hostIp ?? "*"} ${bridge ?? "*"}`;
}

/**
 * verify, userland-proxy off: dockerd's own socket on a published port completes a TCP handshake
 * and never answers, so a connection it takes is no cell's (none reaches a container), and a
 * guard gone (INPUT's jump to DOCKWALL-PROXY deleted, the chain emptied) left the port open to a
 * port scan from anyone with verify silent (a second review). Where the compiled rules guard it,
 * the loaded ones must too: INPUT jumps to the chain, and the chain holds the compiled rules.
 */
export function socketGuardFindings(p: Policy, compiled: Partial<Record<Family, Ruleset>>, loaded: Partial<Record<Family, Ruleset>>): Finding[] {
  if (p.docker.userlandProxy) return [];
  const out: Finding[] = [];
  for (const family of [4, 6] as const) {
    const want = compiled[family]?.tables.find((t) => t.name === "filter")?.chains.find((c) => c.name === PROXY_CHAIN);
    if (!want) continue;
    const filter = loaded[family]?.tables.find((t) => t.name === "filter");
    const jumps = filter?.chains.find((c) => c.name === "INPUT")?.rules.some((r) => r.target === PROXY_CHAIN) ?? false;
    const have = filter?.chains.find((c) => c.name === PROXY_CHAIN);
    // (Each rule by its canonical spelling, as diff reads rules.)
    const keys = (rules: Rule[]) => [...(parseSave(`*filter\n:${PROXY_CHAIN} - [0:0]\n${rules.map((r) => ruleText(PROXY_CHAIN, r)).join("\n")}\nCOMMIT\n`).get("filter")?.chains.get(PROXY_CHAIN)?.rules ?? [])].map((r) => r.key).join("\n");
    if (jumps && have && keys(have.rules) === keys(want.rules)) continue;
    const tool = family === 4 ? "iptables" : "ip6tables";
    out.push({
      family,
      message: `IPv${family}: ${!have ? `no chain ${PROXY_CHAIN}` : !jumps ? `INPUT does not jump to ${PROXY_CHAIN}` : `${PROXY_CHAIN} is not what the policy compiles to`}: with userland-proxy off, dockerd holds each published port with a socket of its own that completes a TCP handshake from anyone it is not guarded from (and never answers). 'dockwall apply' puts the guard back (or '${tool} -I INPUT -j ${PROXY_CHAIN}' where only the jump is gone)`,
    });
  }
  return out;
}

/** The DNAT rules of a rule set's nat table in Docker's chains, by their canonical spelling (as diff reads rules), with their text. */
/**
 * verify: a DNAT rule outside Docker's chains that the policy does not load (another tool's, a
 * hand's), to a container's address: it leads packets to the container by a way no cell walks (a
 * review: one with an accept of `ctstate DNAT` let the wan reach a container that publishes
 * nothing, and verify was silent). Another tool's port forward elsewhere (to a VM) is its own.
 */
export function foreignDnatFindings(p: Policy, expected: Partial<Record<Family, Ruleset>>, loaded: Partial<Record<Family, Ruleset>>): Finding[] {
  const out: Finding[] = [];
  for (const family of [4, 6] as const) {
    const want = dnats(expected[family], false);
    for (const [key, text] of dnats(loaded[family], false)) {
      if (want.has(key)) continue;
      const to = dnatAddress(text);
      const c = to ? p.containers.find((x) => x.endpoints.some((e) => e.addresses.some((a) => formatIp(a.value) === to))) : undefined;
      if (!c) continue;
      out.push({ family, message: `IPv${family}: a DNAT rule the policy does not load leads to container ${c.name} (${to}): '${text}'. The cells do not walk through it: ask about its packets with 'dockwall explain --live POLICY PACKET'` });
    }
  }
  return out;
}

/** The address a DNAT rule's text leads to (`--to-destination [ADDR]:PORT`). */
const dnatAddress = (text: string): string | undefined => /--to-destination \[?([0-9a-fA-F:.]+?)\]?(?::\d+)?(?:\s|$)/.exec(text)?.[1];

function dnats(rs: Ruleset | undefined, dockers = true): Map<string, string> {
  const nat = rs?.tables.find((t) => t.name === "nat");
  const out = new Map<string, string>();
  if (!nat) return out;
  const lines: string[] = [];
  // Docker's chains only (DOCKER, and whatever a layout names DOCKER-…): another tool's port forward is not Docker's to keep. (Or
  // every other chain's: foreignDnatFindings.)
  for (const c of nat.chains) if (c.name.startsWith("DOCKER") === dockers) for (const r of c.rules) if (r.target === "DNAT") lines.push(ruleText(c.name, r));
  if (!lines.length) return out;
  const saved = parseSave(`*nat\n${nat.chains.map((c) => `:${c.name} - [0:0]`).join("\n")}\n${lines.join("\n")}\nCOMMIT\n`).get("nat");
  for (const c of saved?.chains.values() ?? []) for (const r of c.rules) out.set(`${c.name} ${r.key}`, r.text);
  return out;
}

/**
 * verify: the host as a router, walked. For each ordered pair of zones on interfaces of their
 * own (not Docker's bridges), a new TCP connection from a source of the first to an address the
 * host routes out through the second, walked through the loaded rules (`walk`: the iptables
 * evaluator, or the nftables one): open where no `forward` statement allows it, or closed where
 * one does, is a finding; one the walk cannot tell, too. The destination is taken from the
 * host's routes (`host.routes`): a pair whose second interface has none is not walked.
 */
export function routingFindings(
  p: Policy,
  walk: (pk: Packet) => Walked,
  host: { addresses: string[]; routes: { dst: string; dev: string }[] },
  families: Family[],
  policyName: string,
): { findings: Finding[]; walked: number } {
  const findings: Finding[] = [];
  let walked = 0;
  const bridges = new Set(p.networks.map((n) => n.bridge.value));
  const zones = p.zones.filter((z) => !z.builtin && z.interfaces.length > 0);
  const byName = new Map(p.zones.map((z) => [z.name, z]));
  for (const family of families) {
    const dstVia = (dev: string): string | undefined => {
      for (const r of host.routes) {
        if (r.dev !== dev) continue;
        if (r.dst === "default") return family === 4 ? "203.0.113.99" : "2001:db8:ffff::99";
        const c = parseCidr(r.dst);
        if (isError(c) || c.family !== family || c.prefix >= (family === 4 ? 31 : 127)) continue;
        const ip = formatIp({ family, value: c.value + 7n });
        if (!host.addresses.includes(ip)) return ip;
      }
      return undefined;
    };
    // Where a connection can come from: each zone's source on each of its interfaces, and a source in no zone on a
    // zone's interface (one every zone there narrows away with `from`: no statement can let it be routed).
    const standIn: Ip = { family, value: family === 4 ? 0xc0000277n : 0x20010db8000000000000000000000277n };
    const origins: { zone?: Zone; label: string; ia: string; from: Ip }[] = [];
    const usable = (i: string) => !i.endsWith("+") && !bridges.has(i);
    for (const a of zones) {
      const src = a.sources.find((x) => (x.value.kind === "cidr" ? x.value.cidr.family : x.value.range.family) === family);
      if (a.sources.length && !src) continue;
      const from = src ? representative(rangeOf(src.value), family) : standIn;
      for (const ia of a.interfaces.map((i) => i.value).filter(usable)) origins.push({ zone: a, label: a.name, ia, from });
    }
    for (const ia of [...new Set(zones.flatMap((z) => z.interfaces.map((i) => i.value)))].filter(usable)) {
      if (!zones.some((z) => z.interfaces.some((i) => i.value === ia) && inZone(z, ia, standIn))) origins.push({ label: "a source in no zone", ia, from: standIn });
    }
    for (const o of origins) {
      for (const b of zones) {
        if (o.zone === b) continue;
        for (const ib of b.interfaces.map((i) => i.value).filter((i) => usable(i) && i !== o.ia)) {
          const dst = dstVia(ib);
          if (!dst) continue;
          const srcText = formatIp(o.from);
          const pk: Packet = { family, in: o.ia, src: srcText, dst, proto: "tcp", sport: 40001, dport: 40000, state: "NEW", local: host.addresses, routes: host.routes };
          walked++;
          const v = walk(pk);
          const allowed = o.zone !== undefined && p.forwards.some((f) => f.to.some((t) => byName.get(t.name) === b) && admits(byName, f.zones, f.sources, o.ia, o.from));
          const probe = `tcp ${fmtAddr(srcText, 40001)} -> ${fmtAddr(dst, 40000)} in ${o.ia}`;
          const where = `${o.label} (${o.ia}) to ${b.name} (${ib}), IPv${family}: dockwall explain --live ${policyName} '${probe}'`;
          if (v.verdict === "unknown") findings.push({ family, message: `cannot tell (${v.why ?? "a match the evaluator does not understand"}) whether the host routes ${where}` });
          else if (v.verdict === "ACCEPT" && v.path === "forward" && !allowed) findings.push({ family, message: `routed, but no 'forward' statement allows it: ${where}` });
          else if (allowed && !(v.verdict === "ACCEPT" && v.path === "forward")) findings.push({ family, message: `not routed, but a 'forward' statement allows it: ${where}` });
        }
      }
    }
  }
  return { findings, walked };
}
