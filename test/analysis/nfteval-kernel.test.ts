// The nftables evaluator (src/analysis/nfteval.ts) against the kernel, as evaluate.ts is for
// iptables rules: a policy's world built in namespaces (test/lab/policylab.ts), nft rulesets
// loaded into its host — Docker 29's own tables as dockerd 29.7.2 wrote them (a capture, with
// the capture's addresses), a host table laid out as Debian's nftables.conf, and dockwall's
// table compiled from the policy (or, with "iptables": false, dockwall's file holding Docker's
// tables too) — and read back with `nft -j list ruleset`. Then:
// - every packet the world can send (neighbours' TCP and ICMP to the host's ports, to published
//   ports, straight to container addresses and to each other, IPv4 and IPv6; containers out;
//   the host's own connections) is sent for real, and the evaluator's verdict (with where the
//   packet ends up listening or not) must be what the connection did;
// - for a sample, the kernel traces the packet (`meta nftrace set 1` in a prerouting or output
//   chain of priority -500, read with `nft -a monitor trace`), and every rule that jumped,
//   accepted, dropped, returned or NATed it and every base chain policy it reached — family,
//   table, chain, handle, verdict, in order — must be the evaluator's steps.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import type { Packet } from "../../src/analysis/evaluate.js";
import { evaluateNft, parseNftJson, type NftRuleset, type NftStep, type NftVerdict } from "../../src/analysis/nfteval.js";
import { compile } from "../../src/compile.js";
import { describeKernel } from "../lab/kernel.js";
import { CAPTURED_NFT29_POLICY } from "../support/policies.js";
import { hostView, listening, packetOf, planPolicyLab, startPolicyLab, type LabProbe, type PolicyLab, type PolicyLabPlan } from "../lab/policylab.js";

const fixture = (name: string) => readFileSync(new URL(`fixtures/nft/${name}`, import.meta.url), "utf8");

interface World {
  name: string;
  policy: string;
  /** What is loaded into the host, in this order (the policy's compiled nft file given). */
  tables: (dockwall: string) => string[];
  /** The host's own connections: to its addresses, its published ports, a container, a neighbour (from the address the kernel picks). */
  fromHost: { src: string; dst: string; port: number }[];
  /** Which of those open, where the world is about them (the kernel must agree, and so must the evaluator). */
  hostOpen?: boolean[];
  /** Neighbours' packets traced (TRACED unless said: a world about verdicts traces fewer, each trace takes most of a second). */
  traced?: number;
}

/** web on one dual-stack network, its port published to the lan and the wan; Docker's firewall off (userland-proxy off). */
const WEB_APP = `docker { version 29.7; iptables off; userland-proxy off; ip6tables on; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network app { bridge br-app; subnet 172.24.0.0/24; subnet fd00:24::/64; }
container web { network app 172.24.0.2, fd00:24::2; publish 8080:80; }
allow lan to web:8080;
allow wan to web:8080;
`;

