// The matrix's rows of the host's own peers (../shared/spec/analysis.md, "Rows": each Docker
// network's containers; the host): what a container, or the host itself, reaches of the
// published ports, the host's services and the containers' own addresses. The policy leaves
// that traffic to Docker ("Traffic from the host itself and between containers follows
// Docker's own rules"), so a cell's intent is what Docker's own rules for these networks and
// containers do with the same packet (dockersOwn: the rules dockerd writes, rule for rule),
// except the host's services, which the host block gives by zone (a container's packet is in
// the zones that hold its bridge and address: `any`, say). Pure.
//
// A network's containers are one row, walked from its first container's address; another
// container's address that answers every test of the source those walks made alike goes the
// same way (exact: a walk depends on its source only through them), else it is walked again
// where it answers one otherwise (its own published ports, hairpinned, as a rule) and, where
// its cells differ, is a row of its own. Not here: two containers of one network (their
// packets are bridged, and whether the kernel's rules see them at all is br_netfilter's), and
// 127.0.0.1 from a container (its own loopback).
import type { Policy } from "../model/types.js";
import { addressOn, byName, gatewayOf, publishingNetwork } from "../model/derive.js";
import { cidrContains, formatIp, type Family, type Ip } from "../model/values.js";
import { eachSourcePort, numOf, sameDestination, sameWay, sourceOf, type DestinationTest, type Packet, type PortTest, type SourceTest } from "./evaluate.js";
import { admits, cellJson, fmtAddr, probeProtocol, type MatrixCell, type MatrixPath, type MatrixRow, type Walked } from "./matrix.js";

/** A column as the matrix worked it out (published: the container's address it DNATs to; proxied: docker-proxy holds it). */
export interface PeerColumn {
  id: string;
  kind: "published" | "host" | "icmp" | "network";
  proto: "tcp" | "udp" | "icmp";
  container?: string;
  host_address?: string;
  host_port?: number;
  container_port?: number;
  containerAddr?: string;
  loopbackOnly?: boolean;
  proxied: boolean;
  /** network: its containers' addresses (matrix.ts foreignColumns). */
  addrs?: string[];
}

/** One walk: its verdict, and the tests of the source address and port it made (none known: undefined). */
export interface PeerWalk {
  verdict: Walked;
  sources?: SourceTest[];
  sports: PortTest[];
  /** Its tests of the destination (one of the host's addresses): another address that answers them alike goes its way. */
  dests?: DestinationTest[];
}

export interface PeerInput {
  policy: Policy;
  family: Family;
  columns: PeerColumn[];
  /** The rules the matrix is of. */
  walk: (pk: Packet) => PeerWalk;
  /** The rules before a change (reachability): each cell's verdict there too. */
  walkBefore?: (pk: Packet) => PeerWalk;
  /** Docker's own rules for these networks and containers: the intent of what the policy leaves to Docker. */
  docker: (pk: Packet) => PeerWalk;
  /** The host's addresses a packet to the host is walked to (one of each class the rules tell apart). */
  hostAddresses: string[];
  local: string[];
  routes: { dst: string; dev: string }[];
  /** IPv4: where route_localnet is on (Packet.localnet), for the host's own packets. */
  localnet?: Packet["localnet"];
  /** nftables: the source ranges their rules look at (a class whose walks could not note their tests of the source holds containers in one of each set of them alike). */
  sourceRanges?: { from: bigint; to: bigint }[];
  only?: "mismatches";
  /** Every container walked over every slot, none taken from a walk that went the same way (tests compare both ways). */
  walkEach?: boolean;
}

const SPORT = 40000;
const VERDICTS = ["open", "closed", "unknown"] as const;

interface Slot {
  col: PeerColumn;
  path: MatrixPath;
  dsts: string[];
  port: number | undefined;
  /** The source of the host's own packet to each destination (the kernel picks it). */
  hostSrc?: (dst: string) => string;
  opened: (v: Walked) => boolean;
  /** The intent: from Docker's own rules (undefined), or the host block's. */
  allowed?: (src: Ip) => boolean;
}

