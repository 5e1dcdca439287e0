// Differential fuzzer: the nftables evaluator (src/analysis/nfteval.ts, evaluateNft) against the
// kernel. Each lab is a policy's world (test/lab/policylab.ts): a captured Docker 29 host (its
// nftables tables as dockerd wrote them, sometimes a host nftables.conf) or a random small policy
// for Docker 29.7 with `iptables off` compiled with --format nft. On top, random hand-made tables
// (inet/ip/ip6; base chains on every hook at random priorities, filter and nat; regular chains
// with jump/goto; verdict maps; sets; ct state/status/original daddr; fib; marks; DNAT, SNAT,
// masquerade; notrack; reject), loaded before or after the world's. Every probe (neighbours,
// containers, the host itself; IPv4 and IPv6) evaluated over `nft -j list ruleset` and sent for
// real; disagreements re-probed twice after 500 ms; a few kept ones minimized (the world's tables,
// load order, chains, rules, matches, counters, a drop policy).
//
// Run (root; the lab builds network namespaces and never touches the root one):
//   DOCKWALL_FUZZ=1 FUZZ_MINUTES=10 FUZZ_SEED=1 npx vitest run --project fuzz test/fuzz/nfteval.fuzz.ts
// More: FUZZ_OUT=DIR (default a fresh dir under the system's tmp, printed), FUZZ_PER_LAB (hand tables
// per lab, default 6), FUZZ_MAX_MINIMIZE (minimizations in all, default 30).
// Output: log.txt, mismatches.jsonl (every mismatch), minimized.jsonl, summary.json.
//
// Known artefacts of the lab (tagged in mismatches.jsonl, never minimized): a DNAT back to the
// sender's own address (the bridge sends nothing back out its port, and a packet from its own
// address is a martian there); a UDP reply to a source NATed on input (the lab's wildcard UDP
// socket answers from the address routing picks, which no conntrack entry maps back).
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import type { Packet } from "../../src/analysis/evaluate.js";
import { evaluateNft, parseNftJson, type NftRuleset, type NftVerdict } from "../../src/analysis/nfteval.js";
import { compile } from "../../src/compile.js";
import { describeKernel } from "../lab/kernel.js";
import { CAPTURED_NFT29_POLICY } from "../support/policies.js";
import { hostView, listening, packetOf, planPolicyLab, startPolicyLab, type LabProbe, type PolicyLab, type PolicyLabPlan } from "../lab/policylab.js";
import { FuzzOut, fuzzSettings, fuzzTimeout, reprobe, Rng, shrinkList, sleep, Tally, writeSummary } from "./common.js";

const PER_LAB = Number(process.env.FUZZ_PER_LAB ?? 6);
const MAX_MIN = Number(process.env.FUZZ_MAX_MINIMIZE ?? 30);
const fixture = (name: string) => readFileSync(new URL(`../analysis/fixtures/nft/${name}`, import.meta.url), "utf8");
/** The output (set when the run starts). */
let log: (s: string) => void = () => {};

const rng = new Rng(1);
const { pick, chance, int, some, rnd } = rng;

// ------------------------------------------------------------- worlds ----
interface Base {
  name: string;
  policy: string;
  /** Tables loaded besides the hand table (the compiled nft file given). */
  tables: (dockwall: string) => string[];
}

const CAPTURED: Base = {
  name: "captured Docker 29 + host nftables.conf + dockwall",
  policy: CAPTURED_NFT29_POLICY,
  tables: (dw) => (chance(0.5) ? [fixture("host-nftables.conf"), fixture("usernet-ipv6-portmap-noproxy.nft"), dw] : [fixture("usernet-ipv6-portmap-noproxy.nft"), dw]),
};

