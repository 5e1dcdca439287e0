// A packet evaluator over an nftables ruleset as `nft -j list ruleset` prints it: the same
// questions evaluate.ts answers for iptables rules (what becomes of this packet, which rule
// decided, which rules it met), for hosts that filter with nftables: Docker 29's tables
// (`ip`/`ip6 docker-bridges`), dockwall's own `inet dockwall`, a host's nftables.conf tables.
// Tests prove its verdicts and its traces against the kernel's.
//
// How the kernel runs nftables, and what this follows:
// - A hook runs every base chain of every table of a matching family (ip or inet for IPv4, ip6
//   or inet for IPv6) in ascending priority; at equal priority the chain registered last runs
//   first (estimated here as the newest table, then the newest chain: the JSON has no clock).
// - `accept` ends only the base chain it is in: the packet goes on to the next base chain of
//   the hook, in any table. `drop` (and `reject`) are final. Off the end of a base chain (or a
//   `return` in it) its policy applies; off the end of a regular chain the walk returns.
// - nat chains do not run at their own priority: the nat core runs all nat chains of a hook at
//   its own (-100 for prerouting and output, 100 for postrouting and input), ordered among
//   themselves by their priorities, and only for a connection's first packet; the first chain
//   that NATs ends the group. A NAT statement is itself a verdict: accept.
// - Before conntrack (prerouting or output below priority -200) `ct state` is invalid and every
//   other `ct` expression matches nothing, `!=` included.
// - An expression carries its protocol's dependency (`tcp dport != 22` is false for UDP, `ip
//   saddr` false for IPv6), as nft adds it when it loads the rule.
// Pure. A match or statement it cannot evaluate makes the answer "unknown" naming it, never a guess.
import { readIp } from "../ir/address.js";
import { keyOf as numKey, loopbackLeaves, loopbackOut, martianWhy, replyOf, type DestinationTest, type Packet, type SourceTest } from "./evaluate.js";
import { PortList } from "../ir/match.js";
import type { MatrixContext } from "./matrix.js";

/** JSON as nft prints it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

export interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  /** Its position in the chain, from 0. */
  index: number;
  /** the rule as nft prints it (for messages), best effort */
  text: string;
  /** Its expressions and statements, as nft -j lists them. */
  expr: Json[];
  comment?: string;
}

/** What makes a chain a base chain: where it hooks in and what ends it. */
export interface NftHook {
  type: string;
  hook: string;
  prio: number;
  policy: "accept" | "drop";
  /** netdev ingress/egress: the devices. */
  devices?: string[];
}

export interface NftChain {
  family: string;
  table: string;
  name: string;
  handle: number;
  base?: NftHook;
  rules: NftRule[];
}

export interface NftSet {
  name: string;
  /** Key type(s): one per part of a concatenation. */
  type: string[];
  /** A map's value type ("verdict" for a verdict map). */
  map?: string;
  flags: string[];
  elem: Json[];
}

export interface NftTable {
  family: string;
  name: string;
  handle: number;
  /** `flags dormant`: the table filters nothing (nft 1.0.6's JSON does not say it: the caller reads it from the listing). */
  dormant?: boolean;
  chains: Map<string, NftChain>;
  sets: Map<string, NftSet>;
}

export interface NftRuleset {
  tables: NftTable[];
}

export interface NftStep {
  family: string;
  table: string;
  chain: string;
  /** -1: the base chain's policy. */
  index: number;
  handle?: number;
  action: "jump" | "goto" | "dnat" | "snat" | "notrack" | "accept" | "drop" | "reject" | "return" | "policy";
  text?: string;
}

export interface NftVerdict {
  verdict: "ACCEPT" | "DROP" | "REJECT" | "unknown";
  path: "input" | "forward" | "output";
  dnat?: { addr: string; port?: number };
  /** Source NAT in postrouting (or input): recorded, it decides nothing. */
  snat?: { addr?: string; port?: number; masquerade?: boolean };
  /** the rule (or base chain policy, index -1) that decided it: a drop/reject, or for ACCEPT the last accept (or policy accept) of a filter base chain on the path */
  decided?: NftStep;
  /** for unknown: names the expression/statement it cannot evaluate, e.g. "meta mark" or "limit rate" */
  why?: string;
  /** Dropped by Linux itself, not by a rule (`decided` is none): why (evaluate.ts loopbackOut). */
  kernel?: string;
  /** with {trace: true}: every rule that changed or decided the packet (and every base chain policy reached), in the kernel's order */
  steps?: NftStep[];
  /** With {replies: true}: the packet gets through, but the connection's first reply is dropped (by `decided`). */
  reply?: boolean;
  /** The connection's later packets from the side that opened it (its ACK, its data) are dropped (by `decided`): no connection. */
  later?: boolean;
  /** With reply: not dropped but taken out of conntrack (`decided` is the notrack), so not translated back: no connection either. */
  untracked?: boolean;
  /**
   * With reply: the replies after the first are dropped (by `decided`), a TCP connection whose own packets are not tracked:
   * conntrack takes them for a new connection of their own (loose pickup), new.
   */
  replyLoose?: boolean;
  /**
   * With reply: not dropped but DNATed elsewhere (by `decided`), away from the connection's client: the replies (the UDP
   * reply, a TCP connection's replies after the first: replyLoose) of a connection whose own packets are not tracked.
   */
  replyDnat?: boolean;
  /** A loose reply walked (asReply.loose): a `tcp flags` test read its flags. */
  flagsRead?: boolean;
  /** A reply walked (asReply): the rule that took it out of conntrack, if one did. */
  notrack?: NftStep;
}

/**
 * The tests of the packet's source address a walk made (the matrix's sameWay, as evaluate.ts notes
 * them for iptables rules): each comparison of the source (`ip saddr`, `ct original ip saddr`, in a
 * reply its destination) with an address, a prefix, a range or a set's elements, and whether it is
 * one of the host's (`fib saddr type local`), as ranges and their answers. `poisoned`: read in a
 * way a range cannot say (a mask, an order comparison): the walk is good for its own source only.
 */
export interface NftRecord {
  tests: SourceTest[];
  poisoned: boolean;
  /** Set by the walk that noted them: a walk that did not (a caller's own) leaves it unset, and its tests are not taken for none. */
  noted?: boolean;
  /**
   * Given (an array): the tests of the address the packet was first sent to (one of the host's, in a matrix cell of several)
   * are noted there too, as evaluate.ts notes them for iptables rules (sameDestination): each comparison of it before any DNAT
   * (`ip daddr`, a set's or a map's elements, `fib daddr type local`, `ct original ip daddr`; in the reply of a connection
   * nothing translated, its source), a long chain's index by it, and whether it is the host's own or loopback (the packet's
   * way). `destPoisoned`: read in a way a range cannot say (a mask, an order comparison, a route): good for its own address only.
   */
  dests?: DestinationTest[];
  destPoisoned?: boolean;
}

class Unknown extends Error {
  /** A packet from outside to loopback (evaluate.ts loopbackFromOutside). */
  martian?: boolean;
}

const isObj = (j: Json | undefined): j is Obj => typeof j === "object" && j !== null && !Array.isArray(j);
const str = (j: Json | undefined): string | undefined => (typeof j === "string" ? j : undefined);
const num = (j: Json | undefined): number | undefined => (typeof j === "number" ? j : undefined);
/** The one key of an object such as `{"accept": null}` or `{"payload": {…}}`. */
const keyOf = (j: Json): string | undefined => (isObj(j) ? Object.keys(j)[0] : undefined);

// ------------------------------------------------------------------ parsing ----

/** Standard priority names, should a listing print a name instead of the number. */
const PRIORITY: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100, out: 100 };

/** A ruleset from `nft -j list ruleset` (or `nft -j list table …`). */
export function parseNftJson(json: string): NftRuleset {
  const doc = JSON.parse(json) as Json;
  // Anything else would read as an empty ruleset, which accepts every packet.
  if (!isObj(doc) || !Array.isArray(doc.nftables)) throw new Error('not a listing of `nft -j list ruleset`: no "nftables" array');
  const items = doc.nftables;
  const tables: NftTable[] = [];
  const tableOf = (o: Obj): NftTable => {
    const family = str(o.family) ?? "";
    const name = str(o.table) ?? "";
    let t = tables.find((x) => x.family === family && x.name === name);
    if (!t) tables.push((t = { family, name, handle: 0, chains: new Map(), sets: new Map() }));
    return t;
  };
  for (const item of items) {
    if (!isObj(item)) continue;
    const [kind, body] = Object.entries(item)[0] ?? [];
    if (!kind || !isObj(body)) continue;
    if (kind === "table") {
      const t = tableOf({ family: body.family ?? "", table: body.name ?? "" });
      t.handle = num(body.handle) ?? 0;
      if ([body.flags].flat().includes("dormant")) t.dormant = true;
    } else if (kind === "chain") {
      const t = tableOf(body);
      const name = str(body.name) ?? "";
      const chain: NftChain = { family: t.family, table: t.name, name, handle: num(body.handle) ?? 0, rules: t.chains.get(name)?.rules ?? [] };
      if (typeof body.hook === "string") chain.base = hookOf(body);
      t.chains.set(name, chain);
    } else if (kind === "set" || kind === "map") {
      const t = tableOf(body);
      const name = str(body.name) ?? "";
      const type = Array.isArray(body.type) ? body.type.map(String) : [String(body.type ?? "")];
      const map = body.map === undefined ? undefined : Array.isArray(body.map) ? body.map.join(" . ") : String(body.map);
      const flags = Array.isArray(body.flags) ? body.flags.map(String) : [];
      t.sets.set(name, { name, type, map, flags, elem: Array.isArray(body.elem) ? body.elem : [] });
    } else if (kind === "rule") {
      const t = tableOf(body);
      const name = str(body.chain) ?? "";
      let chain = t.chains.get(name);
      if (!chain) t.chains.set(name, (chain = { family: t.family, table: t.name, name, handle: 0, rules: [] }));
      const expr = Array.isArray(body.expr) ? body.expr : [];
      const comment = str(body.comment);
      chain.rules.push({ family: t.family, table: t.name, chain: name, handle: num(body.handle) ?? 0, index: chain.rules.length, text: ruleText(expr, comment), expr, comment });
    }
  }
  return { tables };
}

function hookOf(body: Obj): NftHook {
  const p = body.prio;
  const prio = typeof p === "number" ? p : typeof p === "string" && p in PRIORITY ? PRIORITY[p]! : NaN;
  const dev = body.dev;
  return {
    type: str(body.type) ?? "filter",
    hook: str(body.hook) ?? "",
    prio,
    policy: body.policy === "drop" ? "drop" : "accept",
    devices: typeof dev === "string" ? [dev] : Array.isArray(dev) ? dev.map(String) : undefined,
  };
}

// ------------------------------------------------------------ printing ----

/** An expression as nft prints it (best effort: for messages only; an object's text made once: a matrix asks for it millions of times). */
export function exprText(e: Json): string {
  if (e === null || typeof e !== "object") return textOf(e);
  let t = texts.get(e);
  if (t === undefined) texts.set(e, (t = textOf(e)));
  return t;
}
const texts = new WeakMap<object, string>();

function textOf(e: Json): string {
  if (e === null) return "";
  if (typeof e === "string") return e.startsWith("@") ? e : /^[\w.:/-]+$/.test(e) ? e : JSON.stringify(e);
  if (typeof e === "number" || typeof e === "boolean") return String(e);
  if (Array.isArray(e)) return e.map(exprText).join(",");
  const [k, v] = Object.entries(e)[0] ?? ["", null];
  const o = isObj(v) ? v : {};
  switch (k) {
    case "payload":
      return o.protocol !== undefined ? `${str(o.protocol)} ${str(o.field)}` : `@${str(o.base)},${num(o.offset)},${num(o.len)}`;
    case "meta":
      return ["iifname", "oifname", "iif", "oif"].includes(str(o.key) ?? "") ? String(o.key) : `meta ${str(o.key)}`;
    case "ct":
      return `ct ${o.dir ? `${str(o.dir)} ` : ""}${str(o.key)}`;
    case "fib":
      return `fib ${(Array.isArray(o.flags) ? o.flags : [o.flags]).map(String).join(" . ")} ${str(o.result)}`;
    case "concat":
      return Array.isArray(v) ? v.map(exprText).join(" . ") : "";
    case "prefix":
      return `${str(o.addr)}/${num(o.len)}`;
    case "range":
      return Array.isArray(v) ? v.map(exprText).join("-") : "";
    case "set":
      return Array.isArray(v) ? `{ ${v.map((x) => (Array.isArray(x) ? `${exprText(x[0] ?? null)} : ${exprText(x[1] ?? null)}` : exprText(x))).join(", ")} }` : "";
    case "elem":
      return exprText(o.val ?? null);
    case "&":
    case "|":
    case "^":
      return Array.isArray(v) ? v.map(exprText).join(` ${k} `) : "";
    case "map":
      return `${exprText(o.key ?? null)} map ${exprText(o.data ?? null)}`;
    case "jump":
    case "goto":
      return `${k} ${str(o.target)}`;
    default:
      // socket, rt, osf, numgen, exthdr…: their name and key.
      return v === null ? k : typeof o.key === "string" ? `${k} ${o.key}` : `${k} ${exprText(v)}`;
  }
}

