// Differential fuzzer: the iptables packet evaluator (src/analysis/evaluate.ts) against the kernel.
// For each random ruleset: a shipped policy's compiled rules loaded as a user loads them
// (test/lab/policylab.ts loadPolicy), then 1–4 random hand-made rules per family inserted with
// iptables/ip6tables (filter, raw, mangle and nat; conntrack, state, addrtype, iprange, multiport,
// interfaces with wildcards, negations, DNAT/SNAT/MASQUERADE, jumps to new chains); every probe of
// the policy lab (neighbours, containers, the host itself; IPv4 and IPv6) evaluated over the rules
// read back from the kernel (iptables-save), and sent for real. Disagreements are re-probed twice
// after 500 ms; what stays is minimized (rules, a chain's rules, match groups, a module's options,
// a negation) and written down.
//
// Run (root; the lab builds network namespaces and never touches the root one):
//   DOCKWALL_FUZZ=1 FUZZ_MINUTES=10 FUZZ_SEED=1 npx vitest run --project fuzz test/fuzz/evaluate.fuzz.ts
// More: FUZZ_OUT=DIR (default a fresh dir under the system's tmp, printed), FUZZ_POLICIES=a.dw,b.dw
// (shipped policies, default four), FUZZ_MIN_PER_SIG (minimizations of one rough kind, default 2).
// Output: log.txt (every ruleset, its mismatches and minimizations), found.json (findings so far),
// summary.json (counts, the evaluator's unknown reasons, the signatures of the findings).
//
// Known artefacts of the lab (counted as "artifacts", not findings): UDP from the host to an
// address of its own that nat OUTPUT DNATs or nat POSTROUTING SNATs to another of its addresses
// (the lab's unconnected UDP socket answers from the address routing picks); a DNAT back into the
// namespace the packet came from (that namespace drops it as a martian, whatever the rules); a
// DNATed UDP connection whose reply is untracked (the lab's unconnected UDP socket takes a reply
// from the container's own address, which a connected client would not).
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { compile } from "../../src/compile.js";
import { evaluate, type Packet, type Verdict } from "../../src/analysis/evaluate.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import type { Ruleset } from "../../src/ir/ruleset.js";
import { describeKernel } from "../lab/kernel.js";
import { hostView, listening, loadPolicy, NEIGHBOUR_PORT, packetOf, planPolicyLab, startPolicyLab, type LabProbe, type PolicyLab, type PolicyLabPlan } from "../lab/policylab.js";
import { describeProbe, FuzzOut, fuzzSettings, fuzzTimeout, reprobe, Rng, shrinkList, sleep, Tally, uniq, writeSummary } from "./common.js";

const root = new URL("../../", import.meta.url).pathname;
const POLICIES = (process.env.FUZZ_POLICIES ?? "examples/web-host.dw,examples/coexist.dw,test/golden/ipv6-dual-stack/policy.dw,examples/router.dw").split(",");
/** How many minimizations of one rough kind of mismatch (its pre-signature) at most. */
const MIN_PER_SIG = Number(process.env.FUZZ_MIN_PER_SIG ?? 2);

type Fam = 4 | 6;

const rng = new Rng(1);
const { chance, int, pick, weighted, rnd } = rng;