function randomPolicy(): Base {
  const proxy = chance(0.5) ? "on" : "off";
  const two = chance(0.4);
  const lanFrom = chance(0.7);
  const lines: string[] = [];
  lines.push(`docker { version 29.7; iptables off; userland-proxy ${proxy};${chance(0.5) ? " ip6tables on;" : ""} }`);
  lines.push(`zone wan { interface eth0; }`);
  lines.push(`zone lan { interface eth1;${lanFrom ? " from 192.168.1.0/24, fd00:1::/64;" : ""} }`);
  lines.push(`network app { bridge br-app; subnet 172.24.0.0/24; subnet fd00:24::/64; }`);
  if (two) lines.push(`network back { bridge br-back; subnet 172.25.0.0/24; subnet fd00:25::/64; }`);
  const webPubs = some(["publish 8080:80;", "publish 8443:443;", "publish 80:80;"], int(1, 2));
  lines.push(`container web { network app 172.24.0.2, fd00:24::2; ${webPubs.join(" ")} }`);
  if (chance(0.6)) lines.push(`container db { network app 172.24.0.3, fd00:24::3; ${pick(["publish 127.0.0.1:5432:5432;", "publish 5432:5432;", ""])} }`);
  if (two) lines.push(`container dns { network back 172.25.0.2, fd00:25::2; ${pick(["publish 5353:53/udp;", "publish 53:53/udp, 53:53/tcp;", "publish 9090:9090;"])} }`);
  const targets = ["web:8080", "web:8443", "web:80"].filter((t) => webPubs.some((p) => p.startsWith(`publish ${t.split(":")[1]}:`)));
  for (const z of ["lan", "wan"]) if (targets.length && chance(0.7)) lines.push(`allow ${z} to ${some(targets, int(1, targets.length)).join(", ")};`);
  if (two && chance(0.6)) lines.push(`allow lan to ${lines.some((l) => l.includes("5353:53/udp")) ? "dns:5353/udp" : lines.some((l) => l.includes("53:53/udp")) ? "dns:53/udp" : "dns:9090"};`);
  if (chance(0.5)) lines.push(`forward lan to wan;`);
  const host = [...(chance(0.8) ? ["allow lan tcp 22;"] : []), ...(chance(0.4) ? ["allow wan tcp 2222;"] : []), ...(chance(0.4) ? ["allow lan icmp;"] : []), ...(chance(0.3) ? ["allow lan udp 5000;"] : [])];
  if (host.length) lines.push(`host { ${host.join(" ")} }`);
  return { name: `random policy (proxy ${proxy}${two ? ", two networks" : ""})`, policy: lines.join("\n") + "\n", tables: (dw) => [dw] };
}

// ---------------------------------------------------------- hand tables ----
interface HRule {
  matches: string[];
  stmts: string[];
}
interface HChain {
  name: string;
  base?: { type: "filter" | "nat"; hook: string; prio: number; policy: "accept" | "drop" };
  rules: HRule[];
}
interface HTable {
  family: "inet" | "ip" | "ip6";
  chains: HChain[];
  /** Loaded before the world's tables (oldest), not after. */
  first: boolean;
}

const ruleText = (r: HRule) => [...r.matches, ...r.stmts].join(" ");
function render(t: HTable): string {
  const out = [`table ${t.family} fuzz {`];
  for (const c of t.chains) {
    out.push(`\tchain ${c.name} {`);
    if (c.base) out.push(`\t\ttype ${c.base.type} hook ${c.base.hook} priority ${c.base.prio}; policy ${c.base.policy};`);
    // (IPv6 neighbour discovery first: a lab whose ND a random rule drops loses every IPv6 packet, which no evaluator of one packet predicts.)
    if (c.base && t.family !== "ip") out.push(`\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept`);
    for (const r of c.rules) out.push(`\t\t${ruleText(r)}`);
    out.push(`\t}`);
  }
  out.push(`}`);
  return out.join("\n") + "\n";
}

const HOOKS = ["prerouting", "input", "forward", "output", "postrouting"] as const;
const PRIOS = [-300, -250, -200, -150, -100, -1, 0, 1, 50, 99, 100, 101, 200, 300];
/** Ranges that hold the ephemeral ports (32768-60999) whole or not at all. */
const PORT_RANGES = ["1-1023", "1024-65535", "8000-8999", "20-25", "70-90", "400-450", "5000-9000", "30000-65535", "2000-32767", "61000-65535", "50-60"];

interface Pools {
  v4: string[];
  v6: string[];
  p4: string[];
  p6: string[];
  ifs: string[];
  ports: number[];
  containers4: { addr: string; ports: number[] }[];
  containers6: { addr: string; ports: number[] }[];
  host4: string[];
  host6: string[];
}