/** One statement as nft prints it (best effort). */
function stmtText(s: Json): string {
  const [k, v] = isObj(s) ? (Object.entries(s)[0] ?? ["", null]) : ["", null];
  const o = isObj(v) ? v : {};
  switch (k) {
    case "match": {
      const op = str(o.op) ?? "==";
      // nft leaves out `==` but after a bitwise expression (`ip saddr & 0.0.0.255 == 0.0.0.7`).
      const binop = isObj(o.left) && ["&", "|", "^"].some((b) => b in (o.left as Obj));
      return `${exprText(o.left ?? null)} ${(op === "==" && !binop) || op === "in" ? "" : `${op} `}${exprText(o.right ?? null)}`;
    }
    case "vmap":
      return `${exprText(o.key ?? null)} vmap ${exprText(o.data ?? null)}`;
    case "counter":
      return "counter";
    case "dnat":
    case "snat": {
      const fam = o.family ? `${str(o.family)} ` : "";
      const addr = o.addr === undefined ? "" : exprText(o.addr);
      const port = o.port === undefined ? "" : `:${exprText(o.port)}`;
      return `${k} ${fam}to ${addr.includes(":") && port ? `[${addr}]` : addr}${port}`;
    }
    case "mangle":
      return `${exprText(o.key ?? null)} set ${exprText(o.value ?? null)}`;
    case "log":
      return o.prefix ? `log prefix ${JSON.stringify(o.prefix)}` : "log";
    case "reject":
      return o.type ? `reject with ${str(o.type)}${o.expr ? ` ${exprText(o.expr)}` : ""}` : "reject";
    case "limit":
      return `limit rate ${num(o.rate)}/${str(o.per)}`;
    case "xt":
      return `xt ${str(o.type)} ${str(o.name)}`;
    default:
      return exprText(s);
  }
}

function ruleText(expr: Json[], comment?: string): string {
  return [...expr.map(stmtText), ...(comment ? [`comment ${JSON.stringify(comment)}`] : [])].filter(Boolean).join(" ");
}

// ------------------------------------------------------------ addresses ----

/** An address as its family and number (cached: a matrix asks about the same few thousands of times). */
interface Addr {
  v6: boolean;
  n: bigint;
  /** `4/N` or `6/N`: its key in a chain's index (made once: a bigint's text is made anew each time). */
  key: string;
}
const addrCache = new Map<string, Addr | null>();
/** The same address, however written. */
function sameAddr(a: string, b: string): boolean {
  const x = addrOf(a);
  const y = addrOf(b);
  return x !== undefined && y !== undefined && x.v6 === y.v6 && x.n === y.n;
}

function addrOf(text: string): Addr | undefined {
  let a = addrCache.get(text);
  if (a === undefined) {
    if (addrCache.size > 100_000) addrCache.clear();
    const t = text.replace(/^\[|\]$/g, "");
    const ip = readIp(t);
    a = ip ? { v6: ip.family === 6, n: ip.value, key: `${ip.family}/${ip.value}` } : null;
    addrCache.set(text, a);
  }
  return a ?? undefined;
}
const width = (v6: boolean) => (v6 ? 128 : 32);
function inPrefix(a: Addr, net: string, len: number): boolean {
  const n = addrOf(net);
  if (!n || n.v6 !== a.v6) return false;
  const shift = BigInt(width(a.v6) - len);
  return a.n >> shift === n.n >> shift;
}

/** Addressed to the host itself: one of its addresses, or loopback (each address asked once per list of the host's addresses). */
function isLocal(p: Packet, addr: string): boolean {
  let known = localTables.get(p.local);
  if (!known) localTables.set(p.local, (known = new Map()));
  let v = known.get(addr);
  if (v === undefined) {
    const a = addrOf(addr);
    v =
      a !== undefined &&
      (p.local.some((l) => {
        const n = addrOf(l);
        return n !== undefined && n.v6 === a.v6 && n.n === a.n;
      }) ||
        (a.v6 ? a.n === 1n : inPrefix(a, "127.0.0.0", 8)));
    if (known.size > 100_000) known.clear();
    known.set(addr, v);
  }
  return v;
}
const localTables = new WeakMap<Packet["local"], Map<string, boolean>>();

/** The interface of the longest route that holds `addr`; undefined: no route known. */
function routeOf(p: Packet, addr: string): string | undefined {
  // (A matrix's packets share one list of routes and ask for the same few addresses millions of times: each list's routes are
  // read once, and each address's route looked up once.)
  const list = p.routes ?? NO_ROUTES;
  let t = routeTables.get(list);
  if (!t) routeTables.set(list, (t = { routes: list.map((r) => ({ dev: r.dev, ...routeNet(r.dst) })), found: new Map() }));
  if (t.found.has(addr)) return t.found.get(addr);
  const a = addrOf(addr);
  let best: { dev: string; len: number } | undefined;
  if (a) {
    for (const r of t.routes) {
      // ("default": the default route of the address's family.)
      const net = r.net === "default" ? { v6: a.v6, n: 0n, key: "" } : r.net;
      if (!net || net.v6 !== a.v6) continue;
      const len = r.len ?? width(a.v6);
      const shift = BigInt(width(a.v6) - len);
      if (a.n >> shift === net.n >> shift && (!best || len > best.len)) best = { dev: r.dev, len };
    }
  }
  if (t.found.size > 100_000) t.found.clear();
  t.found.set(addr, best?.dev);
  return best?.dev;
}
const NO_ROUTES: NonNullable<Packet["routes"]> = [];
const routeTables = new WeakMap<NonNullable<Packet["routes"]>, { routes: { dev: string; net: Addr | "default" | undefined; len?: number }[]; found: Map<string, string | undefined> }>();
function routeNet(dst: string): { net: Addr | "default" | undefined; len?: number } {
  if (dst === "default") return { net: "default", len: 0 };
  const [net, l] = dst.split("/");
  return l === undefined ? { net: addrOf(net!) } : { net: addrOf(net!), len: Number(l) };
}

// ------------------------------------------------------- values and domains ----

/**
 * What an expression reads, so that the literals it is compared with can be read the same way:
 * addresses as numbers, protocols, ports, ICMP types, conntrack states and TCP flags as numbers
 * (bit masks for the last two), interface names and fib types as text.
 */
type Domain = "addr" | "port" | "proto" | "nfproto" | "ethertype" | "ifname" | "iface" | "ctstate" | "ctstatus" | "tcpflags" | "icmp4" | "icmp6" | "fibtype" | "mark";
interface Leaf {
  d: Domain;
  /** addr: the number (with v6); ifname, iface, fibtype: the text ("" for no interface; fibtype "": not local); the rest: a number. */
  v: bigint | number | string;
  v6?: boolean;
  /** addr: the packet's source address (or, in a reply, its connection's): each comparison is noted there. */
  rec?: NftRecord;
  /** addr: the address the packet was first sent to (NftRecord's dests): each comparison is noted there. */
  drec?: NftRecord;
}

