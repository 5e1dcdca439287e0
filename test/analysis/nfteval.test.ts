// The nftables evaluator (src/analysis/nfteval.ts) on rulesets as `nft -j list ruleset` prints
// them: a real listing (Docker 29's captured tables, a host's inet filter, dockwall's table, as
// nft 1.0.6 listed them once loaded: fixtures/nft/docker29-host-dockwall.json, and an
// iptables-nft table: iptables-nft.json), and small rulesets built here, one semantic each.
// test/analysis/nfteval-kernel.test.ts holds the same answers against the kernel's.
import { readFileSync } from "node:fs";
import { describe, expect, it, test } from "vitest";
import type { Packet } from "../../src/analysis/evaluate.js";
import { evaluateNft, nftMatrixWalk, nftSourceRanges, parseNftJson, type Json, type NftRuleset, type NftVerdict } from "../../src/analysis/nfteval.js";

const fixture = (name: string) => readFileSync(new URL(`fixtures/nft/${name}`, import.meta.url), "utf8");

// ----------------------------------------------------------- a small builder ----
const match = (left: Json, right: Json, op = "==") => ({ match: { op, left, right } });
const pl = (protocol: string, field: string) => ({ payload: { protocol, field } });
const meta = (key: string) => ({ meta: { key } });
const ct = (key: string, dir?: string): Json => ({ ct: dir ? { key, dir } : { key } });
const accept = { accept: null };
const drop = { drop: null };
const ret = { return: null };
const jump = (target: string) => ({ jump: { target } });
const goto = (target: string) => ({ goto: { target } });
const counter = { counter: { packets: 0, bytes: 0 } };

interface ChainSpec {
  name: string;
  hook?: string;
  prio?: number;
  type?: string;
  policy?: "accept" | "drop";
  rules?: Json[][];
}
/** One table's objects as nft -j lists them: the table, its sets, its chains, then its rules. */
function table(family: string, name: string, handle: number, chains: ChainSpec[], sets: Record<string, Json>[] = []): Json[] {
  let h = 100;
  return [
    { table: { family, name, handle } },
    ...sets.map((s) => ({ [s.map ? "map" : "set"]: { family, table: name, ...s } })),
    ...chains.map((c, i) => ({ chain: { family, table: name, name: c.name, handle: i + 1, ...(c.hook ? { type: c.type ?? "filter", hook: c.hook, prio: c.prio ?? 0, policy: c.policy ?? "accept" } : {}) } })),
    ...chains.flatMap((c) => (c.rules ?? []).map((expr) => ({ rule: { family, table: name, chain: c.name, handle: h++, expr } }))),
  ];
}
const ruleset = (...tables: Json[][]): NftRuleset => parseNftJson(JSON.stringify({ nftables: [{ metainfo: { version: "1.0.6" } }, ...tables.flat()] }));

const ssh: Packet = { family: 4, in: "eth1", src: "192.168.1.5", dst: "10.0.0.1", proto: "tcp", sport: 40000, dport: 22, state: "NEW", local: ["10.0.0.1", "fd00::1", "172.17.0.1"], routes: [{ dst: "172.17.0.0/16", dev: "docker0" }, { dst: "10.9.0.0/16", dev: "eth0" }] };
const ssh6: Packet = { ...ssh, family: 6, src: "fd00:1::5", dst: "fd00::1" };
const input = (rules: Json[][], policy: "accept" | "drop" = "accept", prio = 0): ChainSpec => ({ name: "in", hook: "input", prio, policy, rules });
const decidedBy = (v: NftVerdict) => (v.decided ? `${v.decided.family} ${v.decided.table} ${v.decided.chain} #${v.decided.index}` : undefined);
const trail = (v: NftVerdict) => v.steps!.map((s) => `${s.table} ${s.chain} #${s.index} ${s.action}`);