const WORLDS: World[] = [
  {
    // The capture's world: bridge1 192.0.2.0/24 and 2001:db8:1::/64, c1 at .2 publishing 8080:80, userland-proxy off.
    name: "Docker 29's tables (captured), a host's inet filter with sets, a verdict map and a reject, and dockwall's inet dockwall",
    policy: CAPTURED_NFT29_POLICY,
    tables: (dockwall) => [fixture("host-nftables.conf"), fixture("usernet-ipv6-portmap-noproxy.nft"), dockwall],
    fromHost: [
      { src: "10.200.1.1", dst: "10.200.1.1", port: 22 },
      { src: "10.200.1.1", dst: "10.200.1.1", port: 8080 },
      { src: "fd00:200:1::1", dst: "fd00:200:1::1", port: 8080 },
      { src: "192.0.2.1", dst: "192.0.2.2", port: 80 },
      { src: "10.200.0.1", dst: "10.200.0.2", port: 7000 },
    ],
  },
  {
    name: "iptables off: dockwall's file holds Docker's tables (userland-proxy on, a port on 127.0.0.1) and its own",
    policy: `docker { version 29.7; iptables off; userland-proxy on; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network app { bridge br-app; subnet 172.24.0.0/24; subnet fd00:24::/64; }
container web { network app 172.24.0.2, fd00:24::2; publish 8080:80; publish 8443:443; }
container db { network app 172.24.0.3, fd00:24::3; publish 127.0.0.1:5432:5432; }
allow lan to web:8080;
allow wan to web:8443;
forward lan to wan;
host { allow lan tcp 22; }
`,
    tables: (dockwall) => [dockwall],
    fromHost: [
      { src: "10.200.0.1", dst: "10.200.0.1", port: 8443 },
      { src: "fd00:24::1", dst: "fd00:24::2", port: 443 },
      { src: "10.200.1.1", dst: "10.200.1.2", port: 7000 },
    ],
  },
  {
    // A review, proven with packets: nat maps a DNATed connection's reply back at priority 100 (srcnat), so a postrouting chain
    // after it sees the reply from the address and port the connection was sent to. Its drop of those closed the lan's
    // connections to web:8080 through the lan's own address, and explain said open (it kept the container's address and port).
    name: "a postrouting chain after nat: a DNATed connection's reply from the address and port it was sent to",
    policy: WEB_APP,
    // (The port first: a container's packet out, masqueraded, has a source the evaluator does not pick.) And the replies of
    // the host's own connections, in: after nat maps them back (input, 100) the one to 10.200.0.1:8080 is dropped, and the
    // one from web's own port 80 (its connection nothing translated).
    tables: (dockwall) => [
      dockwall,
      "table inet late {\n\tchain post {\n\t\ttype filter hook postrouting priority 200; policy accept;\n\t\ttcp sport 8080 ip saddr 10.200.1.1 drop\n\t\ttcp sport 8080 ip6 saddr fd00:200:1::1 drop\n\t}\n\tchain in {\n\t\ttype filter hook input priority 200; policy accept;\n\t\ttcp sport 8080 ip saddr 10.200.0.1 drop\n\t\ttcp sport 80 ip6 saddr fd00:24::2 drop\n\t}\n}\n",
    ],
    fromHost: [
      { src: "10.200.1.1", dst: "10.200.1.1", port: 8080 },
      { src: "10.200.0.1", dst: "10.200.0.1", port: 8080 },
      { src: "fd00:24::1", dst: "fd00:24::2", port: 80 },
      { src: "172.24.0.1", dst: "172.24.0.2", port: 80 },
    ],
  },
  {
    // A review of the host's own connections' replies (on iptables, each case proven with packets there too): a masquerade to
    // the address a connection already had translates nothing (no `ct status snat`); an IPv6 connection's masqueraded reply
    // is addressed to the bridge's IPv6 address before nat maps it back; a neighbour's replies dropped in input.
    name: "the host's own connections: ct status snat, a masqueraded IPv6 reply before nat, a neighbour's replies dropped",
    policy: WEB_APP,
    tables: (dockwall) => [
      dockwall,
      "table inet late {\n\tchain raw {\n\t\ttype filter hook prerouting priority -300; policy accept;\n\t\tiifname \"br-app\" ip6 daddr fd00:24::1 tcp sport 80 drop\n\t}\n\tchain in {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tct status snat ip saddr 172.24.0.2 drop\n\t\tip saddr 10.200.1.2 tcp sport 7000 drop\n\t}\n}\n",
    ],
    fromHost: [
      { src: "10.200.0.1", dst: "10.200.0.1", port: 8080 },
      { src: "172.24.0.1", dst: "172.24.0.2", port: 80 },
      { src: "fd00:200::1", dst: "fd00:200::1", port: 8080 },
      { src: "fd00:24::1", dst: "fd00:24::2", port: 80 },
      { src: "10.200.1.1", dst: "10.200.1.2", port: 7000 },
      { src: "10.200.0.1", dst: "10.200.0.2", port: 7000 },
    ],
    hostOpen: [false, true, false, false, false, true],
  },
  {
    // A fuzzer, each traced in the kernel: output's chains after a DNAT in output still see the interface the packet was sent
    // by (lo, to the host's own address), postrouting the new one; and the reply of the host's connection to itself goes
    // out and in again by lo, through output too.
    name: "the host's own connections: oifname in output after its DNAT, the replies of its connections to itself",
    policy: `${WEB_APP}host { allow lan tcp 22; }
`,
    tables: (dockwall) => [
      dockwall,
      "table inet late {\n\tchain out {\n\t\ttype filter hook output priority 0; policy accept;\n\t\toifname \"br-app\" tcp dport 80 drop\n\t\toifname \"lo\" tcp sport 22 ip saddr 10.200.0.1 drop\n\t}\n}\n",
    ],
    fromHost: [
      { src: "10.200.0.1", dst: "10.200.0.1", port: 8080 },
      { src: "172.24.0.1", dst: "172.24.0.2", port: 80 },
      { src: "fd00:200::1", dst: "fd00:200::1", port: 8080 },
      { src: "fd00:24::1", dst: "fd00:24::2", port: 80 },
      { src: "10.200.0.1", dst: "10.200.0.1", port: 22 },
      { src: "10.200.1.1", dst: "10.200.1.1", port: 22 },
    ],
    hostOpen: [true, false, true, false, false, true],
  },
  {
    // A fuzzer, traced in the kernel: a connection's later packets from the side that opened it (its ACK, its data) are
    // ESTABLISHED; chains that drop those and not its first packet close it.
    name: "a connection's later packets: dropped in forward and input where its first is not",
    policy: `${WEB_APP}host { allow lan tcp 22; }\n`,
    tables: (dockwall) => [
      dockwall,
      "table inet late {\n\tchain forwarded {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\tct state established oifname \"br-app\" tcp dport 80 drop\n\t}\n\tchain in {\n\t\ttype filter hook input priority 10; policy accept;\n\t\tct state established tcp dport 22 drop\n\t}\n}\n",
    ],
    fromHost: [
      { src: "10.200.0.1", dst: "10.200.0.1", port: 8080 },
      { src: "172.24.0.1", dst: "172.24.0.2", port: 80 },
      { src: "10.200.1.1", dst: "10.200.1.1", port: 22 },
    ],
    hostOpen: [true, true, false],
  },
  {
    // A fuzzer: `meta mark` was always unknown (its most common unknown). A packet's mark is 0 until a rule on its way sets
    // one: a drop of mark 0 closes, a drop of any other mark passes by; a mark set and never read decides nothing. And
    // `ct status ! dnat` (none of the DNAT bit; nft lists `ct status & dnat == 0` so), unknown before: told now.
    name: "meta mark: 0 until a rule sets it (read in forward and output, set in prerouting and not read); ct status ! dnat; the host's ssh to itself untracked, its later replies new",
    policy: `${WEB_APP}host { allow lan tcp 22; }\n`,
    tables: (dockwall) => [
      dockwall,
      "table inet marks {\n\tchain pre {\n\t\ttype filter hook prerouting priority -200; policy accept;\n\t\tiifname \"eth1\" meta mark set 0x5\n\t}\n\tchain forwarded {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\tiifname \"eth0\" meta mark != 0x0 drop\n\t\tiifname \"eth0\" meta mark 0x0 ip6 daddr fd00:24::2 tcp dport 80 drop\n\t}\n\tchain sent {\n\t\ttype filter hook output priority 0; policy accept;\n\t\toifname \"lo\" meta mark & 0xff == 0x0 tcp dport 22 ip saddr 10.200.1.1 drop\n\t\tmeta mark 0x1 drop\n\t}\n}\n",
      "table inet ctst {\n\tchain forwarded {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\toifname \"br-app\" ct status ! dnat tcp dport 80 drop\n\t}\n\tchain in {\n\t\ttype filter hook input priority 10; policy accept;\n\t\tct status & dnat == 0x0 ip6 saddr fd00:1::/64 tcp dport 22 drop\n\t}\n}\n",
      // The host's ssh to itself (IPv6) taken out of conntrack: its SYN-ACK has no entry (invalid), and the replies after it
      // are a connection of their own to conntrack (loose pickup), new each time, a FIN with them invalid: a drop of all but
      // the SYN-ACK closes it on one address, not on the other (a fuzzer's helper, on iptables; the walk took the SYN-ACK
      // alone, and said open).
      "table inet loose {\n\tchain notrk {\n\t\ttype filter hook output priority -300; policy accept;\n\t\tip6 daddr { fd00:200::1, fd00:200:1::1 } tcp dport 22 notrack\n\t}\n\tchain sent {\n\t\ttype filter hook output priority 20; policy accept;\n\t\tip6 saddr fd00:200:1::1 tcp sport 22 tcp flags & (syn | ack) != syn | ack drop\n\t}\n}\n",
    ],
    fromHost: [
      { src: "10.200.1.1", dst: "10.200.1.1", port: 22 },
      { src: "10.200.0.1", dst: "10.200.0.1", port: 22 },
      { src: "172.24.0.1", dst: "172.24.0.2", port: 80 },
      { src: "10.200.0.1", dst: "10.200.0.1", port: 8080 },
      { src: "fd00:200:1::1", dst: "fd00:200:1::1", port: 22 },
      { src: "fd00:200::1", dst: "fd00:200::1", port: 22 },
    ],
    hostOpen: [false, true, true, true, false, true],
    traced: 4,
  },
  {
    // A DNAT to the address and port the packet already has translates nothing: the connection has no DNAT status (the
    // evaluator said it had, and closed what this input chain lets through); Docker's DNAT at -100 does not run after it.
    // And the host's connection from 127.0.0.1 to its published port, DNATed out to web (userland-proxy off): its reply comes
    // back by the bridge, addressed to the bridge's address until nat maps it back to 127.0.0.1; a drop of it in input closes
    // the connection (without that drop it opens). The nftables walk took it for open, as the iptables one did before it
    // walked that reply.
    name: "a DNAT of the host's address to itself: no ct status dnat; the host's connection from 127.0.0.1 DNATed to a container, its reply dropped",
    policy: `${WEB_APP}host { allow lan tcp 22; }\n`,
    tables: (dockwall) => [
      dockwall,
      "table inet selfnat {\n\tchain pre {\n\t\ttype nat hook prerouting priority -150; policy accept;\n\t\tip daddr 10.200.1.1 tcp dport 22 dnat ip to 10.200.1.1\n\t\tip6 daddr fd00:200:1::1 tcp dport 22 dnat ip6 to [fd00:200:1::1]:22\n\t\tip daddr 10.200.1.1 tcp dport 8080 dnat ip to 10.200.1.1\n\t}\n\tchain in {\n\t\ttype filter hook input priority 10; policy accept;\n\t\tct status dnat tcp dport 22 drop\n\t}\n}\n",
      "table inet late {\n\tchain in {\n\t\ttype filter hook input priority 10; policy accept;\n\t\tiifname \"br-app\" ip daddr 127.0.0.1 tcp sport 80 drop\n\t}\n}\n",
    ],
    fromHost: [
      { src: "10.200.1.1", dst: "10.200.1.1", port: 22 },
      { src: "127.0.0.1", dst: "127.0.0.1", port: 8080 },
      { src: "10.200.0.1", dst: "10.200.0.1", port: 8080 },
    ],
    hostOpen: [true, false, true],
    traced: 4,
  },
];