const PROTO: Record<string, number> = { hopopt: 0, icmp: 1, igmp: 2, ipip: 4, tcp: 6, egp: 8, udp: 17, dccp: 33, ipv6: 41, gre: 47, esp: 50, ah: 51, "ipv6-icmp": 58, icmpv6: 58, sctp: 132, udplite: 136 };
const NFPROTO: Record<string, number> = { ipv4: 2, ipv6: 10 };
const ETHERTYPE: Record<string, number> = { ip: 0x0800, arp: 0x0806, ip6: 0x86dd, vlan: 0x8100 };
const CTSTATE: Record<string, number> = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 };
const CTSTATUS: Record<string, number> = { expected: 1, "seen-reply": 2, assured: 4, confirmed: 8, snat: 16, dnat: 32, dying: 512 };
const TCPFLAGS: Record<string, number> = { fin: 1, syn: 2, rst: 4, psh: 8, ack: 16, urg: 32, ecn: 64, cwr: 128 };
const SERVICES: Record<string, number> = { ssh: 22, smtp: 25, domain: 53, http: 80, https: 443, ntp: 123 };
const ICMP4: Record<string, number> = { "echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, redirect: 5, "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12, "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15, "info-reply": 16, "address-mask-request": 17, "address-mask-reply": 18 };
const ICMP6: Record<string, number> = { "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4, "echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131, "mld-listener-done": 132, "mld-listener-reduction": 132, "nd-router-solicit": 133, "nd-router-advert": 134, "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137, "router-renumbering": 138, "ind-neighbor-solicit": 141, "ind-neighbor-advert": 142, "mld2-listener-report": 143 };
const NAMES: Partial<Record<Domain, Record<string, number>>> = { port: SERVICES, proto: PROTO, nfproto: NFPROTO, ethertype: ETHERTYPE, ctstate: CTSTATE, ctstatus: CTSTATUS, tcpflags: TCPFLAGS, icmp4: ICMP4, icmp6: ICMP6 };
/** Domains whose values are bit masks: `in` tests any of the bits. */
const BITMASK = new Set<Domain>(["ctstate", "ctstatus", "tcpflags"]);

/** A literal read in the domain of what it is compared with. */
function literal(d: Domain, lit: Json, what: string): bigint | number | string {
  if (d === "addr") {
    const a = typeof lit === "string" ? addrOf(lit) : undefined;
    if (!a) throw new Unknown(`${what} ${exprText(lit)}`);
    return a.n;
  }
  if (d === "ifname" || d === "iface" || d === "fibtype") {
    if (typeof lit !== "string") throw new Unknown(`${what} ${exprText(lit)}`);
    return lit;
  }
  if (typeof lit === "number") return lit;
  // A list of flags (`ct state established,related`, or `a|b`) is their union.
  const union = Array.isArray(lit) ? lit : isObj(lit) && Array.isArray(lit["|"]) ? lit["|"] : undefined;
  if (union && BITMASK.has(d)) return union.reduce<number>((m, x) => m | (literal(d, x, what) as number), 0);
  // A value whose type nft could not name (a set of `ct original proto-dst`): "0x50 [invalid type]".
  const raw = typeof lit === "string" ? /^0x([0-9a-f]+) \[invalid type\]$/.exec(lit) : null;
  if (raw && d === "port") return parseInt(raw[1]!, 16);
  const n = typeof lit === "string" ? NAMES[d]?.[lit] : undefined;
  if (n === undefined) throw new Unknown(`${what} ${exprText(lit)}`);
  return n;
}

/** An interface name against a pattern: a trailing unescaped `*` is a wildcard. */
function ifnameIs(pattern: string, name: string): boolean {
  let p = patterns.get(pattern);
  if (!p) {
    if (patterns.size > 10_000) patterns.clear();
    const wild = pattern.endsWith("*") && !pattern.endsWith("\\*");
    patterns.set(pattern, (p = { text: (wild ? pattern.slice(0, -1) : pattern).replace(/\\(.)/g, "$1"), wild }));
  }
  return p.wild ? name.startsWith(p.text) : p.text === name;
}
/** Interface patterns read once (a matrix meets the same few thousands of times). */
const patterns = new Map<string, { text: string; wild: boolean }>();

/** One element of a set (or the right side of a match): a literal, a prefix, a range, or a concatenation of them. */
function elemHas(leaves: Leaf[], elem: Json, what: string): boolean {
  if (isObj(elem) && isObj(elem.elem)) return elemHas(leaves, elem.elem.val ?? null, what);
  if (leaves.length > 1) {
    const parts = isObj(elem) && Array.isArray(elem.concat) ? elem.concat : undefined;
    if (!parts || parts.length !== leaves.length) throw new Unknown(`${what} ${exprText(elem)}`);
    return leaves.every((l, i) => leafHas(l, parts[i]!, what));
  }
  return leafHas(leaves[0]!, elem, what);
}

function leafHas(l: Leaf, e: Json, what: string): boolean {
  if (isObj(e) && isObj(e.prefix)) {
    if (l.d !== "addr") throw new Unknown(`${what} ${exprText(e)}`);
    const net = addrOf(str(e.prefix.addr) ?? "");
    if (net === undefined || net.v6 !== l.v6) return false;
    const host = (1n << BigInt(width(l.v6) - (num(e.prefix.len) ?? 0))) - 1n;
    return noted(l, net.n & ~host, (net.n & ~host) | host);
  }
  if (isObj(e) && Array.isArray(e.range)) {
    const [a, b] = e.range;
    if (l.d === "addr" && (addrOf(str(a) ?? "")?.v6 ?? !l.v6) !== l.v6) return false;
    const from = literal(l.d, a ?? null, what);
    const to = literal(l.d, b ?? null, what);
    if (typeof l.v === "string" || typeof from === "string" || typeof to === "string") throw new Unknown(`${what} ${exprText(e)}`);
    return l.d === "addr" ? noted(l, from as bigint, to as bigint) : from <= l.v && l.v <= to;
  }
  if (l.d === "fibtype") {
    // Not one of the host's addresses: not "local", but which other type (unicast, broadcast, …) is not known here.
    if (l.v === "" && e !== "local") throw new Unknown(`${what} ${exprText(e)}`);
    return e === l.v;
  }
  if (l.d === "ifname") return typeof e === "string" && ifnameIs(e, l.v as string);
  if (l.d === "addr") {
    if (typeof e !== "string" || addrOf(e)?.v6 !== l.v6) return false;
    const n = literal(l.d, e, what) as bigint;
    return noted(l, n, n);
  }
  return literal(l.d, e, what) === l.v;
}

/** Whether an address leaf is in [from, to]: noted as a test of the source where it is the source (NftRecord). */
function noted(l: Leaf, from: bigint, to: bigint): boolean {
  const v = l.v as bigint;
  const hit = from <= v && v <= to;
  l.rec?.tests.push({ kind: "range", value: "", hit, v6: l.v6, from, to });
  l.drec?.dests!.push({ kind: "range", v6: l.v6!, from, to, hit });
  return hit;
}

/**
 * Whether an address is the host's own (one of its addresses, or loopback), noted where it is the
 * source (or, in a reply, its connection's): as a test of each of the host's addresses of its
 * family and of loopback, so that a source answers them as it answers "is it local".
 */
function localNoted(p: Packet, addr: string, rec: NftRecord | undefined, drec?: NftRecord): boolean {
  const local = isLocal(p, addr);
  const a = addrOf(addr);
  if ((!rec && !drec?.dests) || !a) return local;
  const [from, to] = a.v6 ? [1n, 1n] : [127n << 24n, (128n << 24n) - 1n];
  const loop = from <= a.n && a.n <= to;
  if (rec) {
    for (const l of p.local) {
      const n = addrOf(l);
      if (n && n.v6 === a.v6) rec.tests.push({ kind: "range", value: l, hit: n.n === a.n, v6: a.v6, from: n.n, to: n.n });
    }
    rec.tests.push({ kind: "range", value: "loopback", hit: loop, v6: a.v6, from, to });
  }
  // (The host's addresses a cell walks are all its own: one test of them all, that any of them answers alike.)
  if (drec?.dests) {
    const own = ownSet(p, a.v6);
    drec.dests.push(own.tests[own.has(a.n) ? 1 : 0], LOOPBACK[a.v6 ? 6 : 4][loop ? 1 : 0]);
  }
  return local;
}
/** The host's addresses of a family as numbers, and the tests "one of them" (not, is) of them (per packet's list: a matrix gives every packet the same). */
function ownSet(p: Packet, v6: boolean): { has: (n: bigint) => boolean; tests: [DestinationTest, DestinationTest] } {
  let m = owns.get(p.local);
  if (!m) owns.set(p.local, (m = {}));
  const k = v6 ? 6 : 4;
  let o = m[k];
  if (!o) {
    const members = new Set<bigint>();
    for (const l of p.local) {
      const n = addrOf(l);
      if (n && n.v6 === v6) members.add(n.n);
    }
    o = m[k] = { has: (n) => members.has(n), tests: [{ kind: "set", v6, members, hit: false }, { kind: "set", v6, members, hit: true }] };
  }
  return o;
}
const owns = new WeakMap<string[], Partial<Record<4 | 6, ReturnType<typeof ownSet>>>>();
/** Loopback (127.0.0.0/8, ::1), not or so: the same tests for every walk. */
const LOOPBACK: Record<4 | 6, [DestinationTest, DestinationTest]> = {
  4: [false, true].map((hit) => ({ kind: "range", v6: false, from: 127n << 24n, to: (128n << 24n) - 1n, hit })) as [DestinationTest, DestinationTest],
  6: [false, true].map((hit) => ({ kind: "range", v6: true, from: 1n, to: 1n, hit })) as [DestinationTest, DestinationTest],
};

// --------------------------------------------------------------- the walk ----

type Hook = "prerouting" | "input" | "forward" | "output" | "postrouting";
/** Where the nat core runs each hook's nat chains, and which half of the mapping it sets there. */
const NAT_AT: Record<Hook, { prio: number; manip: "dst" | "src" } | undefined> = {
  prerouting: { prio: -100, manip: "dst" },
  output: { prio: -100, manip: "dst" },
  postrouting: { prio: 100, manip: "src" },
  input: { prio: 100, manip: "src" },
  forward: undefined,
};
/** Conntrack attaches to the packet here (prerouting and output); before it, a packet has no ct. */
const CONNTRACK_PRIO = -200;

interface State {
  p: Packet;
  rs: NftRuleset;
  v6: boolean;
  path: NftVerdict["path"];
  /** A reply: the interface it leaves by (the one its connection's first packet came in by), whatever the routes say. */
  replyOut?: string;
  /** A reply: its connection's first packet (`ct original …` reads it), and whether that was DNATed (`ct status dnat`). */
  orig?: Packet;
  origDnat?: boolean;
  /** A reply: whether its connection's source was translated (`ct status snat`); null where the address masquerade picked is not known. */
  origSnat?: boolean | null;
  /** A reply to the host's own connection: it goes to the host (input), whatever `dst` is. */
  toHost?: boolean;
  /** Why `dst` is not known (when it is ""). */
  dstWhy?: string;
  /**
   * A reply to a connection whose source was NATed (masquerade, snat): the address it comes back to,
   * which prerouting's chains before nat's (priority below -100) see as its destination; null where
   * not known.
   */
  replyTo?: string | null;
  /** Interfaces as meta iifname/oifname see them: "" none; oif undefined: a route the packet's routes do not give. */
  iif: string;
  oif: string | undefined;
  src: string | undefined;
  /** Why the source address is not known (when src is undefined). */
  srcWhy?: string;
  dst: string;
  dport?: number;
  /** What `ct` sees in the chain being walked. */
  ct: "tracked" | "none" | "untracked" | "unsure";
  untracked: boolean;
  /** A packet the host sent itself, back in by lo: its conntrack entry came with it. */
  looped: boolean;
  /**
   * One of the replies after the first of a TCP connection whose own packets are not tracked (withReplyNft), with the TCP
   * flags it carries: its data (new, a connection of its own to conntrack, its original direction itself; nat's chains run
   * for it), or a FIN sent with it (invalid).
   */
  loose?: { flags: number };
  /** A `tcp flags` test read the loose reply's flags (withReplyNft then tries its other flags too). */
  flagsRead?: boolean;
  natDone: { dst: boolean; src: boolean };
  dnat?: { addr: string; port?: number };
  /**
   * The DNAT is to the address and port the packet already has: the nat core binds the connection (no later nat chain runs
   * for it) but translates nothing, so conntrack gets no DNAT status and nothing is reported (as translated() on iptables).
   */
  dnatSame?: boolean;
  snat?: NftVerdict["snat"];
  steps?: NftStep[];
  lastAccept?: NftStep;
  /** The matrix's record of the walk's tests of the source (NftRecord). */
  rec?: NftRecord;
  /** `src` is the packet's own source (no source NAT yet): a read of it is a test of the source. */
  srcIsSource: boolean;
  /** A reply: `dst` is its connection's source: a read of it is a test of that source. */
  dstIsSource: boolean;
  /** `dst` is the address the packet was first sent to (no DNAT yet): a read of it is a test of that address (NftRecord's dests). */
  dstIsDest: boolean;
  /** A reply whose `src` is the address its connection's first packet was sent to (nothing translated it, or nat has mapped it back). */
  srcIsDest: boolean;
  /** Every rule of a long chain walked, none passed by through its index, every match in its order (tests compare both ways). */
  noIndex?: boolean;
  /** The rule that took the packet out of conntrack (notrack). */
  notrack?: NftStep;
  /** A `meta mark set` on the way that may have changed the packet's mark (0 until then): where, for `meta mark`'s unknown. */
  markSet?: string;
  /** The packet has what plain matches read, in the chain walked now (plainOk). */
  plain?: boolean;
}

type Outcome = { kind: "accept" | "drop" | "reject"; step: NftStep } | { kind: "return" };

/** A verdict statement (or a verdict map's value) as a kind and a target chain. */
function verdictOf(j: Json): { kind: string; target?: string } | undefined {
  const k = keyOf(j);
  if (!k || !["accept", "drop", "reject", "return", "jump", "goto", "continue", "queue"].includes(k)) return undefined;
  const body = (j as Obj)[k];
  return { kind: k, target: isObj(body) ? str(body.target) : undefined };
}

const where = (r: NftRule) => `${r.family} ${r.table} ${r.chain}, rule handle ${r.handle}`;

/** What an expression reads from the packet; null: its protocol dependency fails, so the rule does not match, whatever the operator. */
function leaves(e: Json, st: State): Leaf[] | null {
  const k = keyOf(e);
  const body = isObj(e) ? e[k!] : undefined;
  const o = isObj(body) ? body : {};
  switch (k) {
    case "payload":
      return payloadLeaves(o, st);
    case "meta":
      return metaLeaves(str(o.key) ?? "", st);
    case "ct":
      return ctLeaves(o, st);
    case "fib":
      return fibLeaves(o, st);
    case "concat": {
      const out: Leaf[] = [];
      for (const part of Array.isArray(body) ? body : []) {
        const l = leaves(part, st);
        if (l === null) return null;
        out.push(...l);
      }
      return out;
    }
    case "&": {
      // A mask: `ip saddr & 255.0.255.0 == …`, `tcp flags & (syn | ack) == syn`.
      const [inner, mask] = Array.isArray(body) ? body : [];
      const l = leaves(inner ?? null, st);
      if (l === null) return null;
      const [leaf] = l;
      if (l.length !== 1 || typeof leaf!.v === "string") throw new Unknown(`${exprText(inner ?? null)} & ${exprText(mask ?? null)}`);
      const m = literal(leaf!.d, mask ?? null, exprText(inner ?? null));
      // (A masked source is no range: the walk holds for its own source alone.)
      if (leaf!.rec) leaf!.rec.poisoned = true;
      if (leaf!.drec) leaf!.drec.destPoisoned = true;
      return [{ d: leaf!.d, v: typeof m === "bigint" ? (leaf!.v as bigint) & m : (leaf!.v as number) & (m as number), v6: leaf!.v6 }];
    }
    default:
      throw new Unknown(k === "xt" ? xtWhy(e) : exprText(e) || "an expression");
  }
}

const addrLeaf = (text: string | undefined, why: string, rec?: NftRecord, drec?: NftRecord): Leaf[] => {
  const a = text === undefined ? undefined : addrOf(text);
  if (!a) throw new Unknown(why);
  const leaf: Leaf = { d: "addr", v: a.n, v6: a.v6 };
  if (rec) leaf.rec = rec;
  if (drec?.dests) leaf.drec = drec;
  return [leaf];
};
const srcLeaf = (st: State, what: string) => addrLeaf(st.src, `${what}: ${st.srcWhy ?? "the source address is not known"}`, st.srcIsSource ? st.rec : undefined, st.srcIsDest ? st.rec : undefined);
/** The packet's layer 4 protocol number (ICMP is 1 over IPv4, 58 over IPv6). */
const l4Of = (st: State) => (st.p.proto === "icmp" ? (st.v6 ? 58 : 1) : PROTO[st.p.proto]!);

/** `ip …`, `ip6 …`, `tcp …`, `udp …`, `th …`, `icmp …`, `icmpv6 …`: the header field, after DNAT. */
function payloadLeaves(o: Obj, st: State): Leaf[] | null {
  const { p } = st;
  const proto = str(o.protocol);
  const field = str(o.field);
  const what = `${proto} ${field}`;
  if (proto === undefined) throw new Unknown(`a raw payload expression (@${str(o.base)},${num(o.offset)},${num(o.len)})`);
  if (proto === "ip" || proto === "ip6") {
    if ((proto === "ip6") !== st.v6) return null;
    if (field === "saddr") return srcLeaf(st, what);
    if (field === "daddr") return addrLeaf(dstOf(st, what), what, st.dstIsSource ? st.rec : undefined, st.dstIsDest ? st.rec : undefined);
    if (field === "protocol" || field === "nexthdr") return [{ d: "proto", v: l4Of(st) }];
    throw new Unknown(what);
  }
  if (proto === "icmp" || proto === "icmpv6") {
    if (p.proto !== "icmp" || (proto === "icmpv6") !== st.v6) return null;
    if (field !== "type" || p.icmpType === undefined) throw new Unknown(what);
    return [{ d: st.v6 ? "icmp6" : "icmp4", v: p.icmpType }];
  }
  if (proto !== "tcp" && proto !== "udp" && proto !== "th") throw new Unknown(what);
  // th (any transport header) has no dependency: on ICMP it would read the ICMP header.
  if (proto === "th" && p.proto === "icmp") throw new Unknown(`${what} of an ICMP packet`);
  if (proto !== "th" && p.proto !== proto) return null;
  if (field === "dport" && st.dport !== undefined) return [{ d: "port", v: st.dport }];
  if (field === "sport" && p.sport !== undefined) return [{ d: "port", v: p.sport }];
  if (field === "flags" && proto === "tcp") {
    // A connection's first packet is a bare SYN; later ones could carry any flags.
    if (st.loose) {
      st.flagsRead = true;
      return [{ d: "tcpflags", v: st.loose.flags }];
    }
    // A connection's first reply (withReplyNft): a SYN-ACK.
    if (st.orig !== undefined) return [{ d: "tcpflags", v: TCPFLAGS.syn! | TCPFLAGS.ack! }];
    if (p.state !== "NEW") throw new Unknown(`${what} of a ${p.state} packet`);
    return [{ d: "tcpflags", v: TCPFLAGS.syn! }];
  }
  throw new Unknown(field === "dport" || field === "sport" ? `${what}: the packet has no ${field}` : what);
}

/** `meta …` (and iifname, oifname, iif, oif): interfaces by name ("" when there is none), protocols. */
function metaLeaves(key: string, st: State): Leaf[] {
  switch (key) {
    case "iifname":
    case "iif":
      return [{ d: key === "iif" ? "iface" : "ifname", v: st.iif }];
    case "oifname":
    case "oif":
      if (st.oif === undefined) throw new Unknown(`${key}: no route to ${st.dst} among the packet's routes`);
      return [{ d: key === "oif" ? "iface" : "ifname", v: st.oif }];
    case "l4proto":
      return [{ d: "proto", v: l4Of(st) }];
    case "nfproto":
      return [{ d: "nfproto", v: st.v6 ? 10 : 2 }];
    case "protocol":
      return [{ d: "ethertype", v: st.v6 ? 0x86dd : 0x0800 }];
    case "mark":
      // A packet's mark is 0 until a rule on its way sets one (as the iptables walk reads -m mark): a packet that
      // comes in, a reply, and the host's own (a socket of its own with SO_MARK aside).
      if (st.markSet) throw new Unknown(`meta mark: a rule on the packet's way may have set it (${st.markSet})`);
      return [{ d: "mark", v: 0 }];
    default:
      throw new Unknown(`meta ${key}`);
  }
}

/** `fib daddr type` / `fib saddr type`, the forms Docker writes: is the address one of the host's ("local"; "" for any other type)? */
function fibLeaves(o: Obj, st: State): Leaf[] {
  const flags = (Array.isArray(o.flags) ? o.flags : [o.flags ?? null]).map(String);
  const what = `fib ${flags.join(" . ")} ${str(o.result)}`;
  if (str(o.result) !== "type" || flags.length !== 1 || (flags[0] !== "daddr" && flags[0] !== "saddr")) throw new Unknown(what);
  const fib = (local: boolean): Leaf[] => [{ d: "fibtype", v: local ? "local" : "" }];
  if (flags[0] === "daddr") return fib(localNoted(st.p, dstOf(st, what), st.dstIsSource ? st.rec : undefined, st.dstIsDest ? st.rec : undefined));
  // The host's own packet, or a masqueraded one: from one of the host's addresses, whichever it is.
  if (st.src === undefined && (st.p.fromHost || st.snat?.masquerade)) return fib(true);
  srcLeaf(st, what);
  return fib(localNoted(st.p, st.src!, st.srcIsSource ? st.rec : undefined, st.srcIsDest ? st.rec : undefined));
}

/** `ct …`: the conntrack entry, as it is at this point of the packet's way. */
function ctLeaves(o: Obj, st: State): Leaf[] | null {
  const key = str(o.key) ?? "";
  const dir = str(o.dir);
  const what = `ct ${dir ? `${dir} ` : ""}${key}`;
  if (st.ct === "unsure") throw new Unknown(`${what}, in a chain at conntrack's own priority (${CONNTRACK_PRIO}): whether the packet has its entry yet is not known`);
  if (key === "state") {
    const state = st.ct === "untracked" ? "untracked" : st.ct === "none" ? "invalid" : st.p.state.toLowerCase();
    return [{ d: "ctstate", v: CTSTATE[state]! }];
  }
  // No conntrack entry (yet): every other ct expression stops the rule, `!=` too.
  if (st.ct !== "tracked") return null;
  if (key === "status" && !dir) {
    if (st.origSnat === null) throw new Unknown(`${what}: the address masquerade gave the connection (the host's on the interface it left by) is not known, so whether it was translated is not known`);
    return [{ d: "ctstatus", v: ((st.dnat && !st.dnatSame) || st.origDnat ? CTSTATUS.dnat! : 0) | (st.snat || st.origSnat ? CTSTATUS.snat! : 0) }];
  }
  if (dir !== "original") throw new Unknown(what);
  // The original tuple: the packet as it first arrived (a later packet is taken to be of a connection that began as this one;
  // a reply's is the packet that opened its connection: a review found a reply's own addresses read there).
  // (A reply that is NEW began a connection of its own, the UDP reply of one taken out of conntrack: its original is itself.)
  const first = (st.p.state !== "NEW" && st.orig) || st.p;
  const fam = key.startsWith("ip6 ") ? 6 : key.startsWith("ip ") ? 4 : undefined;
  if (fam !== undefined && (fam === 6) !== st.v6) return null;
  const field = key.replace(/^ip6? /, "");
  const a = field === "daddr" ? first.dst : field === "saddr" ? (first.srcUnknown ? undefined : first.src) : undefined;
  if (field === "daddr" || field === "saddr") {
    const n = a === undefined ? undefined : addrOf(a);
    if (!n) throw new Unknown(`${what}: the address is not known`);
    // (The original source is the packet's own, or a reply's connection's: a test of the source; the original destination, the
    // address the packet was first sent to: a test of it.)
    const leaf: Leaf = { d: "addr", v: n.n, v6: n.v6 };
    if (field === "saddr" && st.rec) leaf.rec = st.rec;
    if (field === "daddr" && st.rec?.dests) leaf.drec = st.rec;
    return [leaf];
  }
  if (field === "proto-dst" || field === "proto-src") {
    const port = first.proto === "icmp" ? undefined : field === "proto-dst" ? first.dport : first.sport;
    if (port === undefined) throw new Unknown(`${what}: the packet has no port`);
    return [{ d: "port", v: port }];
  }
  if (field === "protocol") return [{ d: "proto", v: l4Of(st) }];
  if (field === "l3proto") return [{ d: "nfproto", v: st.v6 ? 10 : 2 }];
  throw new Unknown(what);
}

function xtWhy(e: Json): string {
  const o = isObj(e) && isObj(e.xt) ? e.xt : {};
  return `an iptables-nft rule (xt ${str(o.type) ?? "match"} ${str(o.name) ?? "?"})`;
}

/** The elements a match or map looks in: a named set (or map) of the rule's table, or an anonymous one. */
function elementsOf(right: Json, r: NftRule, st: State): Json[] | undefined {
  if (typeof right === "string" && right.startsWith("@")) {
    const t = st.rs.tables.find((x) => x.family === r.family && x.name === r.table);
    const set = t?.sets.get(right.slice(1));
    if (!set) throw new Unknown(`the set ${right} (not in the listing)`);
    return set.elem;
  }
  if (isObj(right) && Array.isArray(right.set)) return right.set;
  return undefined;
}

/** A `match` expression: left OP right. */
function matches(o: Obj, st: State, r: NftRule): boolean {
  const op = str(o.op) ?? "==";
  const left = o.left ?? null;
  const right = o.right ?? null;
  const what = exprText(left);
  const ls = leaves(left, st);
  if (ls === null) return false;
  const d = ls[0]!.d;
  if (d === "ctstatus" && ((op !== "in" && op !== "!") || elementsOf(right, r, st))) throw new Unknown(`${what} ${op === "in" ? "" : `${op} `}${exprText(right)}: only "has any of these flags" can be told`);
  const elems = elementsOf(right, r, st);
  switch (op) {
    case "==":
    case "!=":
    case "in": {
      // `in` on a bit mask with a literal: any of its bits; otherwise membership, as ==.
      if (op === "in" && !elems && BITMASK.has(d) && ls.length === 1) {
        const mask = literal(d, right, what) as number;
        if (d === "ctstatus" && (mask & ~(CTSTATUS.dnat! | CTSTATUS.snat!)) !== 0) throw new Unknown(`${what} ${exprText(right)}`);
        return ((ls[0]!.v as number) & mask) !== 0;
      }
      const hit = elems ? elems.some((x) => elemHas(ls, x, what)) : elemHas(ls, right, what);
      return op === "!=" ? !hit : hit;
    }
    case "!": {
      // `ct status ! dnat`: none of these bits (nft lists `& FLAGS == 0` so); `!=` is the whole value unequal.
      if (elems || !BITMASK.has(d) || ls.length !== 1) throw new Unknown(`${what} ! ${exprText(right)}`);
      const mask = literal(d, right, what) as number;
      if (d === "ctstatus" && (mask & ~(CTSTATUS.dnat! | CTSTATUS.snat!)) !== 0) throw new Unknown(`${what} ! ${exprText(right)}`);
      return ((ls[0]!.v as number) & mask) === 0;
    }
    case "<":
    case ">":
    case "<=":
    case ">=": {
      if (elems || ls.length !== 1 || typeof ls[0]!.v === "string") throw new Unknown(`${what} ${op} ${exprText(right)}`);
      if (ls[0]!.rec) ls[0]!.rec.poisoned = true;
      if (ls[0]!.drec) ls[0]!.drec.destPoisoned = true;
      const v = ls[0]!.v as number | bigint;
      const w = literal(d, right, what);
      if (typeof w === "string") throw new Unknown(`${what} ${op} ${exprText(right)}`);
      return op === "<" ? v < w : op === ">" ? v > w : op === "<=" ? v <= w : v >= w;
    }
    default:
      throw new Unknown(`${what} ${op} ${exprText(right)}`);
  }
}

/** A map lookup (verdict map or a NAT statement's map): the value of the first element whose key holds, or undefined. */
function lookup(key: Json, data: Json, st: State, r: NftRule): Json | undefined | null {
  const ls = leaves(key, st);
  if (ls === null) return null;
  const elems = elementsOf(data, r, st);
  if (!elems) throw new Unknown(`${exprText(key)} map ${exprText(data)}`);
  for (const el of elems) {
    if (!Array.isArray(el) || el.length !== 2) throw new Unknown(`${exprText(key)} map ${exprText(data)}`);
    if (elemHas(ls, el[0]!, exprText(key))) return el[1]!;
  }
  return undefined;
}

type RuleResult = { kind: "nomatch" } | { kind: "continue" } | { kind: "verdict"; verdict: string; target?: string } | { kind: "nat"; action: "dnat" | "snat" };

/** Statements that note or count the packet and change nothing of its fate. */
const NOTES = new Set(["counter", "log", "comment"]);

/** One rule, expression after expression as the kernel runs them: the first that does not hold ends it. */
function runRule(r: NftRule, st: State): RuleResult {
  try {
    return runExprs(r, st);
  } catch (e) {
    if (e instanceof Unknown) throw new Unknown(`${e.message}, in ${where(r)}`);
    throw e;
  }
}

function runExprs(r: NftRule, st: State): RuleResult {
  // Matches the walk always tells, that read no address, first (firstOf): which fails first is the same to the answer.
  const early = st.plain ? firstOf(r) : null;
  if (early) for (const i of early) if (!matches((r.expr[i] as { match: Obj }).match, st, r)) return { kind: "nomatch" };
  for (let i = 0; i < r.expr.length; i++) {
    if (early?.includes(i)) continue;
    const e = r.expr[i]!;
    const k = keyOf(e);
    const body = isObj(e) ? e[k!] : null;
    if (k === "match") {
      if (!matches(body as Obj, st, r)) return { kind: "nomatch" };
      continue;
    }
    if (k && NOTES.has(k)) continue;
    if (k === "reject" && !rejects(body ?? null, st)) return { kind: "nomatch" };
    const v = verdictOf(e);
    if (v) {
      if (v.kind === "continue") continue;
      if (v.kind === "queue") throw new Unknown("queue");
      return { kind: "verdict", verdict: v.kind, target: v.target };
    }
    switch (k) {
      case "vmap": {
        const o = body as Obj;
        const hit = lookup(o.key ?? null, o.data ?? null, st, r);
        if (hit === null || hit === undefined) return { kind: "nomatch" };
        const mv = verdictOf(hit);
        if (!mv || mv.kind === "queue") throw new Unknown(`${exprText(o.key ?? null)} vmap: the verdict ${exprText(hit)}`);
        if (mv.kind === "continue") continue;
        return { kind: "verdict", verdict: mv.kind, target: mv.target };
      }
      case "mangle": {
        // The trace bit changes what the kernel reports, not what it does; the packet's mark, what a later `meta mark` reads.
        const o = body as Obj;
        const key = isObj(o.key) && isObj(o.key.meta) ? o.key.meta.key : undefined;
        if (key === "mark") st.markSet ??= where(r);
        else if (key !== "nftrace") throw new Unknown(`${exprText(o.key ?? null)} set`);
        continue;
      }
      case "notrack":
        // Only before conntrack has looked: afterwards the packet keeps its entry.
        if (st.ct === "none" && st.p.state !== "INVALID") {
          st.untracked = true;
          st.notrack ??= { family: r.family, table: r.table, chain: r.chain, index: r.index, handle: r.handle, action: "notrack", text: r.text };
        }
        continue;
      case "dnat":
      case "snat":
      case "masquerade": {
        const mapped = nat(k, isObj(body) ? body : {}, st, r);
        if (mapped === "nomatch") return { kind: "nomatch" };
        if (mapped === "skip") continue;
        return { kind: "nat", action: k === "dnat" ? "dnat" : "snat" };
      }
      case "xt":
        throw new Unknown(xtWhy(e));
      default:
        // limit, quota, meters and set updates, ct count, queue, dup, fwd, tproxy, synproxy, flow offload, meta/ct set …
        throw new Unknown(stmtText(e) || "a statement");
    }
  }
  return { kind: "continue" };
}

/**
 * Whether a reject statement applies to this packet: nft makes `reject with icmp …` IPv4 only and
 * `reject with icmpv6 …` IPv6 only (in an inet table, by a dependency the listing does not show),
 * and `reject with tcp reset` TCP only.
 */
function rejects(body: Json, st: State): boolean {
  const type = isObj(body) ? str(body.type) : undefined;
  if (type === "icmp") return !st.v6;
  if (type === "icmpv6") return st.v6;
  if (type === "tcp reset") return st.p.proto === "tcp";
  return true;
}

/** A NAT statement: the new address (and port) for the rest of the way; "skip": not for this family (inet); "nomatch": its map has no element for the packet. */
function nat(k: "dnat" | "snat" | "masquerade", o: Obj, st: State, r: NftRule): "done" | "skip" | "nomatch" {
  const fam = str(o.family);
  if (fam && (fam === "ip6") !== st.v6) return "skip";
  if (k === "masquerade") {
    st.snat = { masquerade: true };
    st.src = undefined;
    st.srcIsSource = false;
    st.srcWhy = "the address masquerade picked";
    return "done";
  }
  let addr: string | undefined;
  let port: number | undefined;
  const read = (j: Json | undefined): Json | undefined | null => (isObj(j) && isObj(j.map) ? lookup(j.map.key ?? null, j.map.data ?? null, st, r) : j);
  const a = read(o.addr);
  if (a === null) return "nomatch";
  if (a === undefined && o.addr !== undefined) return "nomatch";
  if (isObj(a) && Array.isArray(a.concat)) {
    // A map to `address . port`.
    addr = str(a.concat[0]);
    port = num(a.concat[1]);
  } else addr = str(a ?? undefined);
  const pt = read(o.port);
  if (pt === null || (pt === undefined && o.port !== undefined)) return "nomatch";
  if (pt !== undefined) port = num(pt);
  // A range of addresses or ports, or none: which one the kernel picks is not known here.
  if (!addr || !addrOf(addr) || (pt !== undefined && port === undefined) || (isObj(a) && !Array.isArray(a.concat))) throw new Unknown(stmtText({ [k]: o }));
  if (k === "dnat") {
    st.dnatSame = sameAddr(addr, st.dst) && (port === undefined || port === st.dport);
    // (Whether it translates depends on the very address the packet was sent to: this walk holds for that one alone.)
    if (st.dnatSame && st.rec?.dests) st.rec.destPoisoned = true;
    st.dnat = port === undefined ? { addr } : { addr, port };
    st.dst = addr;
    st.dstIsDest = false;
    if (port !== undefined) st.dport = port;
  } else {
    st.snat = port === undefined ? { addr } : { addr, port };
    st.src = addr;
    st.srcIsSource = false;
  }
  return "done";
}

/** A chain, rule after rule; undefined: off its end. */
function walk(t: NftTable, name: string, st: State, depth: number): Outcome | undefined {
  if (depth > 32) throw new Unknown(`chains nested deeper than 32 (at ${t.family} ${t.name} ${name})`);
  const chain = t.chains.get(name);
  if (!chain) throw new Unknown(`the chain ${t.family} ${t.name} ${name} (not in the listing)`);
  st.plain = plainOk(st);
  const only = rulesFor(chain, st);
  const n = only ? only.length : chain.rules.length;
  for (let i = 0; i < n; i++) {
    const r = chain.rules[only ? only[i]! : i]!;
    const res = runRule(r, st);
    if (res.kind === "nomatch" || res.kind === "continue") continue;
    const step = (action: NftStep["action"]): NftStep => {
      const s: NftStep = { family: r.family, table: r.table, chain: r.chain, index: r.index, handle: r.handle, action, text: r.text };
      st.steps?.push(s);
      return s;
    };
    if (res.kind === "nat") return { kind: "accept", step: step(res.action) };
    switch (res.verdict) {
      case "accept":
      case "drop":
      case "reject":
        return { kind: res.verdict, step: step(res.verdict) };
      case "return":
        step("return");
        return { kind: "return" };
      case "jump":
      case "goto": {
        step(res.verdict);
        const sub = walk(t, res.target ?? "", st, depth + 1);
        if (sub && sub.kind !== "return") return sub;
        // Back from a jump: on with the next rule; back from a goto: this chain is done too.
        if (res.verdict === "goto") return { kind: "return" };
        continue;
      }
    }
  }
  return undefined;
}

/**
 * A long chain's rules by what each requires of the packet's destination: one address (`ip daddr
 * 10.100.0.2`) or one port (`tcp dport 8080`), tested by a match that only matches the walk always
 * tells precede (interface names, addresses, ports compared with literals, prefixes, ranges or
 * anonymous sets of them; a counter, a log, a comment). A rule whose required address or port is
 * not the packet's does not match it, and a walk of every rule would say so too, never "unknown":
 * the walk passes it by (Docker writes a rule per published port and container, dockwall one per
 * allowed port: a matrix walks every cell through all of them otherwise). The rules that require
 * neither are met by all. Used where the packet has what those matches read (rulesFor).
 */
interface ChainIndex {
  /** The rules that require neither. */
  free: number[];
  /** The others by what they require: an address (`4/…`, `6/…`) or a port (`tcp/…`, `udp/…`). */
  by: Map<string, number[]>;
  /** The rules a packet meets, by its address and port key. */
  met: Map<string, number[]>;
  /** For replies (Alive), by what they carry but their destination. */
  alive: Map<string, Alive>;
  /** The rules by the address they require, keyed as evaluate.ts keys addresses (a DestinationTest's index), and the tests made of it. */
  addrs?: Map<string, number[]>;
  tests?: Map<string, DestinationTest>;
}
/** The test "the rules of this chain addressed to this address, none of the others" (one object per address: every walk shares it). */
function indexTest(ix: ChainIndex, a: Addr): DestinationTest {
  if (!ix.addrs) {
    ix.addrs = new Map();
    for (const [k, list] of ix.by) if (k.startsWith("4/") || k.startsWith("6/")) ix.addrs.set(`${k[0]}:${k.slice(2)}`, list);
  }
  const key = numKey({ v6: a.v6, value: a.n });
  ix.tests ??= new Map();
  if (ix.tests.size > 10_000) ix.tests.clear();
  let t = ix.tests.get(key);
  if (!t) ix.tests.set(key, (t = { kind: "index", by: ix.addrs, key }));
  return t;
}
/**
 * A reply's destination is its connection's source, so which of the rules addressed to one
 * address it meets is a test of that source. Those whose other plain matches (interfaces,
 * ports) already fail it cannot match it whatever the address: the others' addresses are the
 * test, "one of these" (each its own) or "none of these" (NftRecord).
 */
interface Alive {
  by: Map<string, number[]>;
  none: Partial<Record<4 | 6, SourceTest>>;
}
/** From this many rules on, a chain is walked through its index. */
const INDEX_FROM = 16;
const indexes = new WeakMap<NftChain, ChainIndex>();

function chainIndex(chain: NftChain): ChainIndex {
  let x = indexes.get(chain);
  if (x) return x;
  x = { free: [], by: new Map(), met: new Map(), alive: new Map() };
  for (const [i, r] of chain.rules.entries()) {
    const key = requires(r);
    if (!key) x.free.push(i);
    else {
      const list = x.by.get(key);
      if (list) list.push(i);
      else x.by.set(key, [i]);
    }
  }
  indexes.set(chain, x);
  return x;
}

/**
 * A rule's leading matches that the walk always tells (plainRead, plainValue) and that read no
 * address, but come after one that does (`ip daddr 10.100.0.2 iifname != "br-n0" drop`): their
 * places in the rule, to be tried first. Matches do nothing but match, so the rule matches or not
 * in any order, and where the interface or port already says no, the address is not read: a walk
 * notes no test of the source there (NftRecord), and a reply to each container does not become a
 * class of its own by the rules addressed to it. null: nothing to put first.
 */
function firstOf(r: NftRule): number[] | null {
  let f = firsts.get(r);
  if (f !== undefined) return f;
  const out: number[] = [];
  let address = false;
  for (const x of plainPrefix(r)) {
    if (x.kind === "addr") address = true;
    else if (address) out.push(x.at);
  }
  f = out.length ? out : null;
  firsts.set(r, f);
  return f;
}
const firsts = new WeakMap<NftRule, number[] | null>();

/**
 * A rule's leading matches that the walk always tells (plainRead, plainValue: the packet has what they read, plainOk), a
 * counter, a log or a comment aside: their places in the rule, what they read and the match. Read once per rule.
 */
function plainPrefix(r: NftRule): { at: number; kind: "addr" | "port" | "ifname"; m: Obj }[] {
  let out = prefixes.get(r);
  if (out) return out;
  out = [];
  for (const [at, e] of r.expr.entries()) {
    const k = keyOf(e);
    if (k !== "match") {
      if (k && NOTES.has(k)) continue;
      break;
    }
    const m = (e as Obj).match as Obj;
    const kind = plainRead(m.left ?? null);
    if (!kind || !["==", "!=", "in"].includes(str(m.op) ?? "==") || !plainValue(kind, m.right ?? null, true)) break;
    out.push({ at, kind, m });
  }
  prefixes.set(r, out);
  return out;
}
const prefixes = new WeakMap<NftRule, { at: number; kind: "addr" | "port" | "ifname"; m: Obj }[]>();

/** Whether the packet has what plain matches read (a route out, a source, its addresses, ports): then none of them can be "unknown". */
function plainOk(st: State): boolean {
  return !st.noIndex && st.oif !== undefined && st.src !== undefined && addrOf(st.dst) !== undefined && (st.p.proto === "icmp" || (st.dport !== undefined && st.p.sport !== undefined));
}

/** What a rule requires of the destination (ChainIndex): its address or port key, "" none. */
function requires(r: NftRule): string {
  let port = "";
  for (const { kind, m } of plainPrefix(r)) {
    if ((str(m.op) ?? "==") !== "==") continue;
    const right = m.right ?? null;
    const { protocol, field } = (m.left as { payload: Obj }).payload ?? {};
    if (kind === "addr" && field === "daddr" && typeof right === "string") {
      const a = addrOf(right)!;
      if (a.v6 === (protocol === "ip6")) return a.key;
    }
    if (kind === "port" && field === "dport" && typeof right === "number" && !port) port = `${protocol}/${right}`;
  }
  return port;
}

/** What a match reads that a walk always tells, given what rulesFor requires of the packet: an address, a port, an interface name. */
function plainRead(left: Json): "addr" | "port" | "ifname" | undefined {
  if (!isObj(left)) return undefined;
  const pl = isObj(left.payload) ? left.payload : undefined;
  if (pl && (pl.protocol === "ip" || pl.protocol === "ip6") && (pl.field === "saddr" || pl.field === "daddr")) return "addr";
  if (pl && (pl.protocol === "tcp" || pl.protocol === "udp") && (pl.field === "sport" || pl.field === "dport")) return "port";
  if (isObj(left.meta) && (left.meta.key === "iifname" || left.meta.key === "oifname")) return "ifname";
  return undefined;
}

/** A value such a read is compared with that the walk always reads: a literal, a prefix, a range, or (at the top) an anonymous set of them. */
function plainValue(kind: "addr" | "port" | "ifname", v: Json, top: boolean): boolean {
  if (isObj(v) && isObj(v.elem)) return plainValue(kind, v.elem.val ?? null, false);
  if (top && isObj(v) && Array.isArray(v.set)) return v.set.every((x) => plainValue(kind, x, false));
  if (kind === "ifname") return typeof v === "string";
  if (kind === "port") return typeof v === "number" || (isObj(v) && Array.isArray(v.range) && v.range.length === 2 && v.range.every((x) => typeof x === "number"));
  if (typeof v === "string") return !v.startsWith("@") && addrOf(v) !== undefined;
  if (isObj(v) && isObj(v.prefix)) return addrOf(str(v.prefix.addr) ?? "") !== undefined && typeof v.prefix.len === "number";
  return isObj(v) && Array.isArray(v.range) && v.range.length === 2 && v.range.every((x) => typeof x === "string" && addrOf(x) !== undefined);
}

/** The rules of a long chain this packet can match, in order (ChainIndex); undefined: every rule. */
function rulesFor(chain: NftChain, st: State): number[] | undefined {
  // What the matches before a required address or port read, the packet must have (plainOk).
  if (chain.rules.length < INDEX_FROM || !st.plain) return undefined;
  const a = addrOf(st.dst)!;
  const proto = st.p.proto;
  // (Its port: none for ICMP, where a tcp or udp dport match fails.)
  const addrKey = a.key;
  const portKey = proto === "icmp" ? "" : `${proto}/${st.dport}`;
  const ix = chainIndex(chain);
  // A reply's destination is its connection's source: the rules addressed to it that it meets are a test of that source.
  const al = st.dstIsSource ? aliveFor(chain, ix, st) : undefined;
  const mine = (al ? al.by : ix.by).get(addrKey);
  // The address the packet was first sent to: the rules addressed to other addresses passed by are a test of it.
  if (st.dstIsDest && st.rec?.dests) st.rec.dests.push(indexTest(ix, a));
  if (al && st.rec) {
    if (mine) st.rec.tests.push({ kind: "range", value: "", hit: true, v6: a.v6, from: a.n, to: a.n });
    else if (al.none[a.v6 ? 6 : 4]) st.rec.tests.push(al.none[a.v6 ? 6 : 4]!);
  }
  const key = `${al ? "reply " : ""}${addrKey} ${portKey}`;
  let met = al ? undefined : ix.met.get(key);
  if (!met) {
    if (ix.met.size > 10_000) ix.met.clear();
    met = merged(merged(ix.free, mine), (portKey && ix.by.get(portKey)) || undefined);
    if (!al) ix.met.set(key, met);
  }
  return met;
}

/** Two ascending lists of rule numbers (a chain's index holds each rule once) as one, in order; one alone as it is. */
function merged(a: number[], b: number[] | undefined): number[] {
  if (!b?.length) return a;
  if (!a.length) return b;
  const out: number[] = new Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i]! < b[j]! ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

/** A reply's rules addressed to one address (Alive): those whose interface and port matches it passes. */
function aliveFor(chain: NftChain, ix: ChainIndex, st: State): Alive {
  const key = `${st.iif} ${st.oif} ${st.p.proto} ${st.p.sport} ${st.dport}`;
  let al = ix.alive.get(key);
  if (al) return al;
  al = { by: new Map(), none: {} };
  const addrs: Record<4 | 6, Set<bigint>> = { 4: new Set(), 6: new Set() };
  for (const [k, list] of ix.by) {
    if (k.startsWith("tcp/") || k.startsWith("udp/")) continue;
    const live = list.filter((i) => passes(chain.rules[i]!, st));
    if (!live.length) continue;
    al.by.set(k, live);
    addrs[k.startsWith("6/") ? 6 : 4].add(BigInt(k.slice(2)));
  }
  for (const f of [4, 6] as const) {
    if (addrs[f].size) al.none[f] = { kind: "set", value: `${chain.family} ${chain.table} ${chain.name} ${key}`, hit: false, v6: f === 6, members: { has: addrs[f], sorted: [...addrs[f]].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)) } };
  }
  if (ix.alive.size > 1_000) ix.alive.clear();
  ix.alive.set(key, al);
  return al;
}