function poolsOf(plan: PolicyLabPlan): Pools {
  const v4 = new Set<string>(["127.0.0.1"]);
  const v6 = new Set<string>(["::1"]);
  for (const f of plan.ifaces) for (const a of [f.host4, f.host6, f.nbr4, f.nbr6, ...f.sources]) (a.includes(":") ? v6 : v4).add(a);
  for (const b of plan.bridges) for (const a of b.addrs) (a.includes(":") ? v6 : v4).add(a.split("/")[0]!);
  for (const c of plan.containers) for (const e of c.endpoints) for (const a of e.addrs) (a.includes(":") ? v6 : v4).add(a.split("/")[0]!);
  const p4 = ["10.200.0.0/16", "10.200.1.0/24", "10.200.0.0/24", "192.168.1.0/24", "192.168.1.0/28", "127.0.0.0/8", "0.0.0.0/0", ...plan.bridges.flatMap((b) => b.subnets.filter((s) => !s.includes(":")))];
  const p6 = ["fd00:200::/32", "fd00:200:1::/64", "fd00:200::/64", "fd00:1::/64", "fd00:1::/120", "::/0", ...plan.bridges.flatMap((b) => b.subnets.filter((s) => s.includes(":")))];
  const ifs = [...plan.ifaces.map((f) => f.name), ...plan.bridges.map((b) => b.name), "lo"];
  const ports = [...new Set([22, 80, 443, 2222, 5432, 8080, 8443, 7000, 53, 5353, 9090, 5000, ...plan.hostListeners.map((l) => l.port), ...plan.containers.flatMap((c) => [...c.tcp, ...c.udp])])];
  const cs = (fam: 4 | 6) => plan.containers.flatMap((c) => c.endpoints.flatMap((e) => e.addrs.filter((a) => a.includes(":") === (fam === 6)).map((a) => ({ addr: a.split("/")[0]!, ports: [...c.tcp, ...c.udp] }))));
  return {
    v4: [...v4], v6: [...v6], p4, p6, ifs, ports, containers4: cs(4), containers6: cs(6),
    host4: plan.ifaces.map((f) => f.host4), host6: plan.ifaces.map((f) => f.host6),
  };
}