/** Neighbours' packets traced per world (and every one of the host's own). */
const TRACED = 10;
/** The tracer's table: its rules (one per traced packet) set nftrace before any other chain runs. */
const TRACER = "table inet dwtrace {\n\tchain pre {\n\t\ttype filter hook prerouting priority -500; policy accept;\n\t}\n\tchain out {\n\t\ttype filter hook output priority -500; policy accept;\n\t}\n}\n";
/** A connection's first packet only. */
const SYN = ["tcp", "flags", "&", "(syn|ack)", "==", "syn"];

/**
 * Which neighbours' TCP packets to trace, in turn IPv4 and IPv6: first one of each verdict, path
 * and DNAT or not, then one decided by a rule (or policy) that no packet before it was decided by.
 */
function traceSample(probes: LabProbe[], ours: NftVerdict[], count: number): number[] {
  const kind = (i: number) => `${probes[i]!.family} ${ours[i]!.verdict} ${ours[i]!.path}${ours[i]!.dnat ? " dnat" : ""}`;
  const decided = (i: number) => {
    const d = ours[i]!.decided;
    return `${kind(i)} ${d?.family} ${d?.table} ${d?.chain} ${d?.index}`;
  };
  const kinds = new Set<string>();
  const decisions = new Set<string>();
  const out: number[] = [];
  const tcp = probes.map((_, i) => i).filter((i) => probes[i]!.proto === "tcp" && "iface" in probes[i]!.from);
  for (let n = 0; out.length < count && n < 2 * count; n++) {
    const left = (family: number) => tcp.filter((i) => probes[i]!.family === family && !out.includes(i));
    const [mine, other] = n % 2 ? [left(6), left(4)] : [left(4), left(6)];
    const next = [(i: number) => !kinds.has(kind(i)), (i: number) => !decisions.has(decided(i)), () => true].reduce<number | undefined>((got, want) => got ?? mine.find(want) ?? other.find(want), undefined);
    if (next === undefined) continue;
    kinds.add(kind(next));
    decisions.add(decided(next));
    out.push(next);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A probe from the host itself: socat from its namespace; open when the listener's name comes back. */
function fromHostProbe(lab: PolicyLab, dst: string, port: number, timeout = 1): boolean {
  const to = dst.includes(":") ? `[${dst}]` : dst;
  return /\w/.test(lab.host.run(["socat", "-T1", "-", `TCP:${to}:${port},connect-timeout=${timeout}`], "").stdout);
}

function hostPacket(plan: PolicyLabPlan, src: string, dst: string, port: number): Packet {
  const family = dst.includes(":") ? 6 : 4;
  return { family, in: "lo", src, fromHost: true, dst, proto: "tcp", sport: 40000, dport: port, state: "NEW", ...hostView(plan) };
}

/** Whether anything listens where the host's own connection ends up. */
function hostListening(plan: PolicyLabPlan, pk: Packet, path: string, to: { addr: string; port?: number }): boolean {
  const pr: LabProbe = { from: { iface: plan.ifaces[0]!.name }, family: pk.family, src: "", dst: pk.dst, proto: "tcp", port: pk.dport };
  return listening(plan, pr, path === "output" ? "forward" : "input", to);
}

/** A step as the kernel's trace says it: the rule's verdict (a NAT statement is an accept, a reject a drop), or the policy. */
function stepLine(rs: NftRuleset, s: NftStep): string {
  const at = `${s.family} ${s.table} ${s.chain}`;
  if (s.index === -1) return `${at} policy ${rs.tables.find((t) => t.family === s.family && t.name === s.table)!.chains.get(s.chain)!.base!.policy}`;
  const word = s.action === "dnat" || s.action === "snat" ? "accept" : s.action === "reject" ? "drop" : s.action;
  return `${at} handle ${s.handle} ${word}`;
}

/**
 * The kernel's trace of one packet, from what the monitor printed while it was sent: the lines of
 * the traces that met this packet's tracer rules (`handles`: "CHAIN HANDLE"), rule lines with a
 * verdict other than continue and policy lines, in order, without the tracer's own table; up to
 * the tracer's rule meeting a second packet (a retransmission). A packet the host sends to itself
 * is traced twice (out, then in by lo): both parts, in order.
 */
function parseTrace(out: string, handles: string[]): string[] {
  // (A rule added after the monitor started, the tracer's, it prints as "unknown rule handle N".)
  const re = /^trace id (\S+) (ip|ip6|inet) (\S+) (\S+) (?:(?:rule .* # handle|unknown rule handle) (\d+) \(verdict ([^)]*)\)|policy (\w+))/;
  const ours = new Set<string>();
  for (const l of out.split("\n")) {
    const m = re.exec(l);
    if (m && m[3] === "dwtrace" && m[5] && handles.includes(`${m[4]} ${m[5]}`)) ours.add(m[1]!);
  }
  const lines: string[] = [];
  const tracerSeen = new Set<string>();
  for (const l of out.split("\n")) {
    const m = re.exec(l);
    if (!m || !ours.has(m[1]!)) continue;
    const [, , family, table, chain, handle, verdict, policy] = m;
    if (table === "dwtrace") {
      if (handle) {
        if (tracerSeen.has(chain!)) break;
        tracerSeen.add(chain!);
      }
      continue;
    }
    if (handle && verdict !== "continue") lines.push(`${family} ${table} ${chain} handle ${handle} ${verdict!.split(" ")[0]}`);
    else if (policy) lines.push(`${family} ${table} ${chain} policy ${policy}`);
  }
  return lines;
}

/**
 * One `nft monitor trace` for all of a world's traces (each started anew cost most of a second):
 * a packet's trace is told apart from the others' by the handles of the tracer rules added for it.
 */
async function traceSession(lab: PolicyLab): Promise<{ trace: (rule: string[], send: () => Promise<unknown>) => Promise<string[]>; close: () => void }> {
  const monitor = spawn("nsenter", [`--net=${lab.host.path}`, "stdbuf", "-oL", "nft", "-a", "monitor", "trace"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  monitor.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  await sleep(300);
  return {
    trace: async (rule, send) => {
      const handles: string[] = [];
      try {
        for (const chain of ["pre", "out"]) {
          const added = lab.host.run(["nft", "--echo", "--handle", "add", "rule", "inet", "dwtrace", chain, ...rule, "meta", "nftrace", "set", "1"]);
          expect(added.stderr).toBe("");
          const handle = /# handle (\d+)/.exec(added.stdout)?.[1];
          expect(handle, added.stdout).toBeDefined();
          handles.push(`${chain} ${handle}`);
        }
        const from = out.length;
        await send();
        // Until the monitor has printed nothing more for 150 ms (a second at most).
        for (let i = 0, seen = -1; i < 7 && seen !== out.length; i++) {
          seen = out.length;
          await sleep(150);
        }
        return parseTrace(out.slice(from), handles);
      } finally {
        for (const chain of ["pre", "out"]) lab.host.run(["nft", "flush", "chain", "inet", "dwtrace", chain]);
      }
    },
    close: () => void monitor.kill(),
  };
}

describeKernel("the nftables evaluator against the kernel: verdicts and traces", () => {
  let probed = 0;
  let v6 = 0;
  let traced = 0;
  const verdicts = new Set<string>();
  for (const world of WORLDS) {
    it(world.name, async () => {
      const nft = compile(world.policy, { format: "nft" });
      expect(nft.ok, nft.diagnostics.map((d) => d.message).join("\n")).toBe(true);
      const p = compile(world.policy, { noRender: true, format: "nft" }).policy!;
      const plan = planPolicyLab(p);
      const lab = await startPolicyLab(plan);
      let tracer: Awaited<ReturnType<typeof traceSession>> | undefined;
      try {
        for (const text of world.tables(nft.output!)) expect(lab.host.run(["nft", "-f", "-"], text).stderr).toBe("");
        const rs = parseNftJson(lab.host.run(["nft", "-j", "list", "ruleset"]).stdout);

        // Every packet of the world, evaluated and sent.
        const probes = plan.probes;
        const packets = probes.map((pr) => packetOf(plan, pr));
        // (With the connection's reply walked back, as the matrix walks it.)
        const ours = packets.map((pk) => evaluateNft(rs, pk, { replies: true }));
        expect(ours.filter((v) => v.verdict === "unknown").map((v) => v.why)).toEqual([]);
        const predicted = ours.map((v, i) => v.verdict === "ACCEPT" && listening(plan, probes[i]!, v.path, v.dnat ?? { addr: probes[i]!.dst }));
        await lab.probe(probes, 800); // a new IPv6 path's first packets can be lost while neighbours are found
        const kernel = (await lab.probe(probes, 800)).map((k) => k.open);
        for (let round = 0; round < 2; round++) {
          const again = kernel.map((k, i) => (k !== predicted[i] ? i : -1)).filter((i) => i >= 0);
          if (again.length === 0) break;
          await sleep(300);
          (await lab.probe(again.map((i) => probes[i]!), 800)).forEach((k, j) => (kernel[again[j]!] = k.open));
        }
        const row = (i: number) => `${probes[i]!.proto} ${probes[i]!.src} -> ${probes[i]!.dst}:${probes[i]!.port ?? ""} in ${packets[i]!.in}: evaluator ${ours[i]!.verdict} (${ours[i]!.path}${ours[i]!.dnat ? ` via DNAT to ${ours[i]!.dnat!.addr}` : ""}) so ${predicted[i] ? "open" : "closed"}, kernel ${kernel[i] ? "open" : "closed"}`;
        const wrong = probes.map((_, i) => i).filter((i) => kernel[i] !== predicted[i]).map(row);
        expect(wrong, wrong.join("\n")).toEqual([]);
        // Not a table of one answer: open and closed, both families.
        expect(predicted.some(Boolean) && predicted.some((o) => !o)).toBe(true);
        expect(probes.some((pr, i) => pr.family === 6 && predicted[i]) && probes.some((pr, i) => pr.family === 6 && !predicted[i])).toBe(true);
        probed += probes.length;
        v6 += probes.filter((pr) => pr.family === 6).length;
        ours.forEach((v) => verdicts.add(v.verdict));

        // The host's own connections.
        const hostPackets = world.fromHost.map((h) => hostPacket(plan, h.src, h.dst, h.port));
        const hostOurs = hostPackets.map((pk) => evaluateNft(rs, pk, { replies: true }));
        expect(hostOurs.filter((v) => v.verdict === "unknown").map((v) => v.why)).toEqual([]);
        const hostPredicted = hostPackets.map((pk, i) => hostOurs[i]!.verdict === "ACCEPT" && hostListening(plan, pk, hostOurs[i]!.path, hostOurs[i]!.dnat ?? { addr: pk.dst }));
        if (world.hostOpen) expect(hostPredicted).toEqual(world.hostOpen);
        const hostWrong = hostPackets
          .map((pk, i) => {
            const v = hostOurs[i]!;
            const open = hostPredicted[i]!;
            // (Probed again where it differs: a loaded machine loses a first packet now and then, as the neighbours' probes allow for.)
            let k = fromHostProbe(lab, pk.dst, pk.dport!);
            if (k !== open) k = fromHostProbe(lab, pk.dst, pk.dport!);
            return k === open ? "" : `from the host to ${pk.dst}:${pk.dport}: evaluator ${v.verdict}${v.why ? ` (${v.why})` : ""}, kernel ${k ? "open" : "closed"}`;
          })
          .filter(Boolean);
        expect(hostWrong, hostWrong.join("\n")).toEqual([]);
        probed += hostPackets.length;

        // The kernel's own trace, rule for rule: neighbours' TCP, each packet decided somewhere else
        // than the ones before it (both families in turn), and every one of the host's own.
        expect(lab.host.run(["nft", "-f", "-"], TRACER).stderr).toBe("");
        tracer = await traceSession(lab);
        const sample = traceSample(probes, ours, world.traced ?? TRACED);
        const differ: string[] = [];
        const compare = (what: string, got: string[], want: string[]) => {
          if (JSON.stringify(got) !== JSON.stringify(want)) differ.push(`${what}\n  kernel:    ${got.join("\n             ")}\n  evaluator: ${want.join("\n             ")}`);
        };
        for (const i of sample) {
          const pr = probes[i]!;
          const ip = pr.family === 6 ? "ip6" : "ip";
          const got = await tracer.trace([ip, "saddr", pr.src, ip, "daddr", pr.dst, "tcp", "dport", String(pr.port), ...SYN], () => lab.probe([pr], 300));
          compare(row(i), got, evaluateNft(rs, packets[i]!, { trace: true }).steps!.map((s) => stepLine(rs, s)));
        }
        // (Sent for a third of a second: a connection that does not open retransmits its SYN after one, which a loaded
        // machine's trace caught as a second packet; the first SYN is traced as it is sent.)
        for (const pk of hostPackets) {
          const ip = pk.family === 6 ? "ip6" : "ip";
          const got = await tracer.trace([ip, "daddr", pk.dst, "tcp", "dport", String(pk.dport), ...SYN], async () => fromHostProbe(lab, pk.dst, pk.dport!, 0.3));
          compare(`from the host to ${pk.dst}:${pk.dport}`, got, evaluateNft(rs, pk, { trace: true }).steps!.map((s) => stepLine(rs, s)));
        }
        expect(differ, differ.join("\n\n")).toEqual([]);
        expect(sample.length).toBe(world.traced ?? TRACED);
        traced += sample.length + hostPackets.length;
        console.log(`${world.name}: ${probes.length + hostPackets.length} packets probed (${probes.filter((pr) => pr.family === 6).length} IPv6, ${predicted.filter(Boolean).length} open), ${sample.length + hostPackets.length} traced, all as the kernel; traced:\n  ${sample.map((i) => `${probes[i]!.src} -> ${probes[i]!.dst} port ${probes[i]!.port}: ${ours[i]!.verdict} by ${ours[i]!.decided?.table} ${ours[i]!.decided?.chain} #${ours[i]!.decided?.index}`).join("\n  ")}`);
      } finally {
        tracer?.close();
        await lab.stop();
      }
    }, 60_000);
  }
  it("probed and traced: enough packets, every verdict", () => {
    expect(probed).toBeGreaterThan(100);
    expect(v6).toBeGreaterThan(40);
    expect(traced).toBeGreaterThanOrEqual(WORLDS.reduce((n, w) => n + (w.traced ?? TRACED), 0) + 8);
    expect([...verdicts].sort()).toEqual(["ACCEPT", "DROP", "REJECT"]);
  });
});