/** Whether a rule's plain matches of interfaces and ports (requires) hold for this packet, whatever its addresses. */
function passes(r: NftRule, st: State): boolean {
  for (const { kind, m } of plainPrefix(r)) if (kind !== "addr" && !matches(m, st, r)) return false;
  return true;
}

interface Base {
  table: NftTable;
  chain: NftChain;
  hook: NftHook;
}

/** A base chain from its first rule to its policy: accept (on to the next base chain) or final. */
function runBase(b: Base, st: State): Outcome & { kind: "accept" | "drop" | "reject" } {
  const out = walk(b.table, b.chain.name, st, 0);
  if (out && out.kind !== "return") return out;
  const step: NftStep = { family: b.chain.family, table: b.chain.table, chain: b.chain.name, index: -1, action: "policy", text: `policy ${b.hook.policy}` };
  st.steps?.push(step);
  return { kind: b.hook.policy, step };
}

/** What runs on a hook, in the kernel's order: filter-type base chains by priority, and the nat core with all nat chains. */
interface Entry {
  prio: number;
  chains: Base[];
  nat: boolean;
}
const entryCache = new WeakMap<NftRuleset, Map<string, Entry[]>>();
function entriesOf(rs: NftRuleset, hook: Hook, v6: boolean): Entry[] {
  let m = entryCache.get(rs);
  if (!m) entryCache.set(rs, (m = new Map()));
  const key = `${hook} ${v6}`;
  const hit = m.get(key);
  if (hit) return hit;
  const bases: Base[] = [];
  for (const table of rs.tables) {
    if (table.dormant || (table.family !== "inet" && table.family !== (v6 ? "ip6" : "ip"))) continue;
    for (const chain of table.chains.values()) if (chain.base?.hook === hook) bases.push({ table, chain, hook: chain.base });
  }
  // Equal priority: the chain registered last runs first; the newest table, then the newest chain, stands in for that.
  const order = (a: Base, b: Base) => a.hook.prio - b.hook.prio || b.table.handle - a.table.handle || b.chain.handle - a.chain.handle;
  bases.sort(order);
  const entries: Entry[] = bases.filter((b) => b.hook.type !== "nat").map((b) => ({ prio: b.hook.prio, chains: [b], nat: false }));
  const nats = bases.filter((b) => b.hook.type === "nat");
  const at = NAT_AT[hook];
  if (nats.length && at) entries.push({ prio: at.prio, chains: nats, nat: true });
  entries.sort((a, b) => a.prio - b.prio || (a.nat ? -1 : b.nat ? 1 : order(a.chains[0]!, b.chains[0]!)));
  m.set(key, entries);
  return entries;
}