function genTable(plan: PolicyLabPlan): HTable {
  const P = poolsOf(plan);
  const family = pick(["inet", "inet", "ip", "ip6"] as const);
  const fams: (4 | 6)[] = family === "inet" ? [4, 6] : family === "ip" ? [4] : [6];
  const nBase = int(1, 3);
  const nReg = int(0, 2);
  const regs = Array.from({ length: nReg }, (_, i) => `r${i}`);
  const chains: HChain[] = [];
  const addrOf = (f: 4 | 6) => (chance(0.35) ? pick(f === 4 ? P.p4 : P.p6) : pick(f === 4 ? P.v4 : P.v6));
  const addrMatch = (f: 4 | 6): string => {
    const kw = f === 4 ? "ip" : "ip6";
    const field = pick(["saddr", "daddr"]);
    const r = rnd();
    if (r < 0.2) return `${kw} ${field} { ${some([...(f === 4 ? P.v4 : P.v6), ...(f === 4 ? P.p4 : P.p6)], int(2, 3)).join(", ")} }`;
    if (r < 0.4) return `${kw} ${field} != ${addrOf(f)}`;
    return `${kw} ${field} ${addrOf(f)}`;
  };
  const portSpec = (): string => {
    const r = rnd();
    if (r < 0.45) return String(pick(P.ports));
    if (r < 0.7) return `{ ${some(P.ports, int(2, 3)).join(", ")} }`;
    if (r < 0.9) return pick(PORT_RANGES);
    return `{ ${pick(P.ports)}, ${pick(PORT_RANGES)} }`;
  };
  const ifSpec = (): string => {
    const r = rnd();
    if (r < 0.5) return `"${pick(P.ifs)}"`;
    if (r < 0.7) return `"${pick(["eth*", "br-*", "bridge*", "dwv*", "e*", "l*"])}"`;
    return `{ ${some(P.ifs, 2).map((x) => `"${x}"`).join(", ")} }`;
  };
  const match = (hook: string, nat: boolean): string => {
    const f = pick(fams);
    const r = rnd();
    if (r < 0.26) return addrMatch(f);
    if (r < 0.38) return `${pick(["iifname", "oifname"])} ${chance(0.25) ? "!= " : ""}${ifSpec()}`;
    if (r < 0.44) return `meta l4proto ${pick(["tcp", "udp", "icmp", "ipv6-icmp", "{ tcp, udp }", "{ icmp, ipv6-icmp }", "!= tcp"])}`;
    if (r < 0.62) return `${pick(["tcp", "tcp", "udp"])} ${pick(["dport", "dport", "sport"])} ${chance(0.15) ? "!= " : ""}${portSpec()}`;
    if (r < 0.72) return `ct state ${chance(0.15) ? "!= " : ""}${pick(["new", "established", "related", "invalid", "untracked", "{ established, related }", "{ new, untracked }", "established,related"])}`;
    if (r < 0.76) return pick(["ct status dnat", "ct status snat", "ct status != dnat"]);
    if (r < 0.8) return f === 4 ? `ct original ip daddr ${chance(0.3) ? "!= " : ""}${addrOf(4)}` : `ct original ip6 daddr ${addrOf(6)}`;
    if (r < 0.87) return pick(["fib daddr type local", "fib daddr type != local", "fib saddr type local", "fib saddr type != local"]);
    if (r < 0.9) return pick(["meta mark 0x1", "meta mark != 0x0"]);
    if (r < 0.93) return f === 4 ? "icmp type echo-request" : "icmpv6 type echo-request";
    if (r < 0.96) return `th dport ${pick(P.ports)}`;
    return `meta nfproto ${f === 4 ? "ipv4" : "ipv6"}`;
  };
  const verdict = (self: string, hook: string, nat: boolean, top: boolean): string => {
    const targets = regs.filter((x) => (self.startsWith("r") ? x > self : true));
    const r = rnd();
    if (r < 0.25) return "accept";
    if (r < 0.5) return "drop";
    if (r < 0.58 && !nat && (hook === "input" || hook === "forward" || hook === "output" || hook === "prerouting")) return pick(["reject", "reject with tcp reset", fams.length === 1 && fams[0] === 4 ? "reject with icmp type host-unreachable" : "reject"]);
    if (r < 0.64) return "return";
    if (r < 0.8 && targets.length) return `${pick(["jump", "jump", "goto"])} ${pick(targets)}`;
    if (r < 0.88) {
      // a verdict map
      const vs = () => pick(["accept", "drop", ...(targets.length ? [`jump ${pick(targets)}`, `goto ${pick(targets)}`] : []), "continue"]);
      const k = rnd();
      if (k < 0.4) return `tcp dport vmap { ${some(P.ports, int(1, 3)).map((p) => `${p} : ${vs()}`).join(", ")} }`;
      if (k < 0.6) return `iifname vmap { ${some(P.ifs, int(1, 3)).map((p) => `"${p}" : ${vs()}`).join(", ")} }`;
      if (k < 0.8) return `meta l4proto vmap { tcp : ${vs()}, udp : ${vs()}, ${fams.includes(4) ? "icmp" : "ipv6-icmp"} : ${vs()} }`;
      const f = pick(fams);
      return `${f === 4 ? "ip" : "ip6"} saddr vmap { ${some(f === 4 ? P.v4 : P.v6, int(1, 3)).map((a) => `${a} : ${vs()}`).join(", ")} }`;
    }
    if (r < 0.93 && (hook === "prerouting" || hook === "output") && !nat) return "notrack";
    if (r < 0.96) return "meta mark set 0x1";
    return chance(0.5) ? "continue" : "accept";
  };
  const natStmt = (hook: string): string[] => {
    const f = pick(fams);
    const fam = family === "inet" ? (f === 4 ? " ip" : " ip6") : "";
    if (hook === "prerouting" || hook === "output") {
      const cs = f === 4 ? P.containers4 : P.containers6;
      const r = rnd();
      let to: string;
      if (r < 0.6 && cs.length) {
        const c = pick(cs);
        const port = c.ports.length ? pick(c.ports) : 80;
        to = f === 4 ? `${c.addr}:${port}` : `[${c.addr}]:${port}`;
      } else if (r < 0.8) {
        const n = f === 4 ? plan.ifaces.at(-1)!.nbr4 : plan.ifaces.at(-1)!.nbr6;
        to = f === 4 ? `${n}:7000` : `[${n}]:7000`;
      } else {
        const h = pick(f === 4 ? P.host4 : P.host6);
        const port = plan.hostListeners.length ? pick(plan.hostListeners).port : 22;
        to = f === 4 ? `${h}:${port}` : `[${h}]:${port}`;
      }
      const m = [`${pick(["tcp", "tcp", "udp"])} dport ${pick(P.ports)}`];
      if (chance(0.4)) m.unshift(chance(0.5) ? "fib daddr type local" : addrMatch(f));
      return [...m, `dnat${fam} to ${to}`];
    }
    const r = rnd();
    const m = chance(0.6) ? [chance(0.5) ? `oifname ${ifSpec()}` : addrMatch(f)] : [];
    if (r < 0.6) return [...m, "masquerade"];
    const h = pick(f === 4 ? P.host4 : P.host6);
    return [...m, `snat${fam} to ${h}`];
  };
  const rulesFor = (self: string, hook: string, nat: boolean, top: boolean): HRule[] => {
    const n = int(1, 4);
    const out: HRule[] = [];
    for (let i = 0; i < n; i++) {
      if (nat && chance(0.6)) {
        const s = natStmt(hook);
        out.push({ matches: s.slice(0, -1), stmts: [...(chance(0.3) ? ["counter"] : []), s.at(-1)!] });
        continue;
      }
      const matches = Array.from({ length: int(0, 3) }, () => match(hook, nat));
      const v = verdict(self, hook, nat, top);
      out.push({ matches, stmts: [...(chance(0.3) ? ["counter"] : []), v] });
    }
    return out;
  };
  for (let i = 0; i < nBase; i++) {
    const hook = pick(HOOKS);
    const nat = hook !== "forward" && chance(0.3);
    const prio = pick(PRIOS);
    const policy = chance(0.7) ? "accept" : "drop";
    chains.push({ name: `b${i}`, base: { type: nat ? "nat" : "filter", hook, prio, policy: nat ? (chance(0.9) ? "accept" : policy) : policy }, rules: [] });
  }
  for (const r of regs) chains.push({ name: r, rules: [] });
  // Regular chains get the hook of the first base chain (validation of reject etc. is by the chains that reach them).
  for (const c of chains) {
    const hook = c.base?.hook ?? chains[0]!.base!.hook;
    const nat = c.base ? c.base.type === "nat" : chains[0]!.base!.type === "nat";
    c.rules = rulesFor(c.name, hook, nat, Boolean(c.base));
  }
  return { family, chains, first: chance(0.25) };
}