describe("parseNftJson: a listing of nft 1.0.6", () => {
  const rs = parseNftJson(fixture("docker29-host-dockwall.json"));
  it("tables with their handles, base chains with hook, type, priority and policy, sets and maps, rules in order", () => {
    expect(rs.tables.map((t) => `${t.family} ${t.name} ${t.handle}`)).toEqual(["inet filter 1", "ip docker-bridges 2", "ip6 docker-bridges 3", "inet dockwall 5"]);
    const docker = rs.tables[1]!;
    expect(docker.chains.get("nat-PREROUTING")!.base).toEqual({ type: "nat", hook: "prerouting", prio: -100, policy: "accept", devices: undefined });
    expect(docker.chains.get("nat-prerouting-and-output")!.base).toBeUndefined();
    expect(docker.sets.get("filter-forward-in-jumps")).toMatchObject({ type: ["ifname"], map: "verdict" });
    expect(rs.tables[0]!.sets.get("services")).toMatchObject({ type: ["ipv4_addr", "inet_service"], elem: [{ concat: ["10.200.0.1", 2222] }, { concat: ["10.200.1.1", 2222] }] });
    const dnat = docker.chains.get("nat-prerouting-and-output")!.rules[0]!;
    expect(dnat).toMatchObject({ family: "ip", table: "docker-bridges", chain: "nat-prerouting-and-output", index: 0, comment: "DNAT" });
    expect(dnat.text).toBe('tcp dport 8080 counter dnat to 192.0.2.2:80 comment "DNAT"');
    expect(rs.tables[3]!.chains.get("docker-user-ip")!.rules.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(rs.tables[0]!.chains.get("input")!.rules[4]!.text).toBe("ip saddr 192.168.1.253 tcp dport 22 reject with tcp reset");
  });
});

describe("evaluateNft on Docker 29's tables, a host's inet filter and dockwall's table (the kernel test's first world)", () => {
  const rs = parseNftJson(fixture("docker29-host-dockwall.json"));
  const host = { local: ["10.200.0.1", "10.200.1.1", "172.17.0.1", "192.0.2.1", "fd00:200:0::1", "fd00:200:1::1", "2001:db8:1::1"], routes: [{ dst: "192.0.2.0/24", dev: "bridge1" }, { dst: "2001:db8:1::/64", dev: "bridge1" }, { dst: "10.200.0.0/24", dev: "eth0" }, { dst: "fd00:200:0::/64", dev: "eth0" }, { dst: "10.200.1.0/24", dev: "eth1" }, { dst: "fd00:200:1::/64", dev: "eth1" }] };
  const pk = (src: string, dst: string, dport: number, iface: string): Packet => ({ family: dst.includes(":") ? 6 : 4, in: iface, src, dst, proto: "tcp", sport: 40000, dport, state: "NEW", ...host });
  it.each([
    ["the lan to the published port: DNAT'd to c1, forwarded", pk("192.168.1.2", "10.200.1.1", 8080, "eth1"), "ACCEPT", "forward", "inet filter forward #-1"],
    ["the wan to the published port: dockwall's drop", pk("10.200.0.2", "10.200.0.1", 8080, "eth0"), "DROP", "forward", "inet dockwall docker-user-ip #6"],
    ["the wan straight to c1: Docker's raw drop", pk("10.200.0.2", "192.0.2.2", 80, "eth0"), "DROP", "forward", "ip docker-bridges raw-PREROUTING #0"],
    ["ssh from an admin: dockwall's accept, then the host's set", pk("192.168.1.2", "10.200.1.1", 22, "eth1"), "ACCEPT", "input", "inet filter input #5"],
    ["ssh from the lan's .253: dockwall accepts, the host rejects", pk("192.168.1.253", "10.200.1.1", 22, "eth1"), "REJECT", "input", "inet filter input #4"],
    ["2222 from the wan: the concatenation", pk("10.200.0.2", "10.200.0.1", 2222, "eth0"), "ACCEPT", "input", "inet filter input #7"],
    ["2222 from the wan over IPv6: the verdict map's jump, a return, the policy", pk("fd00:200:0::2", "fd00:200:0::1", 2222, "eth0"), "DROP", "input", "inet filter input #-1"],
    ["ssh over IPv6 from outside the admins' set", pk("fd00:1::ffff:ffff:ffff:fffd", "fd00:200:1::1", 22, "eth1"), "DROP", "input", "inet filter input #-1"],
    ["the lan to the published port over IPv6", pk("fd00:1::2", "fd00:200:1::1", 8080, "eth1"), "ACCEPT", "forward", "inet filter forward #-1"],
    ["a new connection from the wan to the lan: the host's forward drop", pk("10.200.0.2", "10.200.1.2", 7000, "eth0"), "DROP", "forward", "inet filter forward #0"],
    ["c1 out to the wan", pk("192.0.2.2", "10.200.0.2", 7000, "bridge1"), "ACCEPT", "forward", "inet filter forward #-1"],
  ] as const)("%s", (_name, p, verdict, path, decided) => {
    const v = evaluateNft(rs, p);
    expect([v.verdict, v.path, decidedBy(v)]).toEqual([verdict, path, decided]);
  });
  it("the DNAT, the MASQUERADE of c1's way out, and every step in the kernel's order (as the kernel test traced it)", () => {
    const v = evaluateNft(rs, pk("192.168.1.2", "10.200.1.1", 8080, "eth1"), { trace: true });
    expect(v.dnat).toEqual({ addr: "192.0.2.2", port: 80 });
    expect(trail(v)).toEqual([
      "docker-bridges raw-PREROUTING #-1 policy",
      "docker-bridges nat-PREROUTING #0 jump",
      "docker-bridges nat-prerouting-and-output #0 dnat",
      "dockwall forward #0 jump",
      "dockwall docker-user-ip #4 return",
      "dockwall forward #-1 policy",
      "docker-bridges filter-FORWARD #0 jump",
      "docker-bridges filter-forward-in__bridge1 #2 accept",
      "filter forward #-1 policy",
      "docker-bridges nat-POSTROUTING #1 jump",
      "docker-bridges nat-POSTROUTING #-1 policy",
    ]);
    expect(v.steps![2]!.text).toBe('tcp dport 8080 counter dnat to 192.0.2.2:80 comment "DNAT"');
    expect(evaluateNft(rs, pk("192.0.2.2", "10.200.0.2", 7000, "bridge1")).snat).toEqual({ masquerade: true });
  });
  it("the host's own connection to its published port: DNAT'd in output, routed again, masqueraded", () => {
    const v = evaluateNft(rs, { ...pk("10.200.1.1", "10.200.1.1", 8080, "lo"), fromHost: true }, { trace: true });
    expect([v.verdict, v.path, v.dnat, v.snat]).toEqual(["ACCEPT", "output", { addr: "192.0.2.2", port: 80 }, { masquerade: true }]);
    expect(trail(v)).toEqual(["docker-bridges nat-OUTPUT #0 jump", "docker-bridges nat-prerouting-and-output #0 dnat", "filter output #-1 policy", "docker-bridges nat-POSTROUTING #1 jump", "docker-bridges nat-postrouting-in__bridge1 #0 snat"]);
  });
  it("the host to its own port: output, postrouting, then in by lo (prerouting without nat, input)", () => {
    const v = evaluateNft(rs, { ...pk("10.200.1.1", "10.200.1.1", 22, "lo"), fromHost: true }, { trace: true });
    expect([v.verdict, v.path, decidedBy(v)]).toEqual(["ACCEPT", "input", "inet filter input #0"]);
    expect(trail(v)).toEqual([
      "docker-bridges nat-OUTPUT #0 jump",
      "docker-bridges nat-OUTPUT #-1 policy",
      "filter output #-1 policy",
      "docker-bridges nat-POSTROUTING #-1 policy",
      "docker-bridges raw-PREROUTING #-1 policy",
      "dockwall input #0 jump",
      "dockwall input-ip #0 accept",
      "filter input #0 accept",
    ]);
  });
  it("from the host with its source address not known: what reads it is 'unknown' (Docker's IPv6 DNAT skips fe80::/10 sources)", () => {
    const v = evaluateNft(rs, { ...pk("", "fd00:200:1::1", 8080, "lo"), fromHost: true, srcUnknown: true });
    expect(v.verdict).toBe("unknown");
    expect(v.why).toMatch(/^ip6 saddr: .*not known, in ip6 docker-bridges nat-prerouting-and-output, rule handle \d+$/);
    // …while what never reads it has an answer.
    expect(evaluateNft(rs, { ...pk("", "10.200.1.1", 8080, "lo"), fromHost: true, srcUnknown: true })).toMatchObject({ verdict: "ACCEPT", dnat: { addr: "192.0.2.2" } });
  });
});

describe("evaluateNft: one semantic at a time", () => {
  it("replies (a review: not walked, and 'tcp sport 22 drop' in an output chain went unseen): a drop of the reply closes the connection; a reply's ct original is the packet that opened it (a second review: its own addresses were read)", () => {
    const output = (rules: Json[][]): ChainSpec => ({ name: "out", hook: "output", prio: 0, policy: "accept", rules });
    const replies = (rules: Json[][]) => ruleset(table("inet", "t", 1, [input([[accept]]), output(rules)]));
    // ssh's replies dropped: the connection does not open (with replies walked), the packet itself gets in.
    const dropped = replies([[match(pl("tcp", "sport"), 22), drop]]);
    expect(evaluateNft(dropped, ssh).verdict).toBe("ACCEPT");
    expect(evaluateNft(dropped, ssh, { replies: true })).toMatchObject({ verdict: "DROP", reply: true, decided: { chain: "out" } });
    // "The host opens no connection to 192.168.1.5": replies to that host's own connections pass (their original daddr is the host's).
    const noneTo = replies([[match(ct("ip daddr", "original"), "192.168.1.5"), drop]]);
    expect(evaluateNft(noneTo, ssh, { replies: true }).verdict).toBe("ACCEPT");
    // Replies to connections sent to the host's 10.0.0.1 are dropped: the original daddr is read.
    expect(evaluateNft(replies([[match(ct("ip daddr", "original"), "10.0.0.1"), drop]]), ssh, { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    // The original destination port, not the reply's.
    expect(evaluateNft(replies([[match(ct("proto-dst", "original"), 22), drop]]), ssh, { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    expect(evaluateNft(replies([[match(ct("proto-dst", "original"), 40000), drop]]), ssh, { replies: true }).verdict).toBe("ACCEPT");
  });
  it("accept ends only its own base chain: a later base chain in another table still drops", () => {
    const rs = ruleset(table("inet", "a", 1, [input([[accept]], "accept", -10)]), table("ip", "b", 2, [input([[match(pl("tcp", "dport"), 22), drop]])]));
    const v = evaluateNft(rs, ssh, { trace: true });
    expect([v.verdict, decidedBy(v)]).toEqual(["DROP", "ip b in #0"]);
    expect(trail(v)).toEqual(["a in #0 accept", "b in #0 drop"]);
  });
  it("drop is final: no base chain after it runs; an explicit accept before a later policy drop is dropped", () => {
    const rs = ruleset(table("inet", "a", 1, [input([[drop]], "accept", -10)]), table("ip", "b", 2, [input([[accept]])]));
    expect(trail(evaluateNft(rs, ssh, { trace: true }))).toEqual(["a in #0 drop"]);
    const later = ruleset(table("inet", "a", 1, [input([[accept]], "accept", -10)]), table("ip", "b", 2, [input([], "drop")]));
    expect(decidedBy(evaluateNft(later, ssh))).toBe("ip b in #-1");
  });
  it("ACCEPT names the last accept on the way: the policy of the last base chain, or its rule", () => {
    const rs = ruleset(table("inet", "a", 1, [input([[accept]], "accept", 10)]), table("ip", "b", 2, [input([])]));
    expect(decidedBy(evaluateNft(rs, ssh))).toBe("inet a in #0");
  });
  it("priority orders base chains across tables, whatever the listing's order; at equal priority the newest table first", () => {
    const chain = (prio: number) => input([[match(pl("tcp", "dport"), 22), counter, accept]], "accept", prio);
    const rs = ruleset(table("inet", "late", 1, [chain(10)]), table("inet", "early", 2, [chain(-10)]), table("ip", "old", 3, [chain(0)]), table("ip", "new", 4, [chain(0)]));
    expect(trail(evaluateNft(rs, ssh, { trace: true }))).toEqual(["early in #0 accept", "new in #0 accept", "old in #0 accept", "late in #0 accept"]);
  });
  it("a family's tables only: ip for IPv4, ip6 for IPv6, inet for both", () => {
    const rs = ruleset(table("ip", "four", 1, [input([[drop]])]), table("ip6", "six", 2, [input([[match(pl("tcp", "dport"), 22), { reject: { type: "tcp reset" } }]])]));
    expect(evaluateNft(rs, ssh)).toMatchObject({ verdict: "DROP", decided: { family: "ip" } });
    expect(evaluateNft(rs, ssh6)).toMatchObject({ verdict: "REJECT", decided: { family: "ip6", action: "reject" } });
  });
  it("a regular chain's end returns; a return in a base chain ends it (its policy decides); goto does not come back", () => {
    const rs = (first: Json) =>
      ruleset(
        table("inet", "t", 1, [
          input([[first], [match(pl("tcp", "dport"), 22), accept]], "drop"),
          { name: "sub", rules: [[match(pl("tcp", "dport"), 80), accept]] },
          { name: "ret", rules: [[ret]] },
        ]),
      );
    expect(decidedBy(evaluateNft(rs(jump("sub")), ssh))).toBe("inet t in #1");
    expect(decidedBy(evaluateNft(rs(goto("sub")), ssh))).toBe("inet t in #-1");
    expect(trail(evaluateNft(rs(jump("ret")), ssh, { trace: true }))).toEqual(["t in #0 jump", "t ret #0 return", "t in #1 accept"]);
    expect(trail(evaluateNft(rs(ret), ssh, { trace: true }))).toEqual(["t in #0 return", "t in #-1 policy"]);
    expect(evaluateNft(rs(jump("nowhere")), ssh)).toMatchObject({ verdict: "unknown", why: expect.stringMatching(/^the chain inet t nowhere \(not in the listing\)/) });
  });
  it("verdict maps: a named ifname map of jumps (as Docker 29 writes them), an anonymous one with goto and accept; no element: the rule does not match", () => {
    const rs = ruleset(
      table(
        "ip",
        "d",
        1,
        [
          { name: "fwd", hook: "forward", rules: [[{ vmap: { key: meta("oifname"), data: "@jumps" } }], [{ vmap: { key: pl("tcp", "dport"), data: { set: [[22, accept], [80, goto("web")]] } } }], [drop]] },
          { name: "in__docker0", rules: [[match(pl("tcp", "dport"), 8000), drop]] },
          { name: "web", rules: [[match(pl("ip", "saddr"), { prefix: { addr: "192.168.1.0", len: 24 } }), accept]] },
        ],
        [{ name: "jumps", type: "ifname", map: "verdict", elem: [["docker0", jump("in__docker0")]] }],
      ),
    );
    const fwd = { ...ssh, dst: "172.17.0.2" };
    expect(trail(evaluateNft(rs, { ...fwd, dport: 8000 }, { trace: true }))).toEqual(["d fwd #0 jump", "d in__docker0 #0 drop"]);
    expect(trail(evaluateNft(rs, fwd, { trace: true }))).toEqual(["d fwd #0 jump", "d fwd #1 accept"]);
    expect(trail(evaluateNft(rs, { ...fwd, dport: 80 }, { trace: true }))).toEqual(["d fwd #0 jump", "d fwd #1 goto", "d web #0 accept"]);
    expect(decidedBy(evaluateNft(rs, { ...fwd, dport: 80, src: "10.1.1.1" }))).toBe("ip d fwd #-1");
    expect(decidedBy(evaluateNft(rs, { ...fwd, dst: "10.9.0.2", dport: 8000 }))).toBe("ip d fwd #2");
  });
  it("sets: named with intervals (prefixes and ranges), a concatenation, an anonymous set of interface names with a wildcard", () => {
    const rs = ruleset(
      table(
        "inet",
        "f",
        1,
        [
          input(
            [
              [match(pl("ip", "saddr"), "@admins"), match(pl("tcp", "dport"), 22), accept],
              [match({ concat: [pl("ip", "saddr"), pl("tcp", "dport")] }, "@pairs"), accept],
              [match(meta("iifname"), { set: ["br-*", "eth0"] }), accept],
            ],
            "drop",
          ),
        ],
        [
          { name: "admins", type: "ipv4_addr", flags: ["interval"], elem: [{ prefix: { addr: "10.1.0.0", len: 16 } }, { range: ["192.168.1.1", "192.168.1.9"] }] },
          { name: "pairs", type: ["ipv4_addr", "inet_service"], elem: [{ concat: ["192.168.1.50", 2222] }, { elem: { val: { concat: ["192.168.1.51", 22] }, timeout: 60 } }] },
        ],
      ),
    );
    const at = (p: Partial<Packet>) => decidedBy(evaluateNft(rs, { ...ssh, ...p }));
    expect(at({ src: "192.168.1.5" })).toBe("inet f in #0");
    expect(at({ src: "10.1.200.3" })).toBe("inet f in #0");
    expect(at({ src: "192.168.1.10" })).toBe("inet f in #-1");
    expect(at({ src: "192.168.1.50", dport: 2222 })).toBe("inet f in #1");
    expect(at({ src: "192.168.1.51" })).toBe("inet f in #1");
    expect(at({ src: "192.168.1.50" })).toBe("inet f in #-1");
    expect(at({ src: "192.168.1.60", in: "br-9f3c" })).toBe("inet f in #2");
    expect(at({ src: "192.168.1.60", in: "br" })).toBe("inet f in #-1");
    // An IPv6 packet never matches `ip saddr @admins` (nor an escaped "\*" wildcard a name that merely starts alike).
    expect(at({ ...ssh6, in: "eth0" })).toBe("inet f in #2");
  });
  it("negation, and the protocol dependency nft adds: `tcp dport != 22` is false for UDP, `ip saddr != …` false for IPv6", () => {
    const rs = ruleset(
      table("inet", "n", 1, [
        input([
          [match(pl("tcp", "dport"), 22, "!="), drop],
          [match(pl("ip", "saddr"), { set: ["192.168.1.5", "192.168.1.6"] }, "!="), drop],
          [match(meta("iifname"), "eth1", "!="), drop],
        ]),
      ]),
    );
    expect(evaluateNft(rs, ssh).verdict).toBe("ACCEPT");
    expect(decidedBy(evaluateNft(rs, { ...ssh, dport: 80 }))).toBe("inet n in #0");
    expect(decidedBy(evaluateNft(rs, { ...ssh, proto: "udp", dport: 53, src: "192.168.1.7" }))).toBe("inet n in #1");
    expect(evaluateNft(rs, { ...ssh6, proto: "udp", dport: 53 }).verdict).toBe("ACCEPT");
    expect(decidedBy(evaluateNft(rs, { ...ssh6, in: "eth0" }))).toBe("inet n in #2");
  });
  it("protocols, ICMP types, th ports, fib daddr type local, ct state lists", () => {
    const rs = ruleset(
      table("inet", "p", 1, [
        input(
          [
            [match(pl("ip", "protocol"), "icmp"), match(pl("icmp", "type"), "echo-request"), accept],
            [match(pl("icmpv6", "type"), { set: ["echo-request", "nd-neighbor-solicit"] }), accept],
            [match(meta("l4proto"), { set: ["tcp", "udp"] }), match(pl("th", "dport"), { range: [5000, 5010] }), accept],
            [match(ct("state"), ["established", "related"], "in"), accept],
            [match(meta("nfproto"), "ipv6"), match(pl("tcp", "dport"), 22, "<"), accept],
          ],
          "drop",
        ),
      ]),
    );
    const at = (p: Partial<Packet>) => decidedBy(evaluateNft(rs, { ...ssh, ...p }));
    expect(at({ proto: "icmp", dport: undefined, icmpType: 8 })).toBe("inet p in #0");
    expect(at({ proto: "icmp", dport: undefined, icmpType: 0 })).toBe("inet p in #-1");
    expect(at({ ...ssh6, proto: "icmp", dport: undefined, icmpType: 128 })).toBe("inet p in #1");
    expect(at({ proto: "udp", dport: 5005 })).toBe("inet p in #2");
    expect(at({ state: "ESTABLISHED" })).toBe("inet p in #3");
    expect(at({ ...ssh6, dport: 21 })).toBe("inet p in #4");
    // fib daddr type local: one of the host's addresses (or loopback), after DNAT if any.
    const fib = ruleset(table("inet", "p", 1, [{ name: "pre", hook: "prerouting", rules: [[match({ fib: { result: "type", flags: ["daddr"] } }, "local", "!="), drop]] }]));
    expect([evaluateNft(fib, ssh).verdict, evaluateNft(fib, { ...ssh, in: "lo", dst: "127.0.0.9" }).verdict, evaluateNft(fib, { ...ssh, dst: "10.9.0.2" }).verdict]).toEqual(["ACCEPT", "ACCEPT", "DROP"]);
    // From outside to loopback, not DNATed: Linux drops it at the routing decision unless route_localnet is on, which is not read (a review).
    expect(evaluateNft(fib, { ...ssh, dst: "127.0.0.9" })).toMatchObject({ verdict: "unknown", why: expect.stringContaining("route_localnet") });
    // th on an ICMP packet reads the ICMP header: not a port (above, `meta l4proto { tcp, udp }` kept ICMP from it).
    const th = ruleset(table("inet", "p", 1, [input([[match(pl("th", "dport"), 7), drop]])]));
    expect(evaluateNft(th, { ...ssh, proto: "icmp", dport: undefined, icmpType: 3 })).toMatchObject({ verdict: "unknown", why: expect.stringMatching(/^th dport of an ICMP packet/) });
  });
  it("DNAT, then the routing decision with the new address: forward out by its route, seen there with the new port; ct status dnat and ct original", () => {
    const rs = ruleset(
      table("ip", "nat", 1, [{ name: "pre", hook: "prerouting", type: "nat", prio: -100, rules: [[match({ fib: { result: "type", flags: ["daddr"] } }, "local"), match(pl("tcp", "dport"), 8080), { dnat: { addr: "172.17.0.2", port: 80 } }], [match(pl("tcp", "dport"), 2222), { dnat: { addr: "10.0.0.1", port: 22 } }]] }]),
      table("inet", "f", 2, [
        { name: "fwd", hook: "forward", policy: "drop", rules: [[match(meta("oifname"), "docker0"), match(pl("ip", "daddr"), "172.17.0.2"), match(pl("tcp", "dport"), 80), match(ct("status"), "dnat", "in"), match(ct("proto-dst", "original"), 8080), match(ct("ip daddr", "original"), "10.0.0.1"), accept]] },
        input([[match(pl("tcp", "dport"), 22), match(ct("proto-dst", "original"), 2222), accept]], "drop"),
      ]),
    );
    const v = evaluateNft(rs, { ...ssh, dport: 8080 }, { trace: true });
    expect([v.verdict, v.path, v.dnat, decidedBy(v)]).toEqual(["ACCEPT", "forward", { addr: "172.17.0.2", port: 80 }, "inet f fwd #0"]);
    expect(trail(v)).toEqual(["nat pre #0 dnat", "f fwd #0 accept"]);
    // DNAT'd to the host itself: input.
    expect(evaluateNft(rs, { ...ssh, dport: 2222 })).toMatchObject({ verdict: "ACCEPT", path: "input", dnat: { addr: "10.0.0.1", port: 22 } });
    // No route for the new address: what reads the out interface cannot say.
    const lost = ruleset(table("ip", "nat", 1, [{ name: "pre", hook: "prerouting", type: "nat", prio: -100, rules: [[{ dnat: { addr: "198.51.100.7" } }]] }]), table("ip", "f", 2, [{ name: "fwd", hook: "forward", rules: [[match(meta("oifname"), "eth0"), drop]] }]));
    expect(evaluateNft(lost, ssh)).toMatchObject({ verdict: "unknown", why: expect.stringMatching(/^oifname: no route to 198\.51\.100\.7/) });
  });
  // A review (proven with packets on iptables): a notrack before conntrack on what goes to part of the lan takes the replies
  // to it out of conntrack: not translated back, the connection fails. Not where nothing was translated.
  it("a reply taken out of conntrack (notrack in a raw prerouting chain) is not translated back: a DNATed connection does not connect", () => {
    const nat = table("ip", "nat", 1, [{ name: "pre", hook: "prerouting", type: "nat", prio: -100, rules: [[match(pl("tcp", "dport"), 8080), { dnat: { addr: "172.17.0.2", port: 80 } }]] }]);
    const raw = table("ip", "raw", 3, [{ name: "pre", hook: "prerouting", prio: -300, rules: [[match(pl("ip", "daddr"), { prefix: { addr: "192.168.1.128", len: 25 } }), { notrack: null }]] }]);
    const rs = ruleset(nat, table("inet", "f", 2, [{ name: "fwd", hook: "forward", rules: [[accept]] }]), raw);
    const v = evaluateNft(rs, { ...ssh, src: "192.168.1.200", dport: 8080 }, { replies: true });
    expect([v.verdict, v.reply, v.untracked, decidedBy(v)]).toEqual(["DROP", true, true, "ip raw pre #0"]);
    expect(evaluateNft(rs, { ...ssh, src: "192.168.1.2", dport: 8080 }, { replies: true }).verdict).toBe("ACCEPT");
    // Straight to the container, nothing translated: the untracked reply is still the connection's.
    expect(evaluateNft(rs, { ...ssh, src: "192.168.1.200", dst: "172.17.0.2", dport: 80 }, { replies: true }).verdict).toBe("ACCEPT");
  });
  // A review: an admin's port forward in an older table, at Docker's priority, took the wan's packet for real (its chain added
  // later, or its table woken from dormant, registers anew and runs first), and the evaluator said Docker's DNAT by table age.
  it("nat chains at one priority that would each take the packet their own way: unknown, naming both; alike, or one taking it alone: as before", () => {
    const pre = (table: string, handle: number, to: string) => table_("ip", table, handle, [{ name: "pre", hook: "prerouting", type: "nat", prio: -100, rules: [[match(pl("tcp", "dport"), 8080), { dnat: { addr: to, port: 80 } }]] }]);
    const table_ = table;
    const fwd = table("inet", "f", 9, [{ name: "fwd", hook: "forward", rules: [] }]);
    const two = ruleset(pre("hostnat", 1, "172.20.0.9"), pre("docker", 2, "172.20.0.2"), fwd);
    expect(evaluateNft(two, { ...ssh, dport: 8080 })).toMatchObject({ verdict: "unknown", why: "the order of the nat chains ip docker pre and ip hostnat pre, both at priority -100 on prerouting: each would take this packet its own way" });
    // The same mapping in both: whichever runs first, the same.
    expect(evaluateNft(ruleset(pre("hostnat", 1, "172.20.0.2"), pre("docker", 2, "172.20.0.2"), fwd), { ...ssh, dport: 8080 })).toMatchObject({ verdict: "ACCEPT", dnat: { addr: "172.20.0.2", port: 80 } });
    // A port only one of them maps: that one.
    expect(evaluateNft(two, { ...ssh, dport: 22 })).toMatchObject({ verdict: "ACCEPT", path: "input" });
  });
  it("DNAT through maps: an anonymous one by port, a named one to `address . port`; no element: no DNAT", () => {
    const rs = ruleset(
      table(
        "ip",
        "nat",
        1,
        [
          {
            name: "pre",
            hook: "prerouting",
            type: "nat",
            prio: -100,
            rules: [
              [{ dnat: { addr: { map: { key: pl("tcp", "dport"), data: { set: [[9000, "172.17.0.9"]] } } } } }],
              [{ dnat: { family: "ip", addr: { map: { key: pl("tcp", "dport"), data: "@to" } } } }],
            ],
          },
        ],
        [{ name: "to", type: "inet_service", map: "ipv4_addr . inet_service", elem: [[8080, { concat: ["172.17.0.2", 80] }]] }],
      ),
    );
    expect(evaluateNft(rs, { ...ssh, dport: 9000 }).dnat).toEqual({ addr: "172.17.0.9" });
    expect(evaluateNft(rs, { ...ssh, dport: 8080 }, { trace: true })).toMatchObject({ path: "forward", dnat: { addr: "172.17.0.2", port: 80 }, steps: [{ index: 1, action: "dnat" }] });
    expect([evaluateNft(rs, ssh).path, evaluateNft(rs, ssh).dnat]).toEqual(["input", undefined]);
    const range = ruleset(table("ip", "nat", 1, [{ name: "pre", hook: "prerouting", type: "nat", prio: -100, rules: [[{ dnat: { addr: { range: ["172.17.0.2", "172.17.0.3"] } } }]] }]));
    expect(evaluateNft(range, ssh).why).toMatch(/^dnat to 172\.17\.0\.2-172\.17\.0\.3/);
  });
  it("reject with icmp is IPv4's, with icmpv6 IPv6's, with tcp reset TCP's (the dependency nft adds in an inet table)", () => {
    const rs = ruleset(table("inet", "r", 1, [input([[{ reject: { type: "icmp", expr: "port-unreachable" } }], [{ reject: { type: "icmpv6", expr: "admin-prohibited" } }], [{ reject: { type: "tcp reset" } }], [{ reject: { type: "icmpx", expr: "port-unreachable" } }]])]));
    expect(decidedBy(evaluateNft(rs, ssh))).toBe("inet r in #0");
    expect(decidedBy(evaluateNft(rs, ssh6))).toBe("inet r in #1");
    expect(evaluateNft(rs, { ...ssh, proto: "udp" })).toMatchObject({ verdict: "REJECT", decided: { index: 0 } });
    const noIcmp = ruleset(table("inet", "r", 1, [input([[{ reject: { type: "tcp reset" } }], [{ reject: null }]])]));
    expect(decidedBy(evaluateNft(noIcmp, { ...ssh6, proto: "udp" }))).toBe("inet r in #1");
  });
  it("interface names: a trailing * is a wildcard, an escaped \\* the character; iif/oif by name", () => {
    const rs = ruleset(table("inet", "i", 1, [input([[match(meta("iifname"), "br-\\*"), drop], [match(meta("iifname"), "veth*"), accept], [match(meta("iif"), "lo"), accept]], "drop")]));
    expect(decidedBy(evaluateNft(rs, { ...ssh, in: "br-*" }))).toBe("inet i in #0");
    expect(decidedBy(evaluateNft(rs, { ...ssh, in: "br-x" }))).toBe("inet i in #-1");
    expect(decidedBy(evaluateNft(rs, { ...ssh, in: "veth12" }))).toBe("inet i in #1");
    expect(decidedBy(evaluateNft(rs, { ...ssh, in: "lo" }))).toBe("inet i in #2");
  });
  it("nat chains run at the nat core's priority (-100), only for a connection's first packet, until one maps it; an inet `dnat ip to` skips IPv6", () => {
    const dnatTo = (addr: string) => [match(pl("tcp", "dport"), 22), { dnat: { family: "ip", addr } }];
    const rs = ruleset(
      table("inet", "n", 1, [
        { name: "early", hook: "prerouting", type: "nat", prio: -190, rules: [dnatTo("172.17.0.2")] },
        { name: "second", hook: "prerouting", type: "nat", prio: -150, rules: [dnatTo("172.17.0.3")] },
        // A filter chain at -170 runs before both: it still sees the address the packet came to.
        { name: "raw", hook: "prerouting", prio: -170, rules: [[match(pl("ip", "daddr"), "10.0.0.1"), counter, accept]] },
      ]),
    );
    const v = evaluateNft(rs, ssh, { trace: true });
    expect([v.verdict, v.dnat]).toEqual(["ACCEPT", { addr: "172.17.0.2" }]);
    expect(trail(v)).toEqual(["n raw #0 accept", "n early #0 dnat"]);
    // A later packet: no nat chain runs (no step), it gets the mapping its first packet got.
    const later = evaluateNft(rs, { ...ssh, state: "ESTABLISHED" }, { trace: true });
    expect([later.dnat, trail(later)]).toEqual([{ addr: "172.17.0.2" }, ["n raw #0 accept"]]);
    expect(evaluateNft(rs, ssh6)).toMatchObject({ verdict: "ACCEPT", path: "input" });
    expect(evaluateNft(rs, ssh6).dnat).toBeUndefined();
  });
  it("before conntrack (raw, -300) a packet has no entry: ct state is invalid, and ct status matches nothing, != included", () => {
    const raw = (rules: Json[][]) => ruleset(table("inet", "r", 1, [{ name: "pre", hook: "prerouting", prio: -300, rules }]));
    expect(evaluateNft(raw([[match(ct("state"), "new", "in"), drop]]), ssh).verdict).toBe("ACCEPT");
    expect(evaluateNft(raw([[match(ct("state"), "invalid", "in"), drop]]), ssh).verdict).toBe("DROP");
    expect(evaluateNft(raw([[match(ct("status"), "dnat", "in"), drop], [match(ct("status"), "dnat", "!="), drop]]), ssh).verdict).toBe("ACCEPT");
    // `notrack` there: untracked from then on.
    const nt = ruleset(table("inet", "r", 1, [{ name: "pre", hook: "prerouting", prio: -300, rules: [[{ notrack: null }]] }, input([[match(ct("state"), "untracked", "in"), drop]])]));
    expect(decidedBy(evaluateNft(nt, ssh))).toBe("inet r in #0");
    // At conntrack's own priority, whether it ran yet is not known.
    expect(evaluateNft(ruleset(table("inet", "r", 1, [{ name: "pre", hook: "prerouting", prio: -200, rules: [[match(ct("state"), "new", "in"), drop]] }])), ssh)).toMatchObject({ verdict: "unknown" });
  });
  it("TCP flags: a connection's first packet is a bare SYN; a later packet's flags are not known", () => {
    const rs = ruleset(table("inet", "t", 1, [input([[match({ "&": [pl("tcp", "flags"), ["syn", "ack"]] }, "syn", "!="), drop]])]));
    expect(evaluateNft(rs, ssh).verdict).toBe("ACCEPT");
    expect(evaluateNft(rs, { ...ssh, state: "ESTABLISHED" })).toMatchObject({ verdict: "unknown", why: expect.stringMatching(/^tcp flags of a ESTABLISHED packet/) });
  });
  it("counter, log, comment and the trace bit change nothing", () => {
    const rs = ruleset(table("inet", "t", 1, [input([[counter], [{ log: { prefix: "in " } }], [{ mangle: { key: meta("nftrace"), value: 1 } }], [match(pl("tcp", "dport"), 22), counter, drop]])]));
    expect(evaluateNft(rs, ssh, { trace: true })).toMatchObject({ verdict: "DROP", steps: [{ index: 3, action: "drop" }] });
  });
  it("'unknown', naming what it cannot evaluate, only when the packet reaches it", () => {
    const at = (expr: Json[]) => evaluateNft(ruleset(table("inet", "u", 1, [input([[match(pl("tcp", "dport"), 80), drop], expr])])), ssh);
    expect(at([match(meta("skuid"), 1), accept]).why).toMatch(/^meta skuid, in inet u in, rule handle 101$/);
    expect(at([match(pl("tcp", "dport"), 22), { limit: { rate: 3, per: "minute" } }, accept]).why).toMatch(/^limit rate/);
    expect(at([{ quota: { val: 10, val_unit: "mbytes" } }, accept]).why).toMatch(/^quota/);
    expect(at([match({ socket: { key: "transparent" } }, 1), accept]).why).toMatch(/^socket/);
    expect(at([match(ct("mark"), 1), accept]).why).toMatch(/^ct mark/);
    expect(at([match(ct("status"), "assured", "in"), accept]).why).toMatch(/^ct status assured/);
    expect(at([match(pl("ip", "saddr"), "@gone"), accept]).why).toMatch(/^the set @gone \(not in the listing\)/);
    expect(at([{ mangle: { key: meta("priority"), value: 1 } }]).why).toMatch(/^meta priority set/);
    // To one of the host's addresses the type is "local"; to another, which type (unicast, broadcast…) is not known.
    expect(at([match({ fib: { result: "type", flags: ["daddr"] } }, "broadcast"), drop]).verdict).toBe("ACCEPT");
    expect(evaluateNft(ruleset(table("ip", "u", 1, [{ name: "pre", hook: "prerouting", rules: [[match({ fib: { result: "type", flags: ["daddr"] } }, "broadcast"), drop]] }])), { ...ssh, dst: "10.9.0.255" }).why).toMatch(/^fib daddr type broadcast/);
    expect(at([match({ fib: { result: "oif", flags: ["saddr", "iif"] } }, false), drop]).why).toMatch(/^fib saddr \. iif oif/);
    expect(at([{ redirect: { port: 8 } }]).why).toMatch(/^redirect/);
    // Not reached: decided before it.
    expect(at([match(pl("udp", "dport"), 53), match(meta("skuid"), 1), accept]).verdict).toBe("ACCEPT");
  });
  it("a packet's mark is 0 until a rule on its way sets one: meta mark is read; after a meta mark set, it is unknown (a fuzzer: the most common unknown)", () => {
    const input1 = (rules: Json[][]) => ruleset(table("inet", "m", 1, [input(rules)]));
    expect(evaluateNft(input1([[match(meta("mark"), 1), drop]]), ssh).verdict).toBe("ACCEPT");
    expect(evaluateNft(input1([[match(meta("mark"), 0, "!="), drop]]), ssh).verdict).toBe("ACCEPT");
    expect(decidedBy(evaluateNft(input1([[match(meta("mark"), 0), match(pl("tcp", "dport"), 22), drop]]), ssh))).toBe("inet m in #0");
    expect(decidedBy(evaluateNft(input1([[match({ "&": [meta("mark"), 255] }, 0), drop]]), ssh))).toBe("inet m in #0");
    // Set, and not read: the verdict is known; read after it: unknown, in this chain or a later hook's.
    expect(evaluateNft(input1([[{ mangle: { key: meta("mark"), value: 5 } }], [match(pl("tcp", "dport"), 80), drop]]), ssh).verdict).toBe("ACCEPT");
    expect(evaluateNft(input1([[{ mangle: { key: meta("mark"), value: 5 } }], [match(meta("mark"), 5), drop]]), ssh)).toMatchObject({ verdict: "unknown", why: expect.stringMatching(/^meta mark: a rule on the packet's way may have set it \(inet m in, rule handle 100\), in inet m in, rule handle 101$/) });
    const early = ruleset(table("inet", "m", 1, [{ name: "pre", hook: "prerouting", prio: -150, rules: [[match(meta("iifname"), "eth1"), { mangle: { key: meta("mark"), value: 5 } }]] }, input([[match(meta("mark"), 5), drop]])]));
    expect(evaluateNft(early, ssh).verdict).toBe("unknown");
    expect(evaluateNft(early, { ...ssh, in: "eth0" }).verdict).toBe("ACCEPT");
    // A reply is a packet of its own: its mark is 0 again.
    const replies = ruleset(table("inet", "m", 1, [{ name: "pre", hook: "prerouting", prio: -150, rules: [[match(meta("iifname"), "eth1"), { mangle: { key: meta("mark"), value: 5 } }]] }, { name: "out", hook: "output", rules: [[match(meta("mark"), 5), drop]] }]));
    expect(evaluateNft(replies, ssh, { replies: true }).verdict).toBe("ACCEPT");
  });
  it("ct status ! dnat (no DNAT bit) is told; ct status != dnat (the whole status word) is not", () => {
    const dnatted = (rules: Json[][]) =>
      ruleset(table("ip", "n", 1, [{ name: "pre", hook: "prerouting", type: "nat", prio: -100, rules: [[match(pl("tcp", "dport"), 2222), { dnat: { addr: "172.17.0.2", port: 22 } }]] }, { name: "fwd", hook: "forward", rules }, input(rules)]));
    const noDnat = [[match(ct("status"), "dnat", "!"), drop]];
    expect(decidedBy(evaluateNft(dnatted(noDnat), ssh))).toBe("ip n in #0");
    expect(evaluateNft(dnatted(noDnat), { ...ssh, dport: 2222 })).toMatchObject({ verdict: "ACCEPT", path: "forward" });
    expect(evaluateNft(dnatted([[match(ct("status"), "dnat", "!=")]]), ssh).why).toMatch(/^ct status != dnat: only/);
  });
  it("a DNAT to the address and port a packet already has translates nothing: no ct status dnat, no DNAT reported; the nat chains after it do not run (as on iptables)", () => {
    const self = (to: Json) =>
      ruleset(
        table("ip", "n", 1, [
          { name: "pre", hook: "prerouting", type: "nat", prio: -150, rules: [[match(pl("tcp", "dport"), 22), { dnat: to }]] },
          { name: "later", hook: "prerouting", type: "nat", prio: -100, rules: [[match(pl("tcp", "dport"), 22), { dnat: { addr: "172.17.0.2" } }]] },
          input([[match(ct("status"), "dnat", "in"), drop]]),
        ]),
      );
    const same = evaluateNft(self({ addr: "10.0.0.1" }), ssh);
    expect([same.verdict, same.path, same.dnat]).toEqual(["ACCEPT", "input", undefined]);
    expect(evaluateNft(self({ addr: "10.0.0.1", port: 22 }), ssh).verdict).toBe("ACCEPT");
    // Another port, or another address (of the host's too): translated.
    expect(evaluateNft(self({ addr: "10.0.0.1", port: 2222 }), ssh)).toMatchObject({ verdict: "DROP", dnat: { addr: "10.0.0.1", port: 2222 } });
    expect(evaluateNft(self({ addr: "172.17.0.1" }), ssh)).toMatchObject({ verdict: "DROP", dnat: { addr: "172.17.0.1" } });
  });
  it("the reply of a connection taken out of conntrack: a SYN-ACK has no entry (ct original matches nothing); a UDP one begins its own, its original direction itself (a fuzzer, on iptables)", () => {
    const out = (proto: "tcp" | "udp"): Packet => ({ ...ssh, fromHost: true, in: "", src: "172.17.0.1", dst: "172.17.0.2", proto, dport: proto === "udp" ? 53 : 80 });
    const rs = (test: Json[]) => ruleset(table("ip", "t", 1, [{ name: "raw", hook: "output", prio: -300, rules: [[{ notrack: null }]] }, input([[...test, drop]])]));
    const daddr = (a: string) => match(ct("ip daddr", "original"), a);
    expect(evaluateNft(rs([match(ct("state"), "invalid", "in"), daddr("172.17.0.2")]), out("tcp"), { replies: true }).verdict).toBe("ACCEPT");
    expect(evaluateNft(rs([match(ct("state"), "invalid", "in")]), out("tcp"), { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    expect(evaluateNft(rs([daddr("172.17.0.2")]), out("udp"), { replies: true }).verdict).toBe("ACCEPT");
    expect(evaluateNft(rs([daddr("172.17.0.1")]), out("udp"), { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    // nat's chains run for it: a DNAT elsewhere takes it away from the client; to the address it has, nothing.
    const natted = (addr: string) => ruleset(table("ip", "t", 1, [{ name: "raw", hook: "output", prio: -300, rules: [[{ notrack: null }]] }, { name: "nat", hook: "prerouting", prio: -100, type: "nat", rules: [[match(meta("iifname"), "docker0"), { dnat: { addr } }]] }]));
    expect(evaluateNft(natted("172.17.0.3"), out("udp"), { replies: true })).toMatchObject({ verdict: "DROP", reply: true, replyDnat: true, decided: { chain: "nat", action: "dnat" } });
    expect(evaluateNft(natted("172.17.0.1"), out("udp"), { replies: true }).verdict).toBe("ACCEPT");
  });
  it("a TCP connection taken out of conntrack: its replies after the SYN-ACK are a connection of their own to conntrack, new (loose pickup), a FIN with them invalid (a fuzzer's helper, on iptables)", () => {
    const out: Packet = { ...ssh, fromHost: true, in: "", src: "172.17.0.1", dst: "172.17.0.2", dport: 80 };
    const rs = (rules: Json[][], more: ChainSpec[] = []) => ruleset(table("ip", "t", 1, [{ name: "raw", hook: "output", prio: -300, rules: [[{ notrack: null }]] }, input(rules, "drop"), ...more]));
    const state = (...s: string[]) => match(ct("state"), s.length === 1 ? s[0]! : { set: s }, "in");
    const flags = (mask: string[], want: string[]) => match({ "&": [pl("tcp", "flags"), mask.length === 1 ? mask[0]! : { "|": mask }] }, want.length === 1 ? want[0]! : { "|": want });
    const synAck = [state("invalid"), flags(["syn", "ack"], ["syn", "ack"]), accept];
    const why = "its replies after the first (a new connection to conntrack: the connection's own packets are not tracked)";
    expect(evaluateNft(rs([synAck]), out, { replies: true })).toMatchObject({ verdict: "DROP", reply: true, replyLoose: true, decided: { chain: "in", index: -1 } });
    expect(evaluateNft(rs([synAck, [state("new"), accept]]), out, { replies: true }).verdict).toBe("ACCEPT");
    // Every invalid one let in (the SYN-ACK, a FIN with the data), the data (new) not: it depends on the server.
    expect(evaluateNft(rs([[state("invalid"), accept]]), out, { replies: true })).toMatchObject({ verdict: "unknown", why: `${why}: the server's data is dropped by ip t in (its policy), but a FIN sent with it (invalid to conntrack) gets through: whether the client gets an answer depends on the server` });
    // Its entry's original direction is the reply itself: to the host, not to the container.
    const orig = (addr: string) => rs([[match(ct("ip daddr", "original"), addr, "!="), drop], synAck, [state("new"), accept]]);
    expect(evaluateNft(orig("172.17.0.2"), out, { replies: true })).toMatchObject({ verdict: "DROP", replyLoose: true, decided: { index: 0 } });
    expect(evaluateNft(orig("172.17.0.1"), out, { replies: true }).verdict).toBe("ACCEPT");
    // A flag test that tells data (PSH) from a bare ACK: not known.
    expect(evaluateNft(rs([synAck, [flags(["psh"], ["psh"]), accept]]), out, { replies: true })).toMatchObject({ verdict: "unknown", why: `${why}: tcp flags: a packet with data (PSH) and one without answer it otherwise` });
    // nat's chains run for the data: a DNAT elsewhere takes it away from the client (no connection, that rule decides); a
    // source nat is not worked out.
    const nat = (stmt: Json) => ({ name: "nat", hook: "prerouting", prio: -100, type: "nat", rules: [[match(meta("iifname"), "docker0"), stmt]] }) as ChainSpec;
    expect(evaluateNft(rs([synAck, [accept]], [nat({ dnat: { addr: "172.17.0.3" } })]), out, { replies: true })).toMatchObject({ verdict: "unknown", why: `${why}: the server's data is DNATed elsewhere by ip t nat, but a FIN sent with it (invalid to conntrack) gets through: whether the client gets an answer depends on the server` });
    expect(evaluateNft(rs([synAck, [state("invalid"), drop], [accept]], [nat({ dnat: { addr: "172.17.0.3" } })]), out, { replies: true })).toMatchObject({ verdict: "DROP", reply: true, replyLoose: true, replyDnat: true, decided: { chain: "nat", action: "dnat" } });
    expect(evaluateNft(rs([[accept]], [nat({ dnat: { addr: "172.17.0.1" } })]), out, { replies: true }).verdict).toBe("ACCEPT");
    const snat = { name: "snat", hook: "input", prio: 100, type: "nat", rules: [[match(meta("iifname"), "docker0"), { snat: { addr: "172.17.0.9" } }]] } as ChainSpec;
    expect(evaluateNft(rs([[accept]], [snat]), out, { replies: true })).toMatchObject({ verdict: "unknown", why: `${why}: nat translates their source (to 172.17.0.9), which is not worked out` });
  });
  it("an iptables-nft table: native rules are read; a packet that reaches an xt match or target is 'unknown', naming it", () => {
    const rs = parseNftJson(fixture("iptables-nft.json"));
    expect(evaluateNft(rs, ssh)).toMatchObject({ verdict: "ACCEPT", decided: { table: "filter", chain: "INPUT", index: 1 } });
    expect(evaluateNft(rs, { ...ssh, in: "lo" })).toMatchObject({ verdict: "ACCEPT", decided: { index: 0 } });
    expect(evaluateNft(rs, { ...ssh, dport: 443 }).why).toBe("an iptables-nft rule (xt match multiport), in ip filter INPUT, rule handle 4");
    // UDP does not reach the TCP rules' xt matches, but it does reach the conntrack one.
    expect(evaluateNft(rs, { ...ssh, proto: "udp", dport: 53 }).why).toMatch(/^an iptables-nft rule \(xt match conntrack\)/);
    expect(evaluateNft(ruleset(table("ip", "filter", 1, [input([[match(pl("tcp", "dport"), 22), { xt: { type: "target", name: "LOG" } }]])])), ssh).why).toMatch(/^an iptables-nft rule \(xt target LOG\)/);
  });
  it("base chains at one priority that end the packet differently (drop, reject): which one wins is not known", () => {
    const rs = ruleset(table("ip", "a", 1, [input([[drop]])]), table("ip", "b", 2, [input([[{ reject: null }]])]));
    expect(evaluateNft(rs, ssh)).toMatchObject({ verdict: "unknown", why: expect.stringMatching(/^the order of ip b in and ip a in/) });
    const same = ruleset(table("ip", "a", 1, [input([[drop]])]), table("ip", "b", 2, [input([[drop]])]));
    expect(evaluateNft(same, ssh).verdict).toBe("DROP");
  });
  it("a bridge-family chain, or an ingress chain on the packet's interface, is not evaluated: 'unknown'", () => {
    const bridge = ruleset(table("bridge", "br", 1, [{ name: "fwd", hook: "forward", rules: [[drop]] }]));
    expect(evaluateNft(bridge, ssh).why).toMatch(/^the bridge forward chain bridge br fwd/);
    const ingress = (dev: string) => parseNftJson(JSON.stringify({ nftables: [{ table: { family: "netdev", name: "nd", handle: 1 } }, { chain: { family: "netdev", table: "nd", name: "in", handle: 1, type: "filter", hook: "ingress", prio: 0, policy: "drop", dev } }] }));
    expect(evaluateNft(ingress("eth1"), ssh).verdict).toBe("unknown");
    expect(evaluateNft(ingress("eth0"), ssh).verdict).toBe("ACCEPT");
  });
  it("the host's own packets: output and postrouting; to an outside address it is path output", () => {
    const rs = ruleset(table("inet", "o", 1, [{ name: "out", hook: "output", policy: "drop", rules: [[match(meta("oifname"), "eth0"), match(pl("tcp", "dport"), 443), accept]] }]));
    const out: Packet = { ...ssh, fromHost: true, src: "10.0.0.1", dst: "10.9.1.1", dport: 443 };
    expect(evaluateNft(rs, out)).toMatchObject({ verdict: "ACCEPT", path: "output", decided: { chain: "out", index: 0 } });
    expect(evaluateNft(rs, { ...out, dport: 80 })).toMatchObject({ verdict: "DROP", path: "output", decided: { index: -1, action: "policy" } });
  });
  it("the host's connection to a neighbour from an address not known (explain's): its reply walked in, a drop of it closes it, a test of the address it comes back to is unknown (a review)", () => {
    const out: Packet = { ...ssh, fromHost: true, src: "", srcUnknown: true, dst: "10.9.1.1", dport: 443 };
    const by = (rules: Json[][]) => evaluateNft(ruleset(table("inet", "f", 1, [input(rules)])), out, { replies: true });
    expect(by([[match(pl("ip", "saddr"), "10.9.1.1"), drop]])).toMatchObject({ verdict: "DROP", path: "output", reply: true, decided: { chain: "in", index: 0 } });
    expect(by([[match(pl("ip", "saddr"), "10.9.1.2"), drop]])).toMatchObject({ verdict: "ACCEPT" });
    expect(by([[match(pl("ip", "daddr"), "10.0.0.1"), drop]]).why).toBe("its reply: ip daddr: the address the host's connection is sent from, which its replies come back to, is not known, in inet f in, rule handle 100");
  });
});

describe("nftSourceRanges: where the matrix cuts the sources, in every shape a rule reads them (a review found verify silent about a hole behind a vmap)", () => {
  // As nft 1.0.6 lists them (test/analysis/fixtures/nft/saddr-shapes.json): a vmap on ip saddr, ct original ip saddr, a
  // concatenated vmap, a mask, a named verdict map, an IPv6 prefix.
  const rs = parseNftJson(readFileSync(new URL("./fixtures/nft/saddr-shapes.json", import.meta.url), "utf8"));
  const fmt = (r: { from: bigint; to: bigint }) => `${r.from}-${r.to}`;
  const ip = (a: string) => a.split(".").reduce((v, o) => (v << 8n) | BigInt(o), 0n);
  test("IPv4: every address a rule names is a cut; the mask is not readable, and says so", () => {
    const got = nftSourceRanges(rs, 4);
    expect(got.ranges.map(fmt).sort()).toEqual(["203.0.113.7", "203.0.113.8", "203.0.113.10", "198.51.100.9"].map((a) => `${ip(a)}-${ip(a)}`).sort());
    expect(got.incomplete).toBe("ip saddr read another way, in inet r c rule handle 8: ip saddr & 0.0.0.255 == 0.0.0.7 accept");
  });
  test("IPv6: the prefix", () => {
    const got = nftSourceRanges(rs, 6);
    expect(got.ranges).toEqual([{ from: 0xfd00n << 112n, to: (0xfd00n << 112n) | ((1n << 64n) - 1n) }]);
    expect(got.incomplete).toBeUndefined();
  });
});

// Reachability from a saved ruleset (the host's interfaces unknown): rows for the interfaces its rules name, so that a zone the
// new policy takes away shows what its interface no longer reaches (a review found that unsaid, with iptables dumps).
test("the input interfaces a ruleset's rules name: by value and in a set, not negated, a wildcard as iptables spells it", () => {
  const rule = (handle: number, expr: Json[]) => ({ rule: { family: "inet", table: "t", chain: "c", handle, expr } });
  const meta = (op: string, right: Json) => ({ match: { op, left: { meta: { key: "iifname" } }, right } });
  const rs = parseNftJson(
    JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6", release_name: "Lester Gooch #5", json_schema_version: 1 } },
        { table: { family: "inet", name: "t", handle: 1 } },
        { chain: { family: "inet", table: "t", name: "c", handle: 2, type: "filter", hook: "forward", prio: 0, policy: "accept" } },
        rule(3, [meta("==", "eth1"), { accept: null }]),
        rule(4, [meta("==", { set: ["eth2", "wlan0"] }), { accept: null }]),
        rule(5, [meta("!=", "eth3"), { drop: null }]),
        rule(6, [meta("==", "veth*"), { accept: null }]),
      ],
    }),
  );
  const w = nftMatrixWalk(rs);
  if ("gap" in w) throw new Error(w.gap);
  expect(w.interfaces).toEqual(["eth1", "eth2", "wlan0", "veth+"]);
});

describe("evaluateNft: the host's connection to 127.0.0.1 DNATed out to a neighbour (route_localnet; localnet-kernel.test.ts proves it with packets)", () => {
  // `nft -j list ruleset` of: output nat `ip daddr 127.0.0.1 tcp dport 8080 dnat to 192.168.7.2:80`, postrouting nat
  // `ip saddr 127.0.0.0/8 oifname "eth1" masquerade`.
  const rs = parseNftJson(readFileSync(new URL("./fixtures/nft/localnet-dnat-out.json", import.meta.url), "utf8"));
  const p = (localnet?: Packet["localnet"]): Packet => ({ family: 4, in: "", src: "127.0.0.1", dst: "127.0.0.1", proto: "tcp", sport: 40000, dport: 8080, state: "NEW", local: ["192.168.7.1"], routes: [{ dst: "192.168.7.0/24", dev: "eth1" }], fromHost: true, ...(localnet ? { localnet } : {}) });
  const said = (pk: Packet) => {
    const v = evaluateNft(rs, pk, { replies: true });
    return `${v.verdict}${v.why ? `: ${v.why}` : ""}${v.kernel ? ` (by Linux, no rule: ${v.kernel})` : ""}${v.decided ? " (by a rule)" : ""}`;
  };
  it("off (read from the kernel): dropped, by Linux and no rule; not known: unknown, saying why; on for eth1 (or for all, which the reader expands): accepted", () => {
    expect(said(p({ on: [], read: true }))).toBe("DROP (by Linux, no rule: Linux does not route a packet from 127.0.0.1 out of eth1 (where a DNAT sends it): route_localnet is off for eth1 (read from the kernel))");
    expect(said(p())).toMatch(/which dockwall does not read$/);
    expect(said(p({ on: ["eth1"], read: true }))).toBe("ACCEPT");
  });
  it("leaving eth0 (another route), the masquerade of eth1's is none for it: unknown, the neighbour gets it from 127.0.0.1", () => {
    expect(said({ ...p({ on: ["eth0"], read: true }), routes: [{ dst: "192.168.7.0/24", dev: "eth0" }] })).toBe(
      "unknown: it leaves eth0 from 127.0.0.1 (no source nat of it): what gets it drops it, as Linux drops a packet from 127.0.0.0/8 that comes in by another interface than lo",
    );
  });
});