type Final = { verdict: "DROP" | "REJECT"; step: NftStep };

/** Every base chain of a hook in turn; a Final when one dropped or rejected the packet. */
function runHook(hook: Hook, st: State): Final | undefined {
  const entries = entriesOf(st.rs, hook, st.v6);
  for (const [i, e] of entries.entries()) {
    for (const b of e.chains) if (Number.isNaN(b.hook.prio)) throw new Unknown(`the priority of ${b.chain.family} ${b.chain.table} ${b.chain.name}`);
    if (e.nat) {
      const f = runNat(hook, e, st, entries);
      if (f) return f;
      continue;
    }
    const b = e.chains[0]!;
    st.ct = ctAt(hook, b.hook.prio, st);
    // A reply to a NATed source, before nat undoes it (dstnat, -100): addressed to the translated source.
    const translated = hook === "prerouting" && st.replyTo !== undefined && b.hook.prio < -100;
    const dst = st.dst;
    const dstIsSource = st.dstIsSource;
    if (translated) {
      st.dst = st.replyTo ?? "";
      st.dstIsSource = false;
    }
    // A reply of a DNATed connection after nat maps it back (srcnat, 100, on its way out, or in to the host that opened it):
    // from the address and port its connection was first sent to (a review proved it with packets: a drop of those at priority
    // 200 closed the connection while explain said open).
    const back = (hook === "postrouting" || hook === "input") && st.origDnat === true && st.orig !== undefined && b.hook.prio >= NAT_AT[hook]!.prio;
    if (back && b.hook.prio === NAT_AT[hook]!.prio && b.chain.rules.length) throw new Unknown(`the order of ${baseName(b)} and the nat core, both at priority ${b.hook.prio} on ${hook}: whether it sees this reply mapped back to ${st.orig!.dst} is not known`);
    const { src, p, srcIsSource, srcIsDest } = st;
    if (back) {
      st.src = st.orig!.dst;
      st.p = { ...p, sport: st.orig!.dport };
      st.srcIsSource = false;
      st.srcIsDest = true;
    }
    let out: ReturnType<typeof runBase>;
    try {
      out = runBase(b, st);
    } finally {
      Object.assign(st, { src, p, srcIsSource, srcIsDest });
    }
    st.dst = dst;
    st.dstIsSource = dstIsSource;
    if (out.kind === "accept") {
      st.lastAccept = out.step;
      continue;
    }
    const verdict = out.kind === "drop" ? "DROP" : "REJECT";
    checkTies(entries, i, verdict, hook, st);
    return { verdict, step: out.step };
  }
  return undefined;
}