// ---------------------------------------------------------------- addresses ----
function v4num(a: string): number {
  return a.split(".").reduce((s, x) => s * 256 + Number(x), 0);
}
function v4str(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}
function v6big(a: string): bigint {
  const [h, t = ""] = a.includes("::") ? a.split("::") : [a, undefined as unknown as string];
  const hs = h ? h.split(":") : [];
  const ts = a.includes("::") && t ? t.split(":") : [];
  const mid = a.includes("::") ? Array(8 - hs.length - ts.length).fill("0") : [];
  return [...hs, ...mid, ...ts].reduce((s, x) => (s << 16n) + BigInt(parseInt(x || "0", 16)), 0n);
}
function v6str(n: bigint): string {
  const parts: string[] = [];
  for (let i = 7; i >= 0; i--) parts.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return parts.join(":");
}
/** addr with a prefix, masked to its network. */
function prefixOf(addr: string, len: number): string {
  if (addr.includes(":")) {
    const mask = len === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - len)) - 1n);
    return `${v6str(v6big(addr) & mask)}/${len}`;
  }
  const n = v4num(addr);
  const net = len === 0 ? 0 : n - (n % 2 ** (32 - len));
  return `${v4str(net)}/${len}`;
}
const famOf = (a: string): Fam => (a.includes(":") ? 6 : 4);
function cmpAddr(a: string, b: string): number {
  if (famOf(a) === 4) return v4num(a) - v4num(b);
  const x = v6big(a);
  const y = v6big(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

// ---------------------------------------------------------------- the world ----
interface World {
  name: string;
  plan: PolicyLabPlan;
  probes: LabProbe[];
  addrs: Record<Fam, string[]>;
  nets: Record<Fam, string[]>;
  hostAddrs: Record<Fam, string[]>;
  ifaces: string[];
  wild: string[];
  ports: { tcp: number[]; udp: number[] };
  /** Where a DNAT may send: containers' ports, the host's listeners, neighbours' port. */
  dnatTo: Record<Fam, { addr: string; port?: number; proto: "tcp" | "udp" }[]>;
  userChains: { filter: string[] };
  /** The namespace each address lives in (host, nbr:IFACE, ct:NAME). */
  owner: Map<string, string>;
}

/** The host's own probes: to its services and published ports, to 127.0.0.1, to containers and to neighbours. */
function hostProbes(plan: PolicyLabPlan): LabProbe[] {
  const out: LabProbe[] = [];
  const from = { host: true as const };
  const hostPorts = uniq(plan.hostListeners.map((l) => `${l.proto}:${l.port}`)).map((s) => s.split(":") as ["tcp" | "udp", string]);
  const published = uniq(plan.probes.filter((p) => "iface" in p.from && plan.ifaces.some((f) => f.host4 === p.dst || f.host6 === p.dst) && p.port !== undefined).map((p) => `${p.proto}:${p.port}`)).map((s) => s.split(":") as ["tcp" | "udp", string]);
  const ports = uniq([...hostPorts, ...published].map((x) => x.join(":"))).map((s) => s.split(":") as ["tcp" | "udp", string]);
  // To its own addresses: on the first two interfaces (every port), ping on each.
  for (const [i, f] of plan.ifaces.entries()) {
    for (const [family, a] of [[4, f.host4], [6, f.host6]] as const) {
      if (i < 2) for (const [proto, port] of ports) out.push({ from, family, src: a, dst: a, proto, port: Number(port) });
      out.push({ from, family, src: a, dst: a, proto: "icmp" });
      out.push({ from, family, src: a, dst: family === 4 ? f.nbr4 : f.nbr6, proto: "tcp", port: NEIGHBOUR_PORT });
      out.push({ from, family, src: a, dst: family === 4 ? f.nbr4 : f.nbr6, proto: "icmp" });
    }
  }
  // 127.0.0.1 where something is bound or published there.
  for (const p of plan.probes) if (p.dst === "127.0.0.1" && p.port !== undefined) out.push({ from, family: 4, src: "127.0.0.1", dst: "127.0.0.1", proto: p.proto, port: p.port });
  for (const l of plan.hostListeners) if (l.bind === "::" && l.proto === "tcp") out.push({ from, family: 4, src: "127.0.0.1", dst: "127.0.0.1", proto: "tcp", port: l.port });
  // To containers, from the gateway of their bridge.
  for (const c of plan.containers) {
    for (const e of c.endpoints) {
      for (const a of e.addrs) {
        const dst = a.split("/")[0]!;
        const family = famOf(dst);
        const gw = e.gateways.find((g) => famOf(g) === family);
        if (!gw) continue;
        for (const port of c.tcp.slice(0, 3)) out.push({ from, family, src: gw, dst, proto: "tcp", port });
        for (const port of c.udp.slice(0, 2)) out.push({ from, family, src: gw, dst, proto: "udp", port });
        out.push({ from, family, src: gw, dst, proto: "icmp" });
      }
    }
  }
  const seen = new Set<string>();
  return out.filter((p) => {
    const k = JSON.stringify(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function buildWorld(name: string, plan: PolicyLabPlan, base: Record<Fam, string>): World {
  const probes = [...plan.probes, ...hostProbes(plan)];
  const owner = new Map<string, string>();
  for (const f of plan.ifaces) {
    for (const a of [f.host4, f.host6]) owner.set(a, "host");
    for (const a of [f.nbr4, f.nbr6, ...f.sources]) owner.set(a, `nbr:${f.name}`);
  }
  for (const b of plan.bridges) for (const a of b.addrs) owner.set(a.split("/")[0]!, "host");
  for (const c of plan.containers) for (const e of c.endpoints) for (const a of e.addrs) owner.set(a.split("/")[0]!, `ct:${c.name}`);
  owner.set("127.0.0.1", "host");
  owner.set("::1", "host");
  const addrs: Record<Fam, string[]> = { 4: [], 6: [] };
  for (const a of owner.keys()) addrs[famOf(a)].push(a);
  const nets: Record<Fam, string[]> = { 4: ["0.0.0.0/0", "10.0.0.0/8", "10.200.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "203.0.113.0/24"], 6: ["::/0", "fd00::/8", "fd00:200::/32", "fd00::/16"] };
  for (const [i] of plan.ifaces.entries()) {
    nets[4].push(`10.200.${i}.0/24`);
    nets[6].push(`fd00:200:${i}::/64`);
  }
  for (const b of plan.bridges) for (const s of b.subnets) nets[famOf(s.split("/")[0]!)].push(s);
  for (const f of plan.ifaces) for (const s of f.sources) nets[famOf(s)].push(prefixOf(s, famOf(s) === 4 ? 24 : 64));
  nets[4] = uniq(nets[4]);
  nets[6] = uniq(nets[6]);
  const hostAddrs: Record<Fam, string[]> = { 4: [], 6: [] };
  for (const [a, o] of owner) if (o === "host" && a !== "127.0.0.1" && a !== "::1") hostAddrs[famOf(a)].push(a);
  const ifaces = uniq([...plan.ifaces.map((f) => f.name), ...plan.bridges.map((b) => b.name), "lo"]);
  const wild = uniq(ifaces.flatMap((n) => [n.slice(0, 1) + "+", n.slice(0, Math.max(1, n.length - 1)) + "+"]));
  const ports = {
    tcp: uniq([...probes.filter((p) => p.proto === "tcp").map((p) => p.port!), ...plan.containers.flatMap((c) => c.tcp), 22]).sort((a, b) => a - b),
    udp: uniq([...probes.filter((p) => p.proto === "udp").map((p) => p.port!), ...plan.containers.flatMap((c) => c.udp)]).sort((a, b) => a - b),
  };
  if (ports.udp.length === 0) ports.udp.push(53);
  const dnatTo: World["dnatTo"] = { 4: [], 6: [] };
  for (const c of plan.containers) {
    for (const e of c.endpoints) {
      for (const a of e.addrs) {
        const addr = a.split("/")[0]!;
        for (const port of c.tcp) dnatTo[famOf(addr)].push({ addr, port, proto: "tcp" });
        for (const port of c.udp) dnatTo[famOf(addr)].push({ addr, port, proto: "udp" });
        if (c.tcp[0]) dnatTo[famOf(addr)].push({ addr, proto: "tcp" });
      }
    }
  }
  for (const l of plan.hostListeners) {
    for (const fam of [4, 6] as const) {
      const cands = l.bind === "::" ? hostAddrs[fam].filter((a) => plan.ifaces.some((f) => f.host4 === a || f.host6 === a)) : famOf(l.bind) === fam && l.bind !== "127.0.0.1" ? [l.bind] : [];
      for (const addr of cands.slice(0, 2)) dnatTo[fam].push({ addr, port: l.port, proto: l.proto });
    }
  }
  for (const f of plan.ifaces) {
    dnatTo[4].push({ addr: f.nbr4, port: NEIGHBOUR_PORT, proto: "tcp" });
    dnatTo[6].push({ addr: f.nbr6, port: NEIGHBOUR_PORT, proto: "tcp" });
  }
  const userChains = { filter: /^:DOCKER-USER /m.test(base[4]) ? ["DOCKER-USER"] : [] };
  return { name, plan, probes, addrs, nets, hostAddrs, ifaces, wild, ports, dnatTo, userChains, owner };
}

// ---------------------------------------------------------------- random rules ----
type Group = string[];
interface FRule {
  family: Fam;
  table: "filter" | "raw" | "mangle" | "nat";
  chain: string;
  insert: "I" | "A";
  groups: Group[];
  target: string[];
  /** A jump to a new chain: its name and rules. */
  newChain?: string;
  sub?: FRule[];
}

const ipt = (f: Fam) => (f === 4 ? "iptables" : "ip6tables");
let chainSeq = 0;

const IN_OK = new Set(["PREROUTING", "INPUT", "FORWARD", "DOCKER-USER"]);
const OUT_OK = new Set(["FORWARD", "OUTPUT", "POSTROUTING", "DOCKER-USER"]);

function addrSpec(w: World, f: Fam): string {
  return weighted<() => string>([
    [45, () => pick(w.addrs[f])],
    [35, () => pick(w.nets[f])],
    [20, () => prefixOf(pick(w.addrs[f]), f === 4 ? int(8, 32) : int(16, 128))],
  ])();
}
const not = (g: Group, p = 0.25): Group => (chance(p) ? ["!", ...g] : g);

function portSpec(ports: number[]): string {
  const p = pick(ports);
  return weighted<() => string>([
    [60, () => String(p)],
    [25, () => `${Math.max(1, p - int(0, 100))}:${p + int(0, 100)}`],
    [15, () => String(int(1, 9999))],
  ])();
}
/** Source ports: classes that hold 40000 (the evaluator's) exactly when they hold the kernel's ephemeral ones, or well-known ports (replies). */
function sportSpec(ports: number[]): string {
  return weighted<() => string>([
    [30, () => pick(["1024:65535", "32768:60999", "1:1023", "61000:65535", "0:1023", "30000:65535"])],
    [50, () => String(pick(ports))],
    [20, () => portSpec(ports)],
  ])();
}

function matchGroups(w: World, f: Fam, chain: string, table: string, forcedProto?: "tcp" | "udp"): Group[] {
  const gs: Group[] = [];
  const inOk = IN_OK.has(chain) || !["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"].includes(chain);
  const outOk = OUT_OK.has(chain) || !["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"].includes(chain);
  const n = int(0, 3);
  const proto = forcedProto ?? (chance(0.55) ? weighted<"tcp" | "udp" | "icmp">([[60, "tcp"], [25, "udp"], [15, "icmp"]]) : undefined);
  if (proto) {
    gs.push(["-p", proto === "icmp" ? (f === 4 ? "icmp" : "ipv6-icmp") : proto]);
    if (proto === "icmp") {
      if (chance(0.3)) gs.push(not([f === 4 ? "--icmp-type" : "--icmpv6-type", pick(["echo-request", "echo-reply"])], 0.2));
    } else {
      const ports = w.ports[proto];
      const r = rnd();
      if (r < 0.45) gs.push(not(["--dport", portSpec(ports)], 0.2));
      else if (r < 0.6) gs.push(not(["--sport", sportSpec(ports)], 0.2));
      else if (r < 0.8) {
        const dir = pick(["--dports", "--dports", "--sports", "--ports"]);
        const list = uniq(Array.from({ length: int(1, 3) }, () => (dir === "--sports" ? sportSpec(ports) : portSpec(ports))));
        gs.push(["-m", "multiport", ...not([dir, list.join(",")], 0.2)]);
      } else if (r < 0.85 && proto === "tcp") gs.push(not(["--syn"], 0.3));
    }
  }
  for (let i = 0; i < n; i++) {
    const kind = weighted<string>([
      [16, "src"],
      [16, "dst"],
      [inOk ? 12 : 0, "in"],
      [outOk ? 12 : 0, "out"],
      [16, "ctstate"],
      [5, "ctorigdst"],
      [3, "ctorigdstport"],
      [6, "state"],
      [9, "addrtype"],
      [7, "iprange"],
    ]);
    switch (kind) {
      case "src":
        if (!gs.some((g) => g.includes("-s"))) gs.push(not(["-s", addrSpec(w, f)]));
        break;
      case "dst":
        if (!gs.some((g) => g.includes("-d"))) gs.push(not(["-d", addrSpec(w, f)]));
        break;
      case "in":
        if (!gs.some((g) => g.includes("-i"))) gs.push(not(["-i", chance(0.3) ? pick(w.wild) : pick(w.ifaces)]));
        break;
      case "out":
        if (!gs.some((g) => g.includes("-o"))) gs.push(not(["-o", chance(0.3) ? pick(w.wild) : pick(w.ifaces)]));
        break;
      case "ctstate":
      case "ctorigdst":
      case "ctorigdstport": {
        if (gs.some((g) => g.includes("conntrack"))) break;
        const g: Group = ["-m", "conntrack"];
        if (kind === "ctstate" || chance(0.3)) {
          const states = uniq(Array.from({ length: weighted([[60, 1], [30, 2], [10, 3]]) }, () => weighted<string>([[22, "NEW"], [22, "ESTABLISHED"], [8, "RELATED"], [14, "INVALID"], [14, "DNAT"], [14, "UNTRACKED"], [4, "SNAT"]])));
          g.push(...not(["--ctstate", states.join(",")], 0.2));
        }
        if (kind === "ctorigdst" || (kind === "ctstate" && chance(0.15))) g.push(...not(["--ctorigdst", addrSpec(w, f)], 0.25));
        if (kind === "ctorigdstport") g.push(...not(["--ctorigdstport", String(pick([...w.ports.tcp, ...w.ports.udp]))], 0.25));
        gs.push(g);
        break;
      }
      case "state": {
        if (gs.some((g) => g.includes("state"))) break;
        const states = uniq(Array.from({ length: int(1, 2) }, () => pick(["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"])));
        gs.push(["-m", "state", ...not(["--state", states.join(",")], 0.2)]);
        break;
      }
      case "addrtype": {
        if (gs.some((g) => g.includes("addrtype"))) break;
        const g: Group = ["-m", "addrtype"];
        const which = weighted<string[]>([[55, ["--dst-type"]], [35, ["--src-type"]], [10, ["--src-type", "--dst-type"]]]);
        for (const o of which) g.push(...not([o, "LOCAL"], 0.3));
        gs.push(g);
        break;
      }
      case "iprange": {
        if (gs.some((g) => g.includes("iprange"))) break;
        const range = () => {
          const a = pick(w.addrs[f]);
          const b = chance(0.3) ? a : pick(w.addrs[f]);
          const [x, y] = cmpAddr(a, b) <= 0 ? [a, b] : [b, a];
          return `${x}-${y}`;
        };
        const g: Group = ["-m", "iprange"];
        const which = weighted<string[]>([[50, ["--src-range"]], [40, ["--dst-range"]], [10, ["--src-range", "--dst-range"]]]);
        for (const o of which) g.push(...not([o, range()], 0.25));
        gs.push(g);
        break;
      }
    }
  }
  return gs;
}

function genRule(w: World, f: Fam, where?: { table: FRule["table"]; chain: string; builtinOf?: string }): FRule {
  const [table, chain] = where
    ? [where.table, where.chain]
    : weighted<[FRule["table"], string]>([
        [10, ["filter", "INPUT"]],
        [10, ["filter", "FORWARD"]],
        [8, ["filter", "OUTPUT"]],
        ...w.userChains.filter.map((c): [number, [FRule["table"], string]] => [8, ["filter", c]]),
        [5, ["raw", "PREROUTING"]],
        [4, ["raw", "OUTPUT"]],
        [3, ["mangle", "PREROUTING"]],
        [3, ["mangle", "INPUT"]],
        [3, ["mangle", "FORWARD"]],
        [3, ["mangle", "OUTPUT"]],
        [3, ["mangle", "POSTROUTING"]],
        [6, ["nat", "PREROUTING"]],
        [5, ["nat", "OUTPUT"]],
        [5, ["nat", "POSTROUTING"]],
      ]);
  const inUser = where?.builtinOf !== undefined;
  const hook = where?.builtinOf ?? chain;
  const rule: FRule = { family: f, table, chain, insert: inUser ? "A" : chance(0.6) ? "I" : "A", groups: [], target: [] };
  let forcedProto: "tcp" | "udp" | undefined;
  if (table === "filter") {
    const t = weighted<string>([[25, "ACCEPT"], [30, "DROP"], [25, "REJECT"], [inUser || chain === "DOCKER-USER" ? 15 : 4, "RETURN"], [inUser ? 0 : 15, "jump"]]);
    if (t === "jump") {
      const name = `fz${++chainSeq}`;
      rule.newChain = name;
      rule.target = [name];
      rule.sub = Array.from({ length: int(1, 2) }, () => genRule(w, f, { table, chain: name, builtinOf: hook }));
    } else rule.target = [t];
  } else if (table === "raw") {
    rule.target = weighted<string[]>([[40, ["DROP"]], [45, ["CT", "--notrack"]], [5, ["NOTRACK"]], [5, ["ACCEPT"]], [5, ["RETURN"]]]);
  } else if (table === "mangle") {
    rule.target = weighted<string[]>([[75, ["DROP"]], [12, ["ACCEPT"]], [13, ["RETURN"]]]);
  } else if (chain === "POSTROUTING") {
    rule.target = weighted<() => string[]>([
      [40, () => ["MASQUERADE"]],
      [30, () => ["SNAT", "--to-source", pick(w.hostAddrs[f])]],
      [20, () => ["RETURN"]],
      [10, () => ["ACCEPT"]],
    ])();
  } else {
    const t = weighted<string>([[70, "DNAT"], [18, "RETURN"], [12, "ACCEPT"]]);
    if (t === "DNAT") {
      const to = pick(w.dnatTo[f]);
      const a = f === 6 ? `[${to.addr}]` : to.addr;
      rule.target = ["DNAT", "--to-destination", to.port !== undefined ? `${a}:${to.port}` : to.addr];
      if (to.port !== undefined) forcedProto = to.proto;
    } else rule.target = [t];
  }
  rule.groups = matchGroups(w, f, hook, table, forcedProto);
  return rule;
}

function commands(r: FRule): string[][] {
  const tool = ipt(r.family);
  const out: string[][] = [];
  if (r.newChain) {
    out.push([tool, "-t", r.table, "-N", r.newChain]);
    for (const s of r.sub ?? []) out.push(...commands(s));
  }
  out.push([tool, "-t", r.table, r.insert === "I" ? "-I" : "-A", r.chain, ...r.groups.flat(), "-j", ...r.target]);
  return out;
}
const show = (r: FRule): string => commands(r).map((c) => c.join(" ")).join(" ; ");

// ---------------------------------------------------------------- the lab ----
const TABLES: Record<string, string[]> = { raw: ["PREROUTING", "OUTPUT"], mangle: ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"], nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], filter: ["INPUT", "FORWARD", "OUTPUT"] };
/** The base save with every table in it: restoring it flushes what a ruleset added anywhere. */
function resetText(base: string): string {
  const sections: string[] = [];
  for (const t of ["raw", "mangle", "nat", "filter"]) {
    const m = new RegExp(`^\\*${t}\\n[\\s\\S]*?^COMMIT\\n`, "m").exec(base);
    sections.push(m ? m[0] : `*${t}\n${TABLES[t]!.map((c) => `:${c} ACCEPT [0:0]`).join("\n")}\nCOMMIT\n`);
  }
  return sections.join("");
}

interface Ctx {
  w: World;
  lab: PolicyLab;
  reset: Record<Fam, string>;
}

/** Back to the policy's rules, then `rules` added. The commands that failed (their stderr). */
function load(c: Ctx, rules: FRule[], families: Fam[] = [4, 6]): { failed: string[]; applied: FRule[] } {
  for (const f of families) {
    const r = c.lab.host.restore(f, c.reset[f]);
    if (!r.ok) throw new Error(`reset failed: ${r.stderr}`);
  }
  const failed: string[] = [];
  const applied: FRule[] = [];
  for (const r of rules) {
    let ok = true;
    for (const cmd of commands(r)) {
      const x = c.lab.host.run(cmd);
      if (x.status !== 0) {
        failed.push(`${cmd.join(" ")}: ${x.stderr.trim()}`);
        ok = false;
        break;
      }
    }
    if (ok) applied.push(r);
  }
  return { failed, applied };
}

function readBack(c: Ctx, f: Fam): { rs: Ruleset; text: string } {
  const text = c.lab.host.save(f);
  return { rs: toRuleset(parseSave(text), f), text };
}

function packetFor(plan: PolicyLabPlan, pr: LabProbe): Packet {
  if ("host" in pr.from) {
    return { family: pr.family, in: "lo", src: pr.src, dst: pr.dst, proto: pr.proto, sport: 40000, dport: pr.port, icmpType: pr.proto === "icmp" ? (pr.family === 4 ? 8 : 128) : undefined, state: "NEW", fromHost: true, ...hostView(plan) };
  }
  return packetOf(plan, pr);
}

interface Prediction {
  open: boolean | "unknown" | "artifact";
  v: Verdict;
}
/**
 * Whether the nat table of an iptables-save text may NAT the host's packets to itself: a DNAT in OUTPUT itself, or a SNAT or
 * MASQUERADE in POSTROUTING with no source and no out-interface but loopback's (a negated one may be loopback) (Docker's own name their subnets or bridges).
 */
function natsHost(saved: string): boolean {
  const nat = /^\*nat\n([\s\S]*?)^COMMIT$/m.exec(saved)?.[1] ?? "";
  return nat.split("\n").some((l) => /^-A OUTPUT .*-j DNAT/.test(l) || (/^-A POSTROUTING .*-j (SNAT|MASQUERADE)/.test(l) && !/(^| )-s /.test(l) && !/(?<!!) -o (?!lo\b|l\+|lo\+)/.test(l)));
}

function predict(w: World, rs: Ruleset, pr: LabProbe, saved = ""): Prediction {
  const v = evaluate(rs, packetFor(w.plan, pr), { replies: true });
  if (v.verdict === "unknown") return { open: "unknown", v };
  // (The evaluator writes a DNAT's address canonically, fd00:200::2; the lab's plan spells it fd00:200:0::2: compare as numbers.)
  const spelled = v.dnat ? [...w.owner.keys()].find((a) => famOf(a) === famOf(v.dnat!.addr) && cmpAddr(a, v.dnat!.addr) === 0) ?? v.dnat.addr : undefined;
  const to = v.dnat ? { addr: spelled!, port: v.dnat.port } : { addr: pr.dst, port: pr.port };
  // Sent back into the namespace it came from (a DNAT to its own address): that namespace drops it as a martian, whatever the host's rules.
  const fromNs = "iface" in pr.from ? `nbr:${pr.from.iface}` : "container" in pr.from ? `ct:${pr.from.container}` : "host";
  if (v.dnat && fromNs !== "host" && w.owner.get(to.addr) === fromNs) return { open: "artifact", v };
  // A DNATed UDP connection whose reply is untracked comes back from the container's own address: the lab's UDP socket is
  // not connected and takes it (a connected client, or TCP, would not).
  if (pr.proto === "udp" && v.untracked && v.dnat) return { open: "artifact", v };
  // UDP from the host to an address of its own that nat OUTPUT DNATs or nat POSTROUTING SNATs/MASQUERADEs to another of its
  // addresses: the lab's unconnected UDP socket answers from the address routing picks, which no conntrack entry maps back.
  if (pr.proto === "udp" && "host" in pr.from && w.owner.get(pr.dst) === "host" && natsHost(saved)) return { open: "artifact", v };
  const path = "host" in pr.from ? (v.path === "output" ? "forward" : "input") : v.path;
  return { open: v.verdict === "ACCEPT" && listening(w.plan, pr, path, to), v };
}

function describeVerdict(v: Verdict): string {
  const d = v.decided ? ` by ${v.decided.table} ${v.decided.chain}#${v.decided.index}` : "";
  return `${v.verdict} ${v.path}${v.dnat ? ` DNAT ${v.dnat.addr}:${v.dnat.port ?? "-"}` : ""}${d}${v.reply ? " (reply)" : ""}${v.untracked ? " (untracked)" : ""}${v.why ? ` why: ${v.why}` : ""}`;
}


/** Whether each probe got through: sent once; the ones that differ from `expected` sent again twice, 500 ms apart. */
const settle = (lab: PolicyLab, probes: LabProbe[], expected: (boolean | undefined)[]) => reprobe(lab, probes, expected);

// ---------------------------------------------------------------- minimizing ----
async function reproduces(c: Ctx, rules: FRule[], pr: LabProbe, evalOpen: boolean, quick = true): Promise<{ yes: boolean; pred?: Prediction; failed: boolean }> {
  const { failed, applied } = load(c, rules, [pr.family]);
  if (failed.length || applied.length !== rules.length) return { yes: false, failed: true };
  const back = readBack(c, pr.family);
  const pred = predict(c.w, back.rs, pr, back.text);
  if (pred.open !== evalOpen) return { yes: false, pred, failed: false };
  if (!quick) {
    const [k] = await settle(c.lab, [pr], [evalOpen]);
    return { yes: k !== evalOpen, pred, failed: false };
  }
  // A trial while minimizing: a closed answer is tried once more (the result is checked in full at the end).
  let [k] = (await c.lab.probe([pr], 800)).map((x) => x.open);
  if (k !== evalOpen && !k) {
    await sleep(300);
    [k] = (await c.lab.probe([pr], 1200)).map((x) => x.open);
  }
  return { yes: k !== evalOpen, pred, failed: false };
}

/** Smaller variants of a group: a module group without one of its options (when it has two or more), a group without its `!`. */
function optionsOf(g: Group): Group[] {
  const out: Group[] = [];
  if (g[0] === "-m") {
    // Options start at index 2: [!] --name value
    const opts: Group[] = [];
    let i = 2;
    while (i < g.length) {
      const start = i;
      if (g[i] === "!") i++;
      i++; // --name
      while (i < g.length && !g[i]!.startsWith("-") && g[i] !== "!") i++;
      opts.push(g.slice(start, i));
    }
    if (opts.length > 1) for (let k = 0; k < opts.length; k++) out.push(["-m", g[1]!, ...opts.filter((_, j) => j !== k).flat()]);
    for (let k = 0; k < opts.length; k++) if (opts[k]![0] === "!") out.push(["-m", g[1]!, ...opts.map((o, j) => (j === k ? o.slice(1) : o)).flat()]);
  } else if (g[0] === "!") out.push(g.slice(1));
  return out;
}

function cloneRule(r: FRule): FRule {
  return { ...r, groups: r.groups.map((g) => [...g]), target: [...r.target], sub: r.sub?.map(cloneRule) };
}

async function minimize(c: Ctx, rules: FRule[], pr: LabProbe, evalOpen: boolean): Promise<{ rules: FRule[]; pred: Prediction; unsure?: boolean }> {
  const still = async (xs: FRule[]) => (await reproduces(c, xs, pr, evalOpen)).yes;
  /** Rule i replaced by what `edit` makes of a copy of it. */
  const withRule = (cur: FRule[], i: number, edit: (t: FRule) => void) => cur.map((x, j) => (j === i ? ((t) => (edit(t), t))(cloneRule(x)) : x));
  // Whole rules first.
  let cur = await shrinkList(rules.map(cloneRule), still, { keep: 1 });
  for (let i = 0; i < cur.length; i++) {
    // A jump's chain's rules and their match groups, then the rule's own match groups.
    if (cur[i]!.sub) {
      const sub = await shrinkList(cur[i]!.sub!, (xs) => still(withRule(cur, i, (t) => (t.sub = xs))), { keep: 1 });
      cur = withRule(cur, i, (t) => (t.sub = sub));
      for (let s = 0; s < sub.length; s++) {
        const gs = await shrinkList(cur[i]!.sub![s]!.groups, (xs) => still(withRule(cur, i, (t) => (t.sub![s]!.groups = xs))));
        cur = withRule(cur, i, (t) => (t.sub![s]!.groups = gs));
      }
    }
    const gs = await shrinkList(cur[i]!.groups, (xs) => still(withRule(cur, i, (t) => (t.groups = xs))));
    cur = withRule(cur, i, (t) => (t.groups = gs));
    // A module's options one by one (-m conntrack --ctstate X --ctorigdst Y), and a negation taken off.
    for (let g = 0; g < cur[i]!.groups.length; g++) {
      for (;;) {
        let done = true;
        for (const variant of optionsOf(cur[i]!.groups[g]!)) {
          const next = withRule(cur, i, (t) => (t.groups[g] = variant));
          if (await still(next)) {
            cur = next;
            done = false;
            break;
          }
        }
        if (done) break;
      }
    }
  }
  const last = await reproduces(c, cur, pr, evalOpen, false);
  if (!last.yes) {
    // The quick trials were fooled by a lost answer: the full rules, checked in full, stand.
    const full = await reproduces(c, rules, pr, evalOpen, false);
    return { rules, pred: full.pred ?? { open: "unknown", v: { verdict: "unknown", path: "input" } }, unsure: true };
  }
  return { rules: cur, pred: last.pred ?? { open: "unknown", v: { verdict: "unknown", path: "input" } } };
}

/** A rough kind of a rule: table, chain, target and its match words. */
function shape(r: FRule): string {
  const words = r.groups.map((g) => g.filter((x) => x.startsWith("-") || x === "!").join(" ")).join(" ");
  const sub = r.sub ? ` [${r.sub.map(shape).join("; ")}]` : "";
  return `${r.table}/${r.chain}${words ? " " + words : ""} -j ${r.newChain ? "CHAIN" : r.target[0]}${sub}`;
}
/** The words of a rule that tell kinds apart: options (negated or not), modules, protocols, states, interfaces, address types. */
function wordsOf(r: FRule): Set<string> {
  const out = new Set<string>();
  for (const g of r.groups) {
    for (let i = 0; i < g.length; i++) {
      const neg = g[i - 1] === "!" ? "!" : "";
      const x = g[i]!;
      if (!x.startsWith("-")) continue;
      const v = g[i + 1];
      if (["-m", "-p", "--ctstate", "--state", "--src-type", "--dst-type", "-i", "-o"].includes(x)) out.add(`${neg}${x} ${v}`);
      else out.add(`${neg}${x}`);
    }
  }
  return out;
}
/** Whether rule `big` has everything of the minimized rule `small` (same place, same target, its words). */
function covers(small: FRule, big: FRule): boolean {
  if (small.table !== big.table || small.chain !== big.chain) return false;
  if (Boolean(small.newChain) !== Boolean(big.newChain)) return false;
  if (!small.newChain && small.target[0] !== big.target[0]) return false;
  const wb = wordsOf(big);
  for (const x of wordsOf(small)) if (!wb.has(x)) return false;
  if (small.sub) return small.sub.every((s) => big.sub!.some((b) => covers({ ...s, chain: "X" }, { ...b, chain: "X" })));
  return true;
}
interface Cause {
  kind: string;
  evalOpen: boolean;
  rules: FRule[];
  sig: string;
  seen: number;
}

const fromKind = (pr: LabProbe) => ("iface" in pr.from ? "nbr" : "container" in pr.from ? "ct" : "host");
const probeKind = (pr: LabProbe) => `${"iface" in pr.from ? "nbr" : "container" in pr.from ? "ct" : "host"}${pr.dst.startsWith("127.") ? "-lo" : ""}/${pr.proto}/v${pr.family}`;

// ---------------------------------------------------------------- the run ----
interface Found {
  id: number;
  policy: string;
  ruleset: number;
  rules: string[];
  probe: string;
  evaluator: string;
  kernel: "open" | "closed";
  sig: string;
  pre: string;
}

describeKernel("differential fuzzer: evaluate() against the kernel", () => {
  it(
    "random hand-made rules over shipped policies",
    async () => {
      const S = fuzzSettings("evaluate");
      const out = new FuzzOut(S.out);
      const log = out.log;
      log(`seed ${S.seed}, ${S.minutes} min, policies ${POLICIES.join(" ")}`);
      const start = S.started;
      const deadline = S.deadline;
      const stats = { rulesets: 0, probes: 0, unknown: 0, artifacts: 0, mismatches: 0, failedRules: 0, appliedRules: 0, settledAway: 0 };
      const unknownWhy = new Tally();
      const found: Found[] = [];
      const preCount = new Tally();
      const sigCount = new Tally();
      const causes: Cause[] = [];
      for (const [pi, name] of POLICIES.entries()) {
        const until = start + ((pi + 1) * (deadline - start)) / POLICIES.length;
        if (Date.now() >= until) continue;
        const text = readFileSync(`${root}${name}`, "utf8");
        const r = compile(text, { noRender: true });
        expect(r.ok).toBe(true);
        const plan = planPolicyLab(r.policy!);
        const lab = await startPolicyLab(plan);
        try {
          const said = loadPolicy(lab, text, r.policy!);
          expect(said).toBe("");
          const base = { 4: lab.host.save(4), 6: lab.host.save(6) } as Record<Fam, string>;
          const w = buildWorld(name, plan, base);
          const c: Ctx = { w, lab, reset: { 4: resetText(base[4]), 6: resetText(base[6]) } };
          log(`== ${name}: ${w.probes.length} probes (${plan.probes.length} from the lab's plan), ifaces ${w.ifaces.join(",")}`);
          // Warm up (neighbour discovery), and the base rules must agree with the kernel.
          load(c, []);
          await lab.probe(w.probes, 1500);
          {
            const rs = { 4: readBack(c, 4).rs, 6: readBack(c, 6).rs };
            const preds = w.probes.map((pr) => predict(w, rs[pr.family], pr));
            const k = await settle(lab, w.probes, preds.map((p) => (typeof p.open === "boolean" ? p.open : undefined)));
            const bad = w.probes.map((pr, i) => (typeof preds[i]!.open === "boolean" && preds[i]!.open !== k[i] ? `${describeProbe(pr)}: evaluator ${describeVerdict(preds[i]!.v)} open=${preds[i]!.open}, kernel ${k[i]}` : "")).filter(Boolean);
            log(`base: ${bad.length} disagreements${bad.length ? "\n  " + bad.join("\n  ") : ""}`);
          }
          let n = 0;
          while (Date.now() < until) {
            n++;
            stats.rulesets++;
            rng.reseed(S.seed * 1_000_003 + pi * 100_003 + n);
            const rules: FRule[] = [];
            for (const f of [4, 6] as const) for (let i = int(1, 4); i > 0; i--) rules.push(genRule(w, f));
            const { failed, applied } = load(c, rules);
            stats.failedRules += failed.length;
            stats.appliedRules += applied.length;
            const rs = { 4: readBack(c, 4), 6: readBack(c, 6) };
            const preds = w.probes.map((pr) => predict(w, rs[pr.family].rs, pr, rs[pr.family].text));
            for (const p of preds) {
              if (p.open === "unknown") {
                stats.unknown++;
                const why = (p.v.why ?? "").replace(/\d+\.\d+\.\d+\.\d+|[0-9a-f:]+::[0-9a-f:]*/g, "ADDR").slice(0, 120);
                unknownWhy.add(why);
              }
              if (p.open === "artifact") stats.artifacts++;
            }
            stats.probes += w.probes.length;
            const first = (await lab.probe(w.probes, 800)).map((x) => x.open);
            const k = [...first];
            // Disagreements re-probed twice, 500 ms apart.
            for (let round = 0; round < 2; round++) {
              const again = w.probes.map((_, i) => i).filter((i) => typeof preds[i]!.open === "boolean" && preds[i]!.open !== k[i]);
              if (!again.length) break;
              await sleep(500);
              const res = await lab.probe(again.map((i) => w.probes[i]!), 1200);
              again.forEach((i, j) => (k[i] = res[j]!.open));
            }
            stats.settledAway += w.probes.filter((_, i) => typeof preds[i]!.open === "boolean" && first[i] !== preds[i]!.open && k[i] === preds[i]!.open).length;
            const bad = w.probes.map((_, i) => i).filter((i) => typeof preds[i]!.open === "boolean" && preds[i]!.open !== k[i]);
            log(`#${n} ${applied.length}/${rules.length} rules, ${bad.length} mismatches, ${preds.filter((p) => p.open === "unknown").length} unknown (${Math.round((Date.now() - start) / 1000)}s)`);
            for (const f of failed) log(`  failed: ${f}`);
            if (!bad.length) continue;
            stats.mismatches += bad.length;
            for (const r of applied) log(`  rule: ${show(r)}`);
            for (const i of bad.slice(0, 12)) log(`  ✗ ${describeProbe(w.probes[i]!)}: evaluator ${describeVerdict(preds[i]!.v)} → ${preds[i]!.open ? "open" : "closed"}; kernel ${k[i] ? "open" : "closed"}`);
            if (bad.length > 12) log(`  … ${bad.length - 12} more`);
            // Minimize: one probe at a time; the others that the minimized rules still explain are covered by it.
            const left = new Set(bad);
            let tries = 0;
            while (left.size && Date.now() < until) {
              const i = [...left][0]!;
              left.delete(i);
              const pr = w.probes[i]!;
              const evalOpen = preds[i]!.open as boolean;
              const famRules = applied.filter((r) => r.family === pr.family);
              const known = causes.find((x) => x.kind === fromKind(pr) && x.evalOpen === evalOpen && x.rules.every((cr) => famRules.some((r) => covers(cr, r))));
              if (known) {
                known.seen++;
                sigCount.add(known.sig);
                log(`  (${describeProbe(pr)} like a known one: ${known.sig})`);
                continue;
              }
              if (tries >= 3) continue;
              tries++;
              const pre = `${probeKind(pr)} eval:${evalOpen ? "open" : "closed"} ${preds[i]!.v.verdict} ${preds[i]!.v.path}${preds[i]!.v.reply ? " reply" : ""} | ${famRules.map((r) => `${r.table}/${r.chain}`).sort().join(",")}`;
              if (preCount.get(pre) >= MIN_PER_SIG) {
                log(`  (not minimized, pre-signature seen ${preCount.get(pre)} times: ${pre})`);
                found.push({ id: found.length + 1, policy: name, ruleset: n, rules: famRules.map(show), probe: describeProbe(pr), evaluator: describeVerdict(preds[i]!.v), kernel: k[i] ? "open" : "closed", sig: "(unminimized) " + pre, pre });
                continue;
              }
              preCount.add(pre);
              const check = await reproduces(c, famRules, pr, evalOpen, false);
              if (!check.yes) {
                log(`  (did not reproduce alone for ${describeProbe(pr)}: ${check.failed ? "rules failed" : `kernel now agrees, eval ${check.pred?.open}`})`);
                continue;
              }
              const m = await minimize(c, famRules, pr, evalOpen);
              const sig = `${probeKind(pr)} eval:${evalOpen ? "open" : "closed"} ${m.rules.map(shape).join(" && ")}${m.unsure ? " (unsure)" : ""}`;
              if (!m.unsure) causes.push({ kind: fromKind(pr), evalOpen, rules: m.rules, sig, seen: 1 });
              sigCount.add(sig);
              const entry: Found = { id: found.length + 1, policy: name, ruleset: n, rules: m.rules.map(show), probe: describeProbe(pr), evaluator: describeVerdict(m.pred.v), kernel: evalOpen ? "closed" : "open", sig, pre };
              found.push(entry);
              log(`  MINIMIZED #${entry.id}: ${entry.rules.join(" && ")}\n    probe ${entry.probe}\n    evaluator ${entry.evaluator}; kernel ${entry.kernel}\n    sig ${sig}`);
            }
            out.json("found.json", { stats, found });
          }
        } finally {
          await lab.stop();
        }
      }
      const sigs = sigCount.sorted();
      out.json("found.json", { stats, found });
      writeSummary(out, S, { stats, unknownWhy: unknownWhy.sorted(), signatures: sigs, found: found.length });
      log(`\nDONE ${JSON.stringify(stats)}`);
      for (const [s, k] of sigs) log(`  ${k}× ${s}`);
      console.log(`[fuzz evaluate] ${stats.rulesets} rulesets, ${stats.probes} probes, ${stats.mismatches} mismatches, ${found.length} findings; ${S.out}`);
    },
    fuzzTimeout(),
  );
});