// -------------------------------------------------------------- probes ----
interface Probe {
  pr: LabProbe;
  pk: Packet;
}

function probesOf(plan: PolicyLabPlan): Probe[] {
  const out: Probe[] = plan.probes.map((pr) => ({ pr, pk: packetOf(plan, pr) }));
  const view = hostView(plan);
  const hostPk = (pr: LabProbe): Packet => ({ family: pr.family, in: "lo", src: pr.src, fromHost: true, dst: pr.dst, proto: pr.proto, sport: 40000, dport: pr.port, state: "NEW", ...(pr.proto === "icmp" ? { icmpType: pr.family === 4 ? 8 : 128 } : {}), ...view });
  const host = (family: 4 | 6, src: string, dst: string, proto: "tcp" | "udp" | "icmp", port?: number) => {
    const pr: LabProbe = { from: { host: true }, family, src, dst, proto, ...(port !== undefined ? { port } : {}) };
    out.push({ pr, pk: hostPk(pr) });
  };
  const f0 = plan.ifaces[0]!;
  const fl = plan.ifaces.at(-1)!;
  const hostPorts = new Map<string, [string, number]>();
  for (const l of plan.hostListeners) hostPorts.set(`${l.proto}/${l.port}/${l.bind}`, [l.proto, l.port]);
  for (const l of plan.hostListeners) {
    if (l.bind === "::") {
      host(4, fl.host4, fl.host4, l.proto, l.port);
      host(6, fl.host6, fl.host6, l.proto, l.port);
    } else if (l.bind === "127.0.0.1") host(4, "127.0.0.1", "127.0.0.1", l.proto, l.port);
  }
  // Published ports on the host's addresses (DNAT in output, or docker-proxy).
  const pubs = new Set<string>();
  for (const pr of plan.probes) if ("iface" in pr.from && pr.dst === (pr.family === 4 ? plan.ifaces.find((f) => f.name === (pr.from as { iface: string }).iface)!.host4 : plan.ifaces.find((f) => f.name === (pr.from as { iface: string }).iface)!.host6) && pr.proto !== "icmp") pubs.add(`${pr.family}/${pr.proto}/${pr.port}`);
  for (const k of pubs) {
    const [fam, proto, port] = k.split("/");
    if (plan.hostListeners.some((l) => l.port === Number(port) && l.proto === proto && l.bind === "::")) continue;
    host(Number(fam) as 4 | 6, fam === "4" ? f0.host4 : f0.host6, fam === "4" ? f0.host4 : f0.host6, proto as "tcp", Number(port));
  }
  for (const c of plan.containers) {
    const e = c.endpoints[0]!;
    for (const a of e.addrs) {
      const dst = a.split("/")[0]!;
      const family = dst.includes(":") ? 6 : 4;
      const gw = e.gateways.find((g) => g.includes(":") === (family === 6))!;
      for (const port of c.tcp.slice(0, 2)) host(family, gw, dst, "tcp", port);
      for (const port of c.udp.slice(0, 1)) host(family, gw, dst, "udp", port);
      host(family, gw, dst, "icmp");
      // The container to the host: its gateway's listeners, and published ports on the wan address (hairpin).
      const from = { container: c.name };
      for (const l of plan.hostListeners.filter((x) => x.bind === "::").slice(0, 2)) {
        const pr: LabProbe = { from, family, src: dst, dst: gw, proto: l.proto, port: l.port };
        out.push({ pr, pk: packetOf(plan, pr) });
      }
      for (const k of [...pubs].filter((x) => x.startsWith(`${family}/`)).slice(0, 2)) {
        const [, proto, port] = k.split("/");
        const pr: LabProbe = { from, family, src: dst, dst: family === 4 ? f0.host4 : f0.host6, proto: proto as "tcp", port: Number(port) };
        out.push({ pr, pk: packetOf(plan, pr) });
      }
      const pr: LabProbe = { from, family, src: dst, dst: family === 4 ? fl.nbr4 : fl.nbr6, proto: "icmp" };
      out.push({ pr, pk: packetOf(plan, pr) });
    }
  }
  for (const family of [4, 6] as const) {
    for (const f of plan.ifaces) {
      host(family, family === 4 ? f.host4 : f.host6, family === 4 ? f.nbr4 : f.nbr6, "tcp", 7000);
      host(family, family === 4 ? f.host4 : f.host6, family === 4 ? f.nbr4 : f.nbr6, "icmp");
    }
  }
  // (Unique.)
  const seen = new Set<string>();
  return out.filter((x) => {
    const k = JSON.stringify(x.pr);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function predict(plan: PolicyLabPlan, rs: NftRuleset, x: Probe): { v: NftVerdict; open: boolean | undefined } {
  const v = evaluateNft(rs, x.pk, { replies: true });
  if (v.verdict === "unknown") return { v, open: undefined };
  if (v.verdict !== "ACCEPT") return { v, open: false };
  const to = v.dnat ?? { addr: x.pr.dst };
  if ("host" in x.pr.from) {
    const pr: LabProbe = { ...x.pr, from: { iface: plan.ifaces[0]!.name } };
    return { v, open: listening(plan, pr, v.path === "output" ? "forward" : "input", to) };
  }
  return { v, open: listening(plan, x.pr, v.path, to) };
}

const describe1 = (x: Probe) => `${"iface" in x.pr.from ? `nbr@${x.pr.from.iface}` : "container" in x.pr.from ? `ctr ${x.pr.from.container}` : "host"} ${x.pr.proto} ${x.pr.src} -> ${x.pr.dst}${x.pr.port ? `:${x.pr.port}` : ""} (v${x.pr.family})`;
const vText = (v: NftVerdict) =>
  `${v.verdict} path=${v.path}${v.dnat ? ` dnat=${v.dnat.addr}:${v.dnat.port ?? ""}` : ""}${v.snat ? ` snat=${JSON.stringify(v.snat)}` : ""}${v.reply ? " (reply)" : ""}${v.decided ? ` by ${v.decided.family} ${v.decided.table} ${v.decided.chain} #${v.decided.index} ${v.decided.text ?? ""}` : ""}${v.why ? ` why=${v.why}` : ""}`;

// --------------------------------------------------------------- loading ----
function loadAll(lab: PolicyLab, base: string[], hand: HTable | undefined): string {
  lab.host.run(["nft", "flush", "ruleset"]);
  const texts = hand ? (hand.first ? [render(hand), ...base] : [...base, render(hand)]) : base;
  for (const t of texts) {
    const r = lab.host.run(["nft", "-f", "-"], t);
    if (r.stderr.trim()) return r.stderr.trim();
  }
  return "";
}
const readRs = (lab: PolicyLab) => parseNftJson(lab.host.run(["nft", "-j", "list", "ruleset"]).stdout);

/** Each probe sent twice (the first warms up neighbour discovery), the ones unlike `want` re-probed. */
async function kernelOpen(lab: PolicyLab, probes: LabProbe[], want: (boolean | undefined)[]): Promise<boolean[]> {
  await lab.probe(probes, 800);
  return reprobe(lab, probes, want);
}

/** Whether the mismatch of this probe holds with these tables (evaluator known, and the kernel otherwise, three times). */
async function stillWrong(lab: PolicyLab, plan: PolicyLabPlan, base: string[], hand: HTable | undefined, x: Probe): Promise<{ wrong: boolean; v?: NftVerdict; kernel?: boolean }> {
  const err = loadAll(lab, base, hand);
  if (err) return { wrong: false };
  const rs = readRs(lab);
  const { v, open } = predict(plan, rs, x);
  if (open === undefined) return { wrong: false };
  let k = false;
  for (let i = 0; i < 3; i++) {
    k = (await lab.probe([x.pr], 1000))[0]!.open;
    if (k === open) return { wrong: false };
    if (k) break; // open is never a fluke
    await sleep(300);
  }
  return { wrong: true, v, kernel: k };
}

async function minimize(lab: PolicyLab, plan: PolicyLabPlan, base: string[], hand: HTable, x: Probe): Promise<{ hand: HTable; base: string[] }> {
  let cur: HTable = JSON.parse(JSON.stringify(hand));
  let b = base;
  const tryIt = async (cand: HTable, bb = b) => (await stillWrong(lab, plan, bb, cand, x)).wrong;
  // Without the world's tables at all?
  if (await tryIt(cur, [])) b = [];
  // Order: loaded first or last.
  if (cur.first && (await tryIt({ ...cur, first: false }))) cur = { ...cur, first: false };
  let changed = true;
  while (changed) {
    changed = false;
    // Whole chains (a regular chain only if nothing names it).
    for (let i = cur.chains.length - 1; i >= 0; i--) {
      const name = cur.chains[i]!.name;
      const cand = { ...cur, chains: cur.chains.filter((_, j) => j !== i) };
      if (!cur.chains[i]!.base && JSON.stringify(cand.chains).includes(` ${name}`)) continue;
      if (cand.chains.length && cand.chains.some((c) => c.base) && (await tryIt(cand))) {
        cur = cand;
        changed = true;
      }
    }
    // Rules, then matches, then counters; policies to accept.
    for (let ci = 0; ci < cur.chains.length; ci++) {
      const chain = (t: HTable, edit: (c: HChain) => void): HTable => {
        const cand: HTable = JSON.parse(JSON.stringify(t));
        edit(cand.chains[ci]!);
        return cand;
      };
      const rules = await shrinkList(cur.chains[ci]!.rules, (xs) => tryIt(chain(cur, (c) => (c.rules = xs))));
      if (rules.length < cur.chains[ci]!.rules.length) changed = true;
      cur = chain(cur, (c) => (c.rules = rules));
      for (let ri = 0; ri < cur.chains[ci]!.rules.length; ri++) {
        const matches = await shrinkList(cur.chains[ci]!.rules[ri]!.matches, (xs) => tryIt(chain(cur, (c) => (c.rules[ri]!.matches = xs))));
        if (matches.length < cur.chains[ci]!.rules[ri]!.matches.length) changed = true;
        cur = chain(cur, (c) => (c.rules[ri]!.matches = matches));
        if (cur.chains[ci]!.rules[ri]!.stmts.includes("counter")) {
          const cand: HTable = JSON.parse(JSON.stringify(cur));
          cand.chains[ci]!.rules[ri]!.stmts = cand.chains[ci]!.rules[ri]!.stmts.filter((s) => s !== "counter");
          if (await tryIt(cand)) {
            cur = cand;
            changed = true;
          }
        }
      }
      const c = cur.chains[ci]!;
      if (c.base && c.base.policy === "drop") {
        const cand: HTable = JSON.parse(JSON.stringify(cur));
        cand.chains[ci]!.base!.policy = "accept";
        if (await tryIt(cand)) {
          cur = cand;
          changed = true;
        }
      }
    }
  }
  return { hand: cur, base: b };
}

// ----------------------------------------------------------------- run ----
describeKernel("nfteval differential fuzzer", () => {
  it(
    "evaluateNft agrees with the kernel on random hand tables",
    async () => {
      const S = fuzzSettings("nfteval");
      const out = new FuzzOut(S.out);
      log = out.log;
      out.start("mismatches.jsonl");
      out.start("minimized.jsonl");
      log(`seed ${S.seed}, ${S.minutes} min`);
      const deadline = S.deadline;
      /** Room kept at the end: for the last world, and for a minimization. */
      const margin = Math.min(60_000, (S.deadline - S.started) / 8);
      const stats = { labs: 0, worlds: 0, loadFailed: 0, probes: 0, unknown: 0, mismatches: 0, minimized: 0, open: 0, closed: 0, v6: 0, hostProbes: 0 };
      const unknownWhy = new Tally();
      const loadErr = new Tally();
      const artifacts = new Tally();
      const seenSig = new Set<string>();
      let labNo = 0;
      while (Date.now() < deadline - margin) {
        labNo++;
        rng.reseed(S.seed * 1000 + labNo);
        const world = labNo % 3 === 1 ? CAPTURED : randomPolicy();
        const nft = compile(world.policy, { format: "nft" });
        if (!nft.ok) {
          log(`lab ${labNo}: policy does not compile: ${nft.diagnostics.map((d) => d.message).join("; ")}\n${world.policy}`);
          continue;
        }
        const p = compile(world.policy, { noRender: true, format: "nft" }).policy!;
        const plan = planPolicyLab(p);
        const base = world.tables(nft.output!);
        const lab = await startPolicyLab(plan);
        stats.labs++;
        log(`=== lab ${labNo}: ${world.name}\n${world.policy}`);
        try {
          const probes = probesOf(plan);
          for (let w = 0; w < PER_LAB && Date.now() < deadline - margin; w++) {
            let hand: HTable | undefined;
            for (let tries = 0; tries < 8; tries++) {
              const cand = genTable(plan);
              const err = loadAll(lab, base, cand);
              if (!err) {
                hand = cand;
                break;
              }
              stats.loadFailed++;
              const key = err.split("\n")[0]!.replace(/\/dev\/stdin:\d+:\d+-\d+: /, "").slice(0, 80);
              loadErr.add(key);
            }
            if (!hand) continue;
            stats.worlds++;
            const rs = readRs(lab);
            const preds = probes.map((x) => predict(plan, rs, x));
            const want = preds.map((q) => q.open);
            const kernel = await kernelOpen(lab, probes.map((x) => x.pr), want);
            const wrong: number[] = [];
            preds.forEach((q, i) => {
              stats.probes++;
              if (probes[i]!.pr.family === 6) stats.v6++;
              if ("host" in probes[i]!.pr.from) stats.hostProbes++;
              if (q.open === undefined) {
                stats.unknown++;
                const why = (q.v.why ?? "").replace(/, in .*$/, "").replace(/rule handle \d+/, "");
                unknownWhy.add(why);
                return;
              }
              if (q.open) stats.open++;
              else stats.closed++;
              if (q.open !== kernel[i]) wrong.push(i);
            });
            log(`--- lab ${labNo} world ${w} (${stats.worlds}): ${probes.length} probes, ${preds.filter((q) => q.open === undefined).length} unknown, ${wrong.length} wrong, ${preds.filter((q) => q.open).length} open\n${render(hand)}${hand.first ? "(loaded first)\n" : ""}`);
            stats.mismatches += wrong.length;
            /** Known differences of the lab, not of the ruleset: DNAT back to the sender's own address (the bridge sends nothing back out its port, and a packet from its own address is a martian there); a UDP reply to a source NATed on input (the lab's wildcard UDP socket answers from the address routing picks, which no conntrack entry maps back). */
            const artifact = (i: number): string => {
              const x = probes[i]!;
              const v = preds[i]!.v;
              if (v.dnat && v.dnat.addr === x.pr.src) return "dnat back to the sender";
              if (x.pr.proto === "udp" && v.path === "input" && v.snat) return "udp reply to a source NATed on input";
              return "";
            };
            for (const i of wrong) {
              const rec = { artifact: artifact(i), lab: labNo, world: w, policy: world.policy, hand: render(hand), first: hand.first, probe: describe1(probes[i]!), evaluator: vText(preds[i]!.v), predicted: preds[i]!.open, kernel: kernel[i] };
              out.line("mismatches.jsonl", rec);
              if (rec.artifact) artifacts.add(rec.artifact);
              log(`  MISMATCH${rec.artifact ? ` [${rec.artifact}]` : ""} ${rec.probe}: evaluator ${rec.evaluator} => ${rec.predicted ? "open" : "closed"}; kernel ${kernel[i] ? "open" : "closed"}`);
            }
            // Minimize a few: one per kind of probe and answer per world.
            const kinds = new Set<string>();
            for (const i of wrong) {
              if (stats.minimized >= MAX_MIN || Date.now() > deadline - 2 * margin) break;
              if (artifact(i)) continue;
              const x = probes[i]!;
              const kind = `${"iface" in x.pr.from ? "nbr" : "container" in x.pr.from ? "ctr" : "host"} ${x.pr.proto} ${preds[i]!.v.path} ${preds[i]!.open} ${x.pr.family}`;
              if (kinds.has(kind) || kinds.size >= 2) continue;
              kinds.add(kind);
              const again = await stillWrong(lab, plan, base, hand, x);
              if (!again.wrong) {
                log(`  (not reproduced on its own: ${describe1(x)})`);
                continue;
              }
              stats.minimized++;
              const m = await minimize(lab, plan, base, hand, x);
              const fin = await stillWrong(lab, plan, m.base, m.hand, x);
              const sig = render(m.hand) + describe1(x);
              const rec = { lab: labNo, world: w, probe: describe1(x), withWorldTables: m.base.length > 0, policy: world.policy, hand: render(m.hand), first: m.hand.first, evaluator: fin.v ? vText(fin.v) : "?", kernel: fin.kernel, stillWrong: fin.wrong, dup: seenSig.has(sig) };
              seenSig.add(sig);
              out.line("minimized.jsonl", rec);
              log(`  MINIMIZED ${rec.probe} (world tables ${rec.withWorldTables ? "kept" : "not needed"}${rec.first ? ", hand table first" : ""}): evaluator ${rec.evaluator}; kernel ${fin.kernel ? "open" : "closed"}\n${rec.hand}`);
              // Back to this world's tables for the next.
            }
            writeSummary(out, S, { stats, artifacts: artifacts.object(), unknownWhy: unknownWhy.object(), loadErr: loadErr.object() });
          }
        } finally {
          await lab.stop();
        }
      }
      writeSummary(out, S, { stats, artifacts: artifacts.object(), unknownWhy: unknownWhy.object(), loadErr: loadErr.object() });
      log(`DONE ${JSON.stringify(stats)}`);
      console.log(`[fuzz nfteval] ${stats.labs} labs, ${stats.worlds} hand tables, ${stats.probes} probes, ${stats.mismatches} mismatches (${artifacts.sorted().reduce((n, [, k]) => n + k, 0)} known artefacts), ${stats.minimized} minimized; ${S.out}`);
      expect(stats.worlds).toBeGreaterThan(0);
    },
    fuzzTimeout(),
  );
});