/** The destination a rule reads: unknown where it is the address a masqueraded connection's reply comes back to, not known. */
function dstOf(st: State, what: string): string {
  if (st.dst === "") throw new Unknown(`${what}: ${st.dstWhy ?? "the address a masqueraded connection's replies come back to (the host's on the interface it left by) is not known"}`);
  return st.dst;
}

/** What `ct` sees at this priority of this hook. */
function ctAt(hook: Hook, prio: number, st: State): State["ct"] {
  if (st.p.state === "INVALID") return "none";
  if (st.untracked) return "untracked";
  if (st.looped || (hook !== "prerouting" && hook !== "output")) return "tracked";
  return prio < CONNTRACK_PRIO ? "none" : prio === CONNTRACK_PRIO ? "unsure" : "tracked";
}

/**
 * Base chains at the priority of the one that ended the packet run in an order the JSON does
 * not tell: if one that would run after it in the estimated order would end it otherwise
 * (reject, not drop), which one wins is not known.
 */
function checkTies(entries: Entry[], i: number, verdict: "DROP" | "REJECT", hook: Hook, st: State): void {
  const prio = entries[i]!.prio;
  for (const e of entries.slice(i + 1)) {
    if (e.prio !== prio) break;
    if (e.nat) throw new Unknown(`the order of the nat chains and ${baseName(entries[i]!.chains[0]!)}, both at priority ${prio} on ${hook}`);
    const dry: State = { ...st, steps: undefined, natDone: { ...st.natDone } };
    dry.ct = ctAt(hook, prio, dry);
    const out = runBase(e.chains[0]!, dry);
    if (out.kind !== "accept" && (out.kind === "drop" ? "DROP" : "REJECT") !== verdict) throw new Unknown(`the order of ${baseName(entries[i]!.chains[0]!)} and ${baseName(e.chains[0]!)}, both at priority ${prio} on ${hook}: one drops, the other rejects`);
  }
}
const baseName = (b: Base) => `${b.chain.family} ${b.chain.table} ${b.chain.name}`;

/**
 * The nat core: its chains in their order, for a connection's first packet only (the entry
 * keeps the mapping for the rest), until one of them maps it. An ESTABLISHED packet is taken
 * as a later packet of a connection that began as this one: it gets the mapping its first
 * packet got, without the chains running again.
 */
function runNat(hook: Hook, e: Entry, st: State, entries: Entry[]): Final | undefined {
  const at = NAT_AT[hook]!;
  if (st.natDone[at.manip] || st.untracked || st.p.state === "INVALID") return undefined;
  st.natDone[at.manip] = true;
  const first = st.p.state === "NEW" || st.p.state === "RELATED";
  const { steps, p } = st;
  if (!first) {
    st.steps = undefined;
    st.p = { ...p, state: "NEW" };
  }
  // Nat chains at one priority run in the order their hooks were registered, which the ruleset does not tell (the newest
  // table first stands in for it; a chain added to an older table, or a table woken from dormant, registers anew): where
  // another at the priority of the one that decides would map or drop this packet otherwise, which wins is not known (a
  // review: an admin's port forward in an older table took the wan's packet for real, and explain said Docker's DNAT).
  const natOf = (x: State) => JSON.stringify(at.manip === "dst" ? x.dnat : x.snat) ?? "";
  const tied = (i: number, snap: State, did: string): void => {
    const b = e.chains[i]!;
    for (const c of e.chains.slice(i + 1)) {
      if (c.hook.prio !== b.hook.prio) continue;
      const dry: State = { ...snap, steps: undefined, natDone: { ...snap.natDone } };
      dry.ct = "tracked";
      const out = runBase(c, dry);
      const does = out.kind !== "accept" ? out.kind : natOf(dry) === natOf(snap) ? undefined : natOf(dry);
      if (does !== undefined && does !== did) throw new Unknown(`the order of the nat chains ${baseName(b)} and ${baseName(c)}, both at priority ${b.hook.prio} on ${hook}: each would take this packet its own way`);
    }
  };
  try {
    for (let i = 0; i < e.chains.length; i++) {
      const b = e.chains[i]!;
      st.ct = "tracked";
      const before = at.manip === "dst" ? st.dnat : st.snat;
      const snap: State | undefined = first && e.chains.length > 1 ? { ...st, steps: undefined, natDone: { ...st.natDone } } : undefined;
      const out = runBase(b, st);
      if (out.kind !== "accept") {
        if (snap) tied(i, snap, out.kind);
        return first ? { verdict: out.kind === "drop" ? "DROP" : "REJECT", step: out.step } : undefined;
      }
      if ((at.manip === "dst" ? st.dnat : st.snat) === before) continue;
      if (st.loose) {
        // One of the replies after the first of a connection whose own packets are not tracked: DNATed elsewhere, it never
        // reaches the connection's client (no connection, decided by the rule that did it); a source nat is not worked out.
        if (at.manip === "dst" && !st.dnatSame) return { verdict: "DROP", step: out.step };
        if (at.manip === "src") throw new Unknown(`nat translates their source (${st.snat?.masquerade ? "masquerade" : `to ${st.snat?.addr ?? "?"}`}), which is not worked out`);
        continue;
      }
      if (snap) tied(i, snap, natOf(st));
      // A filter chain at the nat core's very priority: whether it saw the packet before or after is not known.
      const tie = entries.find((x) => !x.nat && x.prio === e.prio);
      if (tie) throw new Unknown(`the order of ${baseName(tie.chains[0]!)} and the nat chains, both at priority ${e.prio} on ${hook}`);
      // (A packet the host sends is routed again after DNAT: postrouting sees the new way out, output's chains the one it was
      // sent by, fromHost.)
      return undefined;
    }
  } finally {
    st.steps = steps;
    st.p = p;
  }
  return undefined;
}

/**
 * Chains of other kinds that see the packet too: a bridge table's (when the packet crosses a
 * bridge, which the packet does not say), a netdev or inet ingress/egress chain on its
 * interface. They are not evaluated, so an answer with one that could act would be a guess.
 */
function otherChains(rs: NftRuleset, p: Packet): void {
  for (const t of rs.tables) {
    for (const c of t.chains.values()) {
      const b = c.base;
      if (!b || (b.policy === "accept" && c.rules.length === 0)) continue;
      const device = b.hook === "ingress" || b.hook === "egress";
      if (!device && t.family !== "bridge" && t.family !== "netdev") continue;
      if (b.hook === "ingress" && b.devices && (p.fromHost || !b.devices.includes(p.in))) continue;
      throw new Unknown(`the ${t.family} ${b.hook} chain ${t.family} ${t.name} ${c.name} (not evaluated)`);
    }
  }
}

/** What happens to a packet that arrives at the host (or that the host sends: p.fromHost), as the kernel would decide it with this ruleset. */
export function evaluateNft(rs: NftRuleset, p: Packet, opts: { trace?: boolean; replies?: boolean; asReply?: { out: string; orig: Packet; dnat: boolean; snat?: boolean | null; replyTo?: string | null; host?: boolean; loose?: { flags: number } }; asLater?: { snat: boolean | null }; rec?: NftRecord; noIndex?: boolean } = {}): NftVerdict {
  const v6 = p.family === 6;
  const st: State = {
    p,
    rs,
    v6,
    path: p.fromHost ? "output" : isLocal(p, p.dst) ? "input" : "forward",
    iif: p.fromHost ? "" : p.in,
    oif: "",
    src: p.srcUnknown ? undefined : p.src,
    srcWhy: p.srcUnknown ? (p.fromHost ? "the host's source address for this destination is not known" : "the source address is not known") : undefined,
    dst: p.dst,
    dport: p.dport,
    ct: "tracked",
    untracked: false,
    looped: false,
    // A reply: its connection's mapping is applied, no nat chain runs for it (but for one that begins a connection of its own).
    natDone: { dst: Boolean(opts.asReply) && !opts.asReply?.loose, src: Boolean(opts.asReply) && !opts.asReply?.loose },
    ...(opts.asReply?.loose ? { loose: opts.asReply.loose } : {}),
    replyOut: opts.asReply?.out,
    orig: opts.asReply?.orig,
    origDnat: opts.asReply?.dnat,
    ...(opts.asReply?.snat !== undefined ? { origSnat: opts.asReply.snat } : opts.asLater ? { origSnat: opts.asLater.snat } : {}),
    // (The host's own connection from an address the walk does not know, to a neighbour say: its reply goes to that address.)
    ...(opts.asReply?.host ? { toHost: true, ...(opts.asReply.orig.srcUnknown ? { dst: "", dstWhy: "the address the host's connection is sent from, which its replies come back to, is not known" } : {}) } : {}),
    replyTo: opts.asReply?.replyTo,
    steps: opts.trace ? [] : undefined,
    ...(opts.rec ? { rec: opts.rec } : {}),
    srcIsSource: !opts.asReply && !p.srcUnknown,
    // (A reply to the host's own connection goes to the host: no row's source.)
    dstIsSource: Boolean(opts.asReply) && !opts.asReply?.host,
    dstIsDest: !opts.asReply,
    srcIsDest: Boolean(opts.asReply && !opts.asReply.dnat),
    ...(opts.noIndex ? { noIndex: true } : {}),
  };
  if (opts.rec) opts.rec.noted = true;
  // Whether the address the packet was first sent to is the host's own (or loopback) decides its way; any other is routed,
  // by routes these tests do not follow.
  if (!opts.asReply && opts.rec?.dests && !localNoted(p, p.dst, undefined, opts.rec)) opts.rec.destPoisoned = true;
  // A reply goes to its connection's source: whether that is the host's own (or loopback) decides its way (input or forward, a martian).
  if (opts.asReply && !opts.asReply.host && opts.rec) localNoted(p, p.dst, opts.rec);
  let v: NftVerdict;
  try {
    otherChains(rs, p);
    v = p.fromHost ? fromHost(st) : arriving(st);
  } catch (e) {
    if (!(e instanceof Unknown)) throw e;
    v = { verdict: "unknown", path: st.path, why: e.message, ...(e.martian ? { martian: true } : {}) };
  }
  if (st.dnat && !st.dnatSame) v.dnat = st.dnat;
  if (st.snat && v.verdict !== "unknown") v.snat = st.snat;
  if (opts.asReply && st.notrack) v.notrack = st.notrack;
  if (st.flagsRead) v.flagsRead = true;
  if (st.steps) v.steps = st.steps;
  if (opts.replies && v.verdict === "ACCEPT" && p.state === "NEW") {
    const out = st.looped ? "lo" : (st.oif ?? "");
    v = withReplyNft(rs, p, v, out, st.untracked, opts, Boolean(p.fromHost));
    if (v.verdict === "ACCEPT" && p.proto === "tcp" && !st.untracked) v = withLaterNft(rs, p, v, connectionSnat(p, v, out, Boolean(p.fromHost)).snat, opts);
  }
  return v;
}