/** The rows of each Docker network's containers, then the host's, with their cells (in the matrix's order: rows, then their cells). */
export function peerRows(inp: PeerInput): { rows: MatrixRow[]; cells: MatrixCell[] } {
  const { policy: p, family } = inp;
  const fam = family === 4 ? "ipv4" : "ipv6";
  const zones = byName(p.zones);
  const nets = byName(p.networks);
  const rows: MatrixRow[] = [];
  const cells: MatrixCell[] = [];
  const reached = (col: PeerColumn) => (v: Walked) => v.verdict === "ACCEPT" && ((v.dnat !== undefined && v.dnat.addr === col.containerAddr) || (v.path === "input" && col.proxied && v.dnat === undefined));
  const hostRules = (col: PeerColumn) => (p.host?.rules ?? []).filter((r) => (col.kind === "icmp" ? r.proto.value === "icmp" : r.proto.value === col.proto && r.ports.some((x) => x.value.from <= col.host_port! && col.host_port! <= x.value.to)));

  // The walks of one sender over every slot: each cell's verdict (the most a destination and source port give: open, else unknown, else closed), intent and verdict before.
  const RANK = [2, 0, 1];
  const code = (v: Walked, slot: Slot) => (v.verdict === "unknown" ? 2 : slot.opened(v) ? 0 : 1);
  type Cell = { v: Walked; dst: string; sport: number; unknownTests: boolean };
  // Per slot and walk, the cells worked out so far, with the tests of the source their walks made: a sender that answers them
  // alike gets the same cell, as its own walks would go the same way (each container of a network has tests of its own, its
  // own published ports hairpinned: the cells of the other ports are taken from the walks of the first).
  const memos = new WeakMap<Slot, Map<(pk: Packet) => PeerWalk, { tests: SourceTest[]; cell: Cell }[]>>();
  const cellOf = (slot: Slot, pk: (dst: string, sport: number) => Packet, walk: (pk: Packet) => PeerWalk, tests: SourceTest[][], probe?: ReturnType<typeof sourceOf>): Cell => {
    const keep = probe && !inp.walkEach;
    let memo = keep ? memos.get(slot) : undefined;
    if (keep && !memo) memos.set(slot, (memo = new Map()));
    const seen = memo?.get(walk) ?? [];
    for (const e of seen) {
      if (!sameWay(e.tests, probe!)) continue;
      tests.push(e.tests);
      return e.cell;
    }
    const own: SourceTest[] = [];
    const cell = cellWalked(slot, pk, walk, own);
    tests.push(own);
    if (memo && !cell.unknownTests) memo.set(walk, [...seen, { tests: own, cell }]);
    return cell;
  };
  const cellWalked = (slot: Slot, pk: (dst: string, sport: number) => Packet, walk: (pk: Packet) => PeerWalk, tests: SourceTest[]): Cell => {
    let best: { v: Walked; dst: string; sport: number } | undefined;
    let unknownTests = false;
    const made: PeerWalk[] = [];
    const local = (a: string) => inp.local.includes(a);
    const walkedTo: string[] = [];
    for (const dst of slot.dsts) {
      // An address every walk so far answers alike (their tests of the destination, and the host's own or not as theirs) goes their way: nothing new there.
      if (made.length && walkedTo.every((a) => local(a) === local(dst)) && made.every((w) => w.dests !== undefined && sameDestination(w.dests, numOf(dst)))) continue;
      walkedTo.push(dst);
      const one = (sport: number) => {
        const w = walk(pk(dst, sport));
        made.push(w);
        if (w.sources) tests.push(...w.sources);
        else unknownTests = true;
        return w;
      };
      const walks = slot.col.proto === "icmp" ? [{ port: SPORT, walked: one(SPORT) }] : eachSourcePort(SPORT, 1, 65535, one, (w) => code(w.verdict, slot) === 0);
      if (!walks) return { v: { verdict: "unknown", path: "input", why: "its rules tell more than 256 classes of source ports apart" }, dst, sport: SPORT, unknownTests };
      for (const w of walks) if (!best || RANK[code(w.walked.verdict, slot)]! > RANK[code(best.v, slot)]!) best = { v: w.walked.verdict, dst, sport: w.port };
      if (best && code(best.v, slot) === 0) break;
    }
    return { ...best!, unknownTests };
  };

  interface Walks {
    /** Per slot: its cell's verdict, intent and verdict before, as one code. */
    codes: number[];
    /** Per slot: the walk its cell is shown by (destination, source port, why). */
    now: Cell[];
    /** The tests of its walks, walk by walk, slot after slot: slot k's from `from[k]` to `from[k + 1]`. */
    tests: SourceTest[][];
    from: number[];
    /** A walk noted no tests (nftables): alike only by the ranges its rules look at. */
    opaque: boolean;
  }
  /**
   * Every slot's cell for one sender. With `base` (a class of this network's senders, and the slots where this sender answers
   * a test of its walks otherwise), the others' cells are the class's: walked, they would go the same way (a review of the
   * time it took: each container of 1,000 walked over 8,000 slots, where its own published ports alone go their own way).
   */
  /** One slot's cell for one sender: its code (verdict, intent, verdict before), the walk it is shown by, whether a walk noted no tests. */
  const walkSlot = (slot: Slot, src: Ip | undefined, packet: (slot: Slot, dst: string, sport: number) => Packet, tests: SourceTest[][], probe?: ReturnType<typeof sourceOf>): { code: number; now: Cell; opaque: boolean } => {
    const pk = (dst: string, sport: number) => packet(slot, dst, sport);
    const now = cellOf(slot, pk, inp.walk, tests, probe);
    const docker = slot.allowed === undefined ? cellOf(slot, pk, inp.docker, tests, probe) : undefined;
    const before = inp.walkBefore ? cellOf(slot, pk, inp.walkBefore, tests, probe) : undefined;
    const intent = docker ? code(docker.v, slot) === 0 : slot.allowed!(src!);
    return { code: code(now.v, slot) + 3 * (intent ? 1 : 0) + 6 * (before ? code(before.v, slot) : 3), now, opaque: now.unknownTests || (before?.unknownTests ?? false) };
  };
  /**
   * Every slot's cell for one sender. With `base` (a class of this network's senders, and the slots where this sender answers
   * a test of its walks otherwise), the others' cells are the class's: walked, they would go the same way (a review of the
   * time it took: each container of 1,000 walked over 8,000 slots, where its own published ports alone go their own way).
   */
  const walkAll = (slots: Slot[], src: Ip | undefined, packet: (slot: Slot, dst: string, sport: number) => Packet, probe?: ReturnType<typeof sourceOf>, base?: { walks: Walks; affected: Set<number> }): Walks => {
    const tests: SourceTest[][] = [];
    const from: number[] = [];
    let opaque = base?.walks.opaque ?? false;
    const codes: number[] = new Array(slots.length);
    const now: Cell[] = new Array(slots.length);
    for (let k = 0; k < slots.length; k++) {
      from.push(tests.length);
      if (base && !base.affected.has(k)) {
        codes[k] = base.walks.codes[k]!;
        now[k] = base.walks.now[k]!;
        for (let i = base.walks.from[k]!; i < base.walks.from[k + 1]!; i++) tests.push(base.walks.tests[i]!);
        continue;
      }
      const w = walkSlot(slots[k]!, src, packet, tests, probe);
      codes[k] = w.code;
      now[k] = w.now;
      opaque ||= w.opaque;
    }
    from.push(tests.length);
    return { codes, now, tests, from, opaque };
  };
  /** Whether a sender's cells where it answers a test of a class's walks otherwise are the class's all the same (as walkAll would find). */
  const alikeWhere = (slots: Slot[], base: { walks: Walks; affected: Set<number> }, src: Ip, packet: (slot: Slot, dst: string, sport: number) => Packet, probe: ReturnType<typeof sourceOf>): boolean => {
    const tests: SourceTest[][] = [];
    for (const k of base.affected) if (walkSlot(slots[k]!, src, packet, tests, probe).code !== base.walks.codes[k]) return false;
    return true;
  };
  /** A sender's cells as `--json` has them (verify: only those not what the policy says, or unknown). */
  const cellsOf = (slots: Slot[], w: Walks, label: string): Omit<MatrixCell, "row">[] => {
    const out: Omit<MatrixCell, "row">[] = [];
    for (let k = 0; k < slots.length; k++) {
      const slot = slots[k]!;
      const c = w.codes[k]!;
      const verdict = VERDICTS[c % 3]!;
      const intent = Math.floor(c / 3) % 2 === 1;
      const b = Math.floor(c / 6);
      const mismatch = verdict !== "unknown" && (verdict === "open") !== intent;
      if (inp.only === "mismatches" && !mismatch && verdict !== "unknown") continue;
      const n = w.now[k]!;
      const from = n.sport === SPORT || slot.col.proto === "icmp" ? label : `${label}:${n.sport}`;
      out.push(cellJson(slot.col.id, family, slot.path, verdict, intent, mismatch, `${probeProtocol(slot.col.proto, family)} ${from} -> ${fmtAddr(n.dst, slot.port)}`, n.v.why, b !== 3 ? VERDICTS[b]! : undefined));
    }
    return out;
  };
  /**
   * A class's tests, each once (by what it tests and its answer, not by the object: every walk makes its own), with the
   * slots whose walks made it: a sender that answers one otherwise is walked again there only.
   */
  type Checks = { test: SourceTest; slots: number[] }[];
  const setIds = new WeakMap<object, number>();
  let setCount = 0;
  const checksOf = (w: Walks): Checks => {
    const by = new Map<string, { test: SourceTest; slots: number[] }>();
    const lists = new Map<SourceTest[], number[]>();
    for (let k = 0; k + 1 < w.from.length; k++) {
      for (let i = w.from[k]!; i < w.from[k + 1]!; i++) {
        const list = w.tests[i]!;
        const at = lists.get(list);
        if (!at) lists.set(list, [k]);
        else if (at.at(-1) !== k) at.push(k);
      }
    }
    for (const [list, slots] of lists) {
      for (const t of list) {
        let key: string;
        if (t.kind === "local") key = `L${t.hit}`;
        else if (t.kind === "set") {
          let id = setIds.get(t.members!);
          if (id === undefined) setIds.set(t.members!, (id = setCount++));
          key = `S${id} ${t.v6} ${t.hit}`;
        } else key = `${t.v6} ${t.from} ${t.to} ${t.hit}`;
        const e = by.get(key);
        if (!e) by.set(key, { test: t, slots: [...slots] });
        else for (const k of slots) e.slots.push(k);
      }
    }
    return [...by.values()];
  };
  /** The slots where a sender answers one of a class's tests otherwise (none: it goes the class's way everywhere). */
  const affectedBy = (checks: Checks, probe: ReturnType<typeof sourceOf>): Set<number> => {
    const out = new Set<number>();
    for (const ch of checks) if (!sameWay([ch.test], probe)) for (const k of ch.slots) out.add(k);
    return out;
  };

  // Each network's containers.
  for (const n of p.networks) {
    const subnets = n.subnets.filter((s) => s.value.family === family);
    if (!subnets.length) continue;
    // A container sends to the host and beyond by its default route: through its gateway network (the one it publishes on),
    // from its address there. One on internal networks alone has no default route: it reaches its networks' own addresses
    // only (the host's, on the bridge). A container whose second network this is reaches the host's address on this bridge
    // from its address here (a review: a hand-made accept of the host's ssh from such a bridge went unreported).
    const members: { name: string; ip: Ip }[] = [];
    const seconds: { name: string; ip: Ip }[] = [];
    for (const c of p.containers) {
      const gwNet = publishingNetwork(c, nets);
      const a = addressOn(c, n, family);
      if (!a) continue;
      if (gwNet ? gwNet === n : n.internal) members.push({ name: c.name, ip: a });
      else seconds.push({ name: c.name, ip: a });
    }
    if (!members.length && !seconds.length) continue;
    const routed = !n.internal;
    const gw = gatewayOf(n, family);
    const gateway = gw ? formatIp(gw) : undefined;
    const bridge = n.bridge.value;
    const bridged = (addr: string) => subnets.some((s) => cidrContains(s.value, { family, value: ipValue(addr, family) }));
    // The cells of this network's containers: `second`, of those whose gateway network is another (to this bridge's own address alone).
    const slotsFor = (group: { name: string; ip: Ip }[], second: boolean): Slot[] => {
      const slots: Slot[] = [];
      // A member's other networks are its own links: what it sends into their subnets goes out there, not through this bridge (a
      // review: the row said closed what web, on that network too, reached). Those destinations are not this row's to tell.
      const elsewhere = p.networks.filter((o) => o !== n && group.some((m) => p.containers.find((c) => c.name === m.name)!.endpoints.some((e) => e.network.name === o.name))).flatMap((o) => o.subnets.filter((sn) => sn.value.family === family).map((sn) => sn.value));
      const here = (addr: string) => !elsewhere.some((sn) => cidrContains(sn, { family, value: ipValue(addr, family) }));
      const toHost = [...new Set([...(gateway ? [gateway] : []), ...(routed && !second ? inp.hostAddresses.filter(here) : [])])];
      if (!toHost.length) return slots;
      for (const col of inp.columns) {
        if (col.kind === "published") {
          // 127.0.0.1 is a container's own.
          const to = col.host_address === undefined ? toHost : ((routed && !second) || col.host_address === gateway) && here(col.host_address) ? [col.host_address] : [];
          // An internal network's containers reach nothing outside it (`--internal`), as Docker's iptables rules hold it; not
          // Docker 29's nftables backend, where another network's published port accepts them first (dockwall's table drops that).
          if (!col.loopbackOnly && to.length) slots.push({ col, path: "dnat", dsts: to, port: col.host_port, opened: reached(col), ...(routed ? {} : { allowed: () => false }) });
          if (routed && !second && col.containerAddr !== undefined && !bridged(col.containerAddr) && here(col.containerAddr)) slots.push({ col, path: "direct", dsts: [col.containerAddr], port: col.container_port, opened: (v) => v.verdict === "ACCEPT" && v.path === "forward" && v.dnat === undefined });
        } else if (col.kind === "network") {
          if (second) continue;
          // Another network's containers, straight (their own network's are bridged; a member's own other address is its own): as
          // Docker's own rules take them.
          const own = new Set(group.flatMap((m) => p.containers.find((c) => c.name === m.name)!.endpoints.flatMap((e) => e.addresses.map((a) => formatIp(a.value)))));
          const to = routed ? col.addrs!.filter((a) => !bridged(a) && !own.has(a) && here(a)) : [];
          if (to.length) slots.push({ col, path: "direct", dsts: to, port: col.container_port, opened: (v) => v.verdict === "ACCEPT" && v.path === "forward" && v.dnat === undefined });
        } else {
          const rules = hostRules(col);
          slots.push({ col, path: "host", dsts: toHost, port: col.host_port, opened: (v) => v.verdict === "ACCEPT" && v.path === "input", allowed: (src) => p.host?.policy === "accept" || rules.some((r) => admits(zones, r.zones, r.sources, bridge, src)) });
        }
      }
      return slots;
    };
    type Class = { members: { name: string; ip: Ip }[]; walks: Walks; key: string; ranges: string; codes: string; label: string; slots: Slot[]; checks?: Checks };
    const classes: Class[] = [];
    const rangeKey = (ip: Ip) => (inp.sourceRanges ?? []).map((r) => (r.from <= ip.value && ip.value <= r.to ? "1" : "0")).join("");
    // Members whose other networks differ send differently (their own links, their own addresses): grouped by them, each group
    // its cells (a review: one member's own addresses left out every member's cells to them).
    const elsewhereOf = (m: { name: string }) => p.containers.find((c) => c.name === m.name)!.endpoints.filter((e) => e.network.name !== n.name).map((e) => e.network.name).sort().join(",");
    const byElsewhere = (group: { name: string; ip: Ip }[]) => {
      const by = new Map<string, { name: string; ip: Ip }[]>();
      for (const m of group) by.set(elsewhereOf(m), [...(by.get(elsewhereOf(m)) ?? []), m]);
      return [...by.values()];
    };
    for (const [group, second] of [...byElsewhere(members).map((g) => [g, false] as const), ...byElsewhere(seconds).map((g) => [g, true] as const)]) {
      const slots = slotsFor(group, second);
      if (!slots.length) continue;
      const mine: Class[] = [];
      for (const m of group) {
        const text = formatIp(m.ip);
        const probe = sourceOf(text, inp.local);
        const hostKey = slots.map((s) => (s.allowed ? (s.allowed(m.ip) ? "1" : "0") : "")).join("");
        const ranges = rangeKey(m.ip);
        // A class whose walks this member answers every test of alike (and the host block's statements): its cells. Else the
        // first such class's, walked again where this member answers a test otherwise. (A class whose walks noted no tests
        // holds another container only where the ranges its rules look at, nftables', hold both alike.)
        let same: Class | undefined;
        let base: { walks: Walks; affected: Set<number>; cls: Class } | undefined;
        if (!inp.walkEach) {
          for (const c of mine) {
            if (c.key !== hostKey || (c.walks.opaque && (inp.sourceRanges === undefined || c.ranges !== ranges))) continue;
            const affected = affectedBy((c.checks ??= checksOf(c.walks)), probe);
            if (affected.size === 0) {
              same = c;
              break;
            }
            base ??= { walks: c.walks, affected, cls: c };
          }
        }
        if (same) {
          same.members.push(m);
          continue;
        }
        const label = `container:${m.name}${p.containers.find((c) => c.name === m.name)!.endpoints.length > 1 ? `@${n.name}` : ""}`;
        const packet = (slot: Slot, dst: string, sport: number): Packet => ({ family, in: bridge, src: text, dst, proto: slot.col.proto, sport, dport: slot.port, icmpType: slot.col.proto === "icmp" ? (family === 4 ? 8 : 128) : undefined, state: "NEW", local: inp.local, routes: inp.routes });
        // Walked again where it answers a test otherwise, and alike there too: one of that class (its cells not made at all).
        if (base && alikeWhere(slots, base, m.ip, packet, probe)) {
          base.cls.members.push(m);
          continue;
        }
        const walks = walkAll(slots, m.ip, packet, probe, base);
        // Cells alike another class's: one row.
        const codes = walks.codes.join();
        const alike = mine.find((c) => c.codes === codes);
        if (alike) alike.members.push(m);
        else mine.push({ members: [m], walks, key: hostKey, ranges, codes, label, slots });
      }
      classes.push(...mine);
    }
    for (const c of classes) {
      const sources = classes.length === 1 ? subnets.map((s) => `${formatIp(s.value)}/${s.value.prefix}`) : c.members.map((m) => `${formatIp(m.ip)}/${family === 4 ? 32 : 128}`);
      const id = `containers@${n.name}/${fam}${classes.length > 1 ? `:${formatIp(c.members[0]!.ip)}` : ""}`;
      rows.push({ id, kind: "containers", network: n.name, interfaces: [bridge], sources });
      for (const x of cellsOf(c.slots, c.walks, c.label)) cells.push({ row: id, ...x });
    }
  }

  // The host itself (its OUTPUT; to itself, in again by lo).
  const slots: Slot[] = [];
  // Every address of the host a packet can be for (one of each class the rules' tests tell apart), as the neighbours' rows
  // are walked (a fuzzer: walked to the first alone, a port a container publishes on that one hid the host's service).
  const own = inp.hostAddresses;
  const gatewayFor = (addr: string): string => {
    for (const n of p.networks) {
      if (!n.subnets.some((s) => s.value.family === family && cidrContains(s.value, { family, value: ipValue(addr, family) }))) continue;
      const g = gatewayOf(n, family);
      if (g) return formatIp(g);
    }
    return family === 4 ? "0.0.0.0" : "::";
  };
  for (const col of inp.columns) {
    if (col.kind === "published") {
      const to = col.host_address !== undefined ? [col.host_address] : own;
      if (!col.loopbackOnly && to.length) slots.push({ col, path: "dnat", dsts: to, port: col.host_port, hostSrc: (d) => d, opened: reached(col) });
      if (family === 4 && (col.loopbackOnly || col.host_address === undefined)) slots.push({ col, path: "loopback", dsts: ["127.0.0.1"], port: col.host_port, hostSrc: () => "127.0.0.1", opened: reached(col) });
      if (col.containerAddr !== undefined) slots.push({ col, path: "direct", dsts: [col.containerAddr], port: col.container_port, hostSrc: gatewayFor, opened: (v) => v.verdict === "ACCEPT" && v.path === "output" && v.dnat === undefined });
    } else if (col.kind === "network") {
      // (The host reaches its containers' addresses by OUTPUT, as Docker leaves it: not a path the policy speaks of.)
    } else if (own.length) {
      // The host block lets the host's own packets in by lo, always.
      slots.push({ col, path: "host", dsts: own, port: col.host_port, hostSrc: (d) => d, opened: (v) => v.verdict === "ACCEPT" && v.path === "input", allowed: () => true });
    }
  }
  if (slots.length) {
    const walks = walkAll(slots, undefined, (slot, dst, sport) => {
      const src = slot.hostSrc!(dst);
      return { family, in: "lo", src, dst, proto: slot.col.proto, sport, dport: slot.port, icmpType: slot.col.proto === "icmp" ? (family === 4 ? 8 : 128) : undefined, state: "NEW", local: inp.local, routes: inp.routes, fromHost: true, ...(inp.localnet ? { localnet: inp.localnet } : {}), ...(src === "0.0.0.0" || src === "::" ? { srcUnknown: true } : {}) };
    });
    const id = `host/${fam}`;
    rows.push({ id, kind: "host", interfaces: ["lo"], sources: ["host"] });
    for (const x of cellsOf(slots, walks, "host")) cells.push({ row: id, ...x });
  }
  return { rows, cells };
}

function ipValue(addr: string, family: Family): bigint {
  const n = sourceOf(addr, []).num;
  return n.v6 === (family === 6) ? n.value : -1n;
}