/**
 * The source nat gave the connection `p` opened: the address its replies come back to (a
 * masquerade's, the host's address of the packet's family — a review found IPv4's taken for IPv6 —
 * on the interface the packet left by; an snat's, its address; null where not known), whether it
 * is the one the connection already had (no translation: the kernel translates nothing, a review
 * proved it with a reply taken out of conntrack, on iptables), and conntrack's SNAT status, which
 * `ct status snat` reads in the reply's and the later packets' chains.
 */
function connectionSnat(p: Packet, v: NftVerdict, out: string, host: boolean): { replyTo: string | null | undefined; same: boolean; snat: boolean | null } {
  const to = (!host && v.path !== "forward") || !v.snat ? undefined : v.snat.masquerade ? (p.local.find((l) => l.includes(":") === (p.family === 6) && !/^(127\.|::1$)/.test(l) && out !== "" && routeOf(p, l) === out) ?? null) : (v.snat.addr ?? null);
  const same = typeof to === "string" && !p.srcUnknown && sameAddr(to, p.src);
  const replyTo = same ? undefined : to;
  return { replyTo, same, snat: v.snat === undefined || same ? false : replyTo === null ? null : true };
}

/**
 * A TCP connection's later packets from the side that opened it (its ACK, its data), as the kernel
 * takes them once the reply got back (a fuzzer found connections the kernel never opened, their
 * first packet let in by a rule for new ones alone): ESTABLISHED, through the same hooks, nat's
 * mapping applied where its chains would run. A drop there is the connection's verdict.
 */
function withLaterNft(rs: NftRuleset, p: Packet, v: NftVerdict, snat: boolean | null, { rec, noIndex }: { rec?: NftRecord; noIndex?: boolean }): NftVerdict {
  const w = evaluateNft(rs, { ...p, state: "ESTABLISHED" }, { asLater: { snat }, ...(rec ? { rec } : {}), ...(noIndex ? { noIndex } : {}) });
  if (w.verdict === "unknown") return { verdict: "unknown", path: v.path, ...(v.dnat ? { dnat: v.dnat } : {}), why: `its later packets: ${w.why}` };
  if (w.verdict === "DROP" || w.verdict === "REJECT") return { ...v, verdict: w.verdict, ...(w.decided ? { decided: w.decided } : {}), later: true };
  return v;
}

/**
 * The connection's first reply, walked back as the kernel takes it (as evaluate.ts's withReply
 * does for iptables; a review found `tcp sport 22 drop` in an output chain unseen): a forwarded
 * connection's, in by the interface the packet left by, through prerouting, forward and
 * postrouting; the host's own, through output and postrouting. ESTABLISHED, and no nat chain
 * runs for it. A drop there is the connection's verdict; what cannot be told, unknown. An ICMP
 * message other than an echo request has no reply walked.
 *
 * `host`: a connection the host opened to another machine or a container, its reply in by the
 * interface the packet left by, through prerouting and input (nat maps a masqueraded one's back
 * to the host's address, a DNATed one's to the address it was sent to): a drop there closes it
 * (the host's input dropping a container's replies, say). To the host itself, the reply the host
 * sends, out and in again by lo. From loopback, DNATed to a container: its reply in by the bridge,
 * to 127.0.0.1 once nat maps it back.
 */
function withReplyNft(rs: NftRuleset, p: Packet, v: NftVerdict, out: string, untracked: boolean, { rec, noIndex }: { rec?: NftRecord; noIndex?: boolean }, host: boolean): NftVerdict {
  // To the host itself: the host sends the reply (output, postrouting) and takes it in again by lo (prerouting, input; a fuzzer
  // found a drop of it in output unseen). From 127.0.0.1, DNATed out to a container: its reply comes back by the bridge, to
  // 127.0.0.1 once nat maps it back (route_localnet, which the walk out already takes for given; a drop of it in input
  // closes the connection, proven with packets).
  const looped = host && out === "lo" && v.path === "input";
  if (host && !looped && (out === "" || out === "lo" || v.path !== "output")) return v;
  const r = replyOf(p, v, out || undefined, untracked, looped ? false : host || undefined);
  if (!r) return v;
  const { replyTo, same, snat } = connectionSnat(p, v, out, host);
  // (The UDP reply of a connection whose own packets are not tracked begins a connection of its own: nat's chains run for it,
  // and a DNAT elsewhere takes it away from the client, as for a TCP one's replies after the first below.)
  const ownUdp = untracked && p.proto === "udp";
  const w = evaluateNft(rs, r, { asReply: { out: host ? "lo" : p.in, orig: p, dnat: v.dnat !== undefined, snat, ...(host ? { host } : {}), ...(replyTo !== undefined ? { replyTo } : {}), ...(ownUdp ? { loose: { flags: 0 } } : {}) }, ...(rec ? { rec } : {}), ...(noIndex ? { noIndex } : {}) });
  if (w.verdict === "unknown") return { verdict: "unknown", path: v.path, ...(v.dnat ? { dnat: v.dnat } : {}), why: `its reply: ${w.why}` };
  if (w.verdict === "DROP" || w.verdict === "REJECT") return { ...v, verdict: w.verdict, ...(w.decided ? { decided: w.decided } : {}), reply: true, ...(ownUdp && w.decided?.action === "dnat" ? { replyDnat: true } : {}) };
  // A reply taken out of conntrack is not translated back (a review proved it with packets on iptables): a DNATed connection's
  // leaves from the container's own address and port, a masqueraded one's stays addressed to the host.
  if (w.notrack && !untracked && (v.dnat !== undefined || (v.snat !== undefined && !same))) return { ...v, verdict: "DROP", decided: w.notrack, reply: true, untracked: true };
  // A TCP connection whose own packets are not tracked: its SYN-ACK had no entry (invalid), and the replies after it (the
  // server's ACK, its data) are taken by conntrack for a connection of their own (nf_conntrack_tcp_loose, on by default),
  // new each time, as no packet of the other way is seen; nat's chains run for them. Where they do not get through, a FIN
  // the server sends its data with is invalid (a FIN begins no connection): where that gets through, whether the client gets
  // the data depends on the server (proven with packets: unknown). As evaluate.ts withLooseReplies.
  if (untracked && p.proto === "tcp") {
    const why = "its replies after the first (a new connection to conntrack: the connection's own packets are not tracked)";
    const { ack, psh, fin } = TCPFLAGS as { ack: number; psh: number; fin: number };
    const walkOf = (state: "NEW" | "INVALID", flags: number) =>
      evaluateNft(rs, { ...r, state }, { asReply: { out: host ? "lo" : p.in, orig: p, dnat: false, snat: false, ...(host ? { host } : {}), loose: { flags } }, ...(rec ? { rec } : {}), ...(noIndex ? { noIndex } : {}) });
    // Each with and without PSH where a test read the flags: an answer that differs is not known.
    const variant = (state: "NEW" | "INVALID", flags: number): NftVerdict => {
      const a = walkOf(state, flags | psh);
      if (!a.flagsRead || a.verdict === "unknown") return a;
      const b = walkOf(state, flags);
      return b.verdict === a.verdict ? a : { verdict: "unknown", path: a.path, why: "tcp flags: a packet with data (PSH) and one without answer it otherwise" };
    };
    const data = variant("NEW", ack);
    if (data.verdict === "unknown") return { verdict: "unknown", path: v.path, ...(v.dnat ? { dnat: v.dnat } : {}), why: `${why}: ${data.why}` };
    if (data.verdict === "ACCEPT") return v;
    const finned = variant("INVALID", ack | fin);
    if (finned.verdict === "unknown") return { verdict: "unknown", path: v.path, ...(v.dnat ? { dnat: v.dnat } : {}), why: `${why}: ${finned.why}` };
    const d = data.decided;
    const away = d?.action === "dnat";
    if (finned.verdict === "ACCEPT") {
      const how = !d ? "dropped" : away ? `DNATed elsewhere by ${d.family} ${d.table} ${d.chain}` : `dropped by ${d.family} ${d.table} ${d.chain}${d.index < 0 ? " (its policy)" : ""}`;
      return { verdict: "unknown", path: v.path, ...(v.dnat ? { dnat: v.dnat } : {}), why: `${why}: the server's data is ${how}, but a FIN sent with it (invalid to conntrack) gets through: whether the client gets an answer depends on the server` };
    }
    // (A DROP decided by a dnat: DNATed elsewhere, away from the connection's client.)
    return { ...v, verdict: data.verdict, ...(d ? { decided: d } : {}), reply: true, replyLoose: true, ...(away ? { replyDnat: true } : {}) };
  }
  return v;
}

const done = (st: State, f: Final | undefined): NftVerdict | undefined => (f ? { verdict: f.verdict, path: st.path, decided: f.step } : undefined);
const accepted = (st: State): NftVerdict => ({ verdict: "ACCEPT", path: st.path, decided: st.lastAccept });

/** A packet from outside to a loopback address (evaluate.ts loopbackFromOutside): IPv6's before prerouting, IPv4's after. */
function loopback(p: Packet, to: string, family: 4 | 6): void {
  if (p.family !== family || p.bridged || p.fromHost || p.in === "lo") return;
  const a = addrOf(to);
  if (!a || !(family === 4 ? a.n >> 24n === 127n : a.n === 1n)) return;
  throw Object.assign(new Unknown(martianWhy(p, to)), { martian: true });
}

/** From outside: prerouting, the routing decision (after DNAT), then input, or forward and postrouting. */
function arriving(st: State): NftVerdict {
  const { p } = st;
  st.oif = "";
  // (The reply of the host's own connection from loopback is no packet from outside to it: its connection is the host's.)
  if (!st.toHost) loopback(p, p.dst, 6);
  const pre = done(st, runHook("prerouting", st));
  if (pre) return pre;
  st.natDone.dst = true;
  if (!st.toHost) loopback(p, st.dst, 4);
  if (p.bridged) {
    // Bridged (br_netfilter): in and out by ports of one bridge; routing after a DNAT is not modelled.
    if (st.dnat) throw new Unknown("a DNAT of a bridged packet");
    st.path = "forward";
    st.oif = p.in;
  } else if (st.toHost || isLocal(p, st.dst)) {
    st.path = "input";
    return done(st, runHook("input", st)) ?? accepted(st);
  } else {
    st.path = "forward";
    st.oif = st.replyOut ?? routeOf(p, st.dst);
  }
  return done(st, runHook("forward", st)) ?? done(st, runHook("postrouting", st)) ?? accepted(st);
}

/** From the host: output and postrouting; addressed to the host itself, then in again by lo: prerouting and input. */
function fromHost(st: State): NftVerdict {
  const { p } = st;
  st.oif = isLocal(p, st.dst) ? "lo" : (st.replyOut ?? routeOf(p, st.dst));
  const sent = done(st, runHook("output", st));
  if (sent) return sent;
  // Routed again after a DNAT in output: the hook's chains all saw the interface it was sent by (the kernel's trace shows
  // that; a fuzzer found `oifname` read as the new one), postrouting sees the new one.
  if (st.dnat) {
    st.oif = isLocal(p, st.dst) ? "lo" : routeOf(p, st.dst);
    // (From 127.0.0.1 out of another interface than lo: only with route_localnet, evaluate.ts loopbackOut.)
    const rerouted = loopbackOut(p, st.oif);
    if (rerouted?.dropped) return { verdict: "DROP", path: st.path, kernel: rerouted.why };
    if (rerouted) throw new Unknown(rerouted.why);
  }
  const out = done(st, runHook("postrouting", st));
  if (out) return out;
  if (!isLocal(p, st.dst)) {
    const left = loopbackLeaves(p, st.oif, () => st.snat);
    if (left?.dropped) return { verdict: "DROP", path: st.path, kernel: left.why };
    if (left) throw new Unknown(left.why);
    return accepted(st);
  }
  // Its conntrack entry, mapped both ways already, comes back in with it.
  st.natDone = { dst: true, src: true };
  st.path = "input";
  st.looped = true;
  st.iif = "lo";
  st.oif = "";
  return done(st, runHook("prerouting", st)) ?? done(st, runHook("input", st)) ?? accepted(st);
}

// ------------------------------------------------------- source classes ----

/**
 * What the matrix walks an nftables ruleset with (matrix.ts, MatrixContext's nft): each packet,
 * its replies too; the classes of sources, of source ports, of the host's addresses and of its
 * ports its rules tell apart. A gap where its rules read the source, a source port or a port of
 * the host's in a way these cannot follow: the classes would be a guess.
 */
export function nftMatrixWalk(rs: NftRuleset): NonNullable<MatrixContext["nft"]> | { gap: string } {
  const sourcePorts = nftSourcePorts(rs);
  const inputPorts = nftInputPorts(rs);
  // (The destinations too: a connection's replies go back to its source, so a rule that reads a destination another way, `ip
  // daddr & 255.0.255.255 == 10.0.0.1` say, may tell sources apart where no cut is made: the rows would be a guess there.)
  const dests = ([4, 6] as const).map((f) => nftSourceRanges(rs, f, "daddr"));
  const gap = [...([4, 6] as const).map((f) => nftSourceRanges(rs, f).incomplete), ...dests.map((d) => d.incomplete), sourcePorts.incomplete, inputPorts.incomplete].find(Boolean);
  if (gap) return { gap };
  // Docker's own tables alone (its nftables backend's, or dockwall's copy of them with "iptables": false): what the containers' and the host's own traffic is meant to meet.
  const dockers: NftRuleset = { tables: rs.tables.filter((t) => t.name === "docker-bridges" && (t.family === "ip" || t.family === "ip6") && !t.dormant) };
  return {
    // A connection is open only if its replies get back too.
    walk: (pk, rec) => evaluateNft(rs, pk, { replies: true, ...(rec ? { rec } : {}) }),
    ...(dockers.tables.length ? { docker: (pk: Packet, rec?: NftRecord) => evaluateNft(dockers, pk, { replies: true, ...(rec ? { rec } : {}) }) } : {}),
    sources: (f) => nftSourceRanges(rs, f).ranges,
    sourcePorts: sourcePorts.ranges.map((r) => new PortList(r.from === r.to ? `${r.from}` : `${r.from}:${r.to}`)),
    inputPorts: inputPorts.ranges,
    interfaces: nftInterfaces(rs),
    // The host's addresses told apart where the rules look at destinations (and sources: replies); each walked where they cannot all be read.
    destinations: (f) => [...dests[f === 4 ? 0 : 1]!.ranges, ...nftSourceRanges(rs, f).ranges],
  };
}

/** The input interfaces its rules name (`iifname "eth1"`, or in a set; a wildcard `wg*` as `wg+`): where a change's rows are made (matrix.ts). */
function nftInterfaces(rs: NftRuleset): string[] {
  const out = new Set<string>();
  const visit = (j: Json | undefined): void => {
    if (Array.isArray(j)) return j.forEach(visit);
    if (!isObj(j)) return;
    const m = j.match;
    if (isObj(m) && isObj(m.left) && isObj(m.left.meta) && m.left.meta.key === "iifname" && m.op !== "!=") {
      const r = m.right;
      // (A wildcard, `wg*`, as iptables spells it: `wg+`.)
      for (const v of typeof r === "string" ? [r] : isObj(r) && Array.isArray(r.set) ? r.set : []) if (typeof v === "string" && !v.slice(0, -1).includes("*")) out.add(v.endsWith("*") ? `${v.slice(0, -1)}+` : v);
    }
    for (const v of Object.values(j)) if (v !== null && typeof v === "object") visit(v);
  };
  for (const t of rs.tables) for (const c of t.chains.values()) for (const r of c.rules) visit(r.expr);
  return [...out];
}

/**
 * Every source address range a rule of this family looks at — `ip saddr` / `ip6 saddr` or
 * `ct original|reply ip saddr`, alone or in a concatenation, compared with a value, a prefix, a
 * range or a set, or as the key of a verdict map or map — where the matrix cuts the address
 * space, so that each class of sources is one the rules treat alike (with `daddr`: every
 * destination range, where the host's own addresses are told apart). `incomplete`: a rule reads
 * the source in a way these do not cover (a mask, a set not listed…): the classes may then be
 * too coarse, and the caller says so rather than guess.
 */
export function nftSourceRanges(rs: NftRuleset, family: 4 | 6, field: "saddr" | "daddr" = "saddr"): { ranges: { from: bigint; to: bigint }[]; incomplete?: string } {
  const proto = family === 4 ? "ip" : "ip6";
  // A source (or, with `daddr`, destination) address of this family: the packet's own, or its connection's (ct original|reply).
  const isRead = (j: Json | undefined): boolean =>
    isObj(j) &&
    ((isObj(j.payload) && j.payload.protocol === proto && j.payload.field === field) ||
      (isObj(j.ct) && (j.ct.key === `${proto} ${field}` || (j.ct.key === field && (j.ct.family === undefined || j.ct.family === proto)))));
  const toNum = (a: Json): bigint | undefined => {
    const ip = typeof a === "string" ? readIp(a) : undefined;
    return ip && ip.family === family ? ip.value : undefined;
  };
  return rangesRead(rs, (t) => t.family === proto || t.family === "inet", isRead, toNum, family === 4 ? 32 : 128, `${proto} ${field}`);
}

/**
 * Every range of ports a rule compares a packet's source port with — `tcp sport`, `udp sport`,
 * `th sport`, `ct original proto-src` — in the ways nftSourceRanges reads addresses: where the
 * matrix walks one packet per class of source ports (a neighbour picks its own, and `udp sport 53
 * accept` opens to any that picks 53). `incomplete`: one is read another way.
 */
export function nftSourcePorts(rs: NftRuleset): { ranges: { from: number; to: number }[]; incomplete?: string } {
  const l4 = ["tcp", "udp", "th", "udplite", "sctp", "dccp"];
  const isRead = (field: "sport" | "dport") => (j: Json | undefined): boolean =>
    isObj(j) && ((isObj(j.payload) && j.payload.field === field && l4.includes(str(j.payload.protocol) ?? "")) || (isObj(j.ct) && j.ct.key === (field === "sport" ? "proto-src" : "proto-dst") && j.ct.dir !== "reply"));
  const toNum = (v: Json): bigint | undefined => (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 65535 ? BigInt(v) : undefined);
  const r = rangesRead(rs, () => true, isRead("sport"), toNum, 16, "sport");
  // The host's replies (its services'): their destination port is the source port of the connection, in output and postrouting.
  const out = chainsFrom(rs, (b) => (b.hook === "output" || b.hook === "postrouting") && b.type !== "nat");
  const d = rangesRead(rs, () => true, isRead("dport"), toNum, 16, "dport", (_t, c) => out.has(c));
  const incomplete = r.incomplete ?? d.incomplete;
  return { ranges: [...r.ranges, ...d.ranges].map((x) => ({ from: Number(x.from), to: Number(x.to) })), ...(incomplete ? { incomplete } : {}) };
}

/**
 * Every range of ports a rule on the way to the host's own sockets compares a destination port
 * with — `tcp dport`, `udp dport`, `th dport`, `ct original proto-dst` — in the base chains on the
 * input and prerouting hooks and the chains they jump to: where the matrix cuts the host's ports into classes
 * (a review found a hand-made accept of a port no `host` statement names unseen).
 */
export function nftInputPorts(rs: NftRuleset): { ranges: { from: number; to: number }[]; incomplete?: string } {
  const reached = chainsFrom(rs, (b) => b.hook === "input" || b.hook === "prerouting");
  const isRead = (j: Json | undefined): boolean =>
    isObj(j) && ((isObj(j.payload) && j.payload.field === "dport" && ["tcp", "udp", "th", "udplite", "sctp", "dccp"].includes(str(j.payload.protocol) ?? "")) || (isObj(j.ct) && j.ct.key === "proto-dst" && j.ct.dir !== "reply"));
  const toNum = (v: Json): bigint | undefined => (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 65535 ? BigInt(v) : undefined);
  const r = rangesRead(rs, () => true, isRead, toNum, 16, "dport", (_t, c) => reached.has(c));
  return { ranges: r.ranges.map((x) => ({ from: Number(x.from), to: Number(x.to) })), ...(r.incomplete ? { incomplete: r.incomplete } : {}) };
}

/** The base chains `start` picks and every chain they jump or go to (by rule, or by a verdict map's elements). */
function chainsFrom(rs: NftRuleset, start: (b: NftHook) => boolean): Set<NftChain> {
  const reached = new Set<NftChain>();
  const visit = (t: NftTable, c: NftChain | undefined): void => {
    if (!c || reached.has(c)) return;
    reached.add(c);
    const targets = (j: Json): void => {
      if (Array.isArray(j)) return j.forEach(targets);
      if (!isObj(j)) return;
      for (const k of ["jump", "goto"]) {
        const x = j[k];
        if (isObj(x) && typeof x.target === "string") visit(t, t.chains.get(x.target));
      }
      for (const v of Object.values(j)) if (v !== null && typeof v === "object") targets(v);
    };
    for (const r of c.rules) targets(r.expr);
    // A verdict map's jumps in a named map: its elements.
    for (const set of t.sets.values()) if (c.rules.some((r) => JSON.stringify(r.expr).includes(`"@${set.name}"`))) targets(set.elem ?? []);
  };
  for (const t of rs.tables) for (const c of t.chains.values()) if (c.base && start(c.base)) visit(t, c);
  return reached;
}

/** The ranges of values each rule of these tables (and chains) compares a read (`isRead`) with: values, prefixes, ranges, sets, map keys; `incomplete` when one is read otherwise. */
function rangesRead(
  rs: NftRuleset,
  tableOk: (t: NftTable) => boolean,
  isRead: (j: Json | undefined) => boolean,
  toNum: (v: Json) => bigint | undefined,
  bits: number,
  label: string,
  chainOk: (t: NftTable, c: NftChain) => boolean = () => true,
): { ranges: { from: bigint; to: bigint }[]; incomplete?: string } {
  const ranges: { from: bigint; to: bigint }[] = [];
  let incomplete: string | undefined;
  const value = (v: Json): void => {
    if (typeof v === "string" || typeof v === "number") {
      const n = toNum(v);
      if (n !== undefined) ranges.push({ from: n, to: n });
      return;
    }
    if (!isObj(v)) return;
    if (isObj(v.elem)) return value(v.elem.val ?? null);
    if (isObj(v.prefix)) {
      const n = toNum(v.prefix.addr ?? null);
      const len = num(v.prefix.len);
      if (n === undefined || len === undefined) return;
      const host = (1n << BigInt(bits - len)) - 1n;
      ranges.push({ from: n & ~host, to: (n & ~host) | host });
      return;
    }
    if (Array.isArray(v.range)) {
      const a = toNum(v.range[0] ?? null);
      const b = toNum(v.range[1] ?? null);
      if (a !== undefined && b !== undefined) ranges.push({ from: a, to: b });
    }
  };
  const count = (j: Json): number => (isRead(j) ? 1 : Array.isArray(j) ? j.reduce((n: number, x) => n + count(x), 0) : isObj(j) ? Object.values(j).reduce((n: number, x) => n + count(x ?? null), 0) : 0);
  /** The elements a set or map reference holds (a map's as [key, value]); undefined when it cannot be read. */
  const elementsIn = (d: Json, table: NftTable): Json[] | undefined =>
    typeof d === "string" && d.startsWith("@") ? table.sets.get(d.slice(1))?.elem : isObj(d) && Array.isArray(d.set) ? d.set : undefined;
  const keyOfElem = (e: Json): Json => {
    const inner = isObj(e) && isObj(e.elem) ? (e.elem.val ?? null) : e;
    return Array.isArray(inner) ? (inner[0] ?? null) : inner;
  };
  /** Cuts at the read's component of each value compared with (or keyed by) `left`; the number of reads it covers. */
  const lookup = (left: Json | undefined, elems: Json[] | undefined, what: string): number => {
    const parts = isObj(left) && Array.isArray(left.concat) ? left.concat : [left ?? null];
    const at = parts.findIndex(isRead);
    if (at < 0) return 0;
    if (!elems) {
      incomplete ??= what;
      return 0;
    }
    for (const e of elems) {
      const k = keyOfElem(e);
      const c = parts.length > 1 ? (isObj(k) && Array.isArray(k.concat) ? k.concat[at] : undefined) : k;
      if (c === undefined) incomplete ??= `a concatenation with ${label}`;
      else value(c);
    }
    return 1;
  };
  const walk = (j: Json, table: NftTable): number => {
    if (Array.isArray(j)) return j.reduce((n: number, x) => n + walk(x, table), 0);
    if (!isObj(j)) return 0;
    let covered = 0;
    if (isObj(j.match)) {
      const right = j.match.right ?? null;
      const elems = typeof right === "string" && right.startsWith("@") ? elementsIn(right, table) : isObj(right) && Array.isArray(right.set) ? right.set : [right];
      covered += lookup(j.match.left, elems, `the set ${String(right)} (not in the listing)`);
    }
    for (const k of ["vmap", "map"]) {
      const m = j[k];
      if (isObj(m)) covered += lookup(m.key, elementsIn(m.data ?? null, table), `the map ${String(m.data)} (not in the listing)`);
    }
    for (const v of Object.values(j)) if (v !== null && typeof v === "object") covered += walk(v, table);
    return covered;
  };
  for (const t of rs.tables) {
    if (!tableOk(t)) continue;
    for (const c of t.chains.values()) {
      if (!chainOk(t, c)) continue;
      for (const r of c.rules) {
        // Every read must be one of the shapes above: a mask, a bitwise test, anything else is not.
        if (walk(r.expr, t) < count(r.expr)) incomplete ??= `${label} read another way, in ${r.family} ${r.table} ${r.chain} rule handle ${r.handle}: ${r.text}`;
      }
    }
  }
  return { ranges, ...(incomplete ? { incomplete } : {}) };
}
