// `dockwall matrix` and `verify` (issue 23, items 3 and 4): rows are the classes of sources
// the rules treat alike, each cell a path and family held against the policy's intent; every
// cell's probe is a packet `explain` gives the same verdict for; every example and golden
// policy compiles to rules that do what it says (no mismatch); a hand-made ACCEPT or a
// fail2ban-style DROP over the loaded rules shows as exactly the cells it changed.
import { readFileSync } from "node:fs";
import { BRIDGE_ZONE_POLICY, INTERNAL_PROXY_POLICY, PROXY6_POLICY } from "../support/policies.js";
import { describe, expect, test } from "vitest";
import { explain, formatExplain } from "../../src/analysis/explain.js";
import { asLoaded } from "../../src/analysis/loaded.js";
import { buildMatrix, formatMismatches, type Matrix } from "../../src/analysis/matrix.js";
import { parsePacket } from "../../src/analysis/packet.js";
import { compile } from "../../src/compile.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import { run } from "../../src/cli.js";
import { memoryIo } from "../support/io.js";
import { shippedPolicies } from "../lab/policylab.js";

const POLICIES = shippedPolicies();

function matrixOf(text: string) {
  const r = compile(text, { noRender: true });
  if (!r.ok) throw new Error("does not compile");
  const rulesets = asLoaded(r.policy!, r.generated!.rulesets);
  return { r, rulesets, m: buildMatrix({ policy: r.policy!, rulesets }, [4, 6]) };
}

const cell = (m: Matrix, zone: string | undefined, iface: string, column: string, path: string, family = 4) => {
  const rows = m.rows.filter((r) => r.zone === zone && r.interfaces.includes(iface));
  return m.cells.filter((c) => rows.some((r) => r.id === c.row) && c.column === column && c.path === path && c.family === family);
};

describe("every example and golden policy does what it says: no cell is a mismatch", () => {
  test.each(POLICIES)("%s", (_name, text) => {
    const { m } = matrixOf(text);
    expect(m.cells.length).toBeGreaterThan(0);
    expect(formatMismatches(m)).toBe("");
  });
});

test("Docker 28+ does not DNAT an IPv6 link-local source (! -s fe80::/10): its cells are closed as Docker means them, not a mismatch, and the rest of the zone is open", () => {
  const { m } = matrixOf(`docker { version 29.7; iptables off; userland-proxy off; ip6tables on; }
zone wan { interface eth0; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
container a { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; }
allow wan to a:8080;
`);
  expect(formatMismatches(m)).toBe("");
  const six = cell(m, "wan", "eth0", "a:8080/tcp", "dnat", 6);
  expect(six.map((c) => [m.rows.find((r) => r.id === c.row)!.sources.join(" "), c.verdict, c.intent])).toEqual([
    ["::-fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff fec0::/10, ff00::/8", "open", "allowed"],
    ["fe80::/10", "closed", "not-allowed"],
  ]);
});

test("with userland-proxy on, docker-proxy relays a link-local IPv6 source that Docker 28+ does not DNAT: allowed, open, no mismatch", () => {
  const { m } = matrixOf(`docker { version 28.0; iptables off; userland-proxy on; ip6tables on; }
zone lan { interface eth1; from fe80::/10; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
container web { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; }
allow lan to web;
`);
  expect(formatMismatches(m)).toBe("");
  expect(cell(m, "lan", "eth1", "web:8080/tcp", "dnat", 6).map((c) => [c.verdict, c.intent])).toEqual([["open", "allowed"]]);
});

test("iptables on, no host block: docker-proxy on :: takes what Docker does not DNAT over IPv6 (a link-local source, a container without IPv6), and dockwall guards it (a review: open from the wan, in every output format)", () => {
  const text = PROXY6_POLICY;
  const { m } = matrixOf(text);
  expect(formatMismatches(m)).toBe("");
  // The guard is there, in IPv6, for the ports docker-proxy holds; IPv4 needs none (Docker DNATs every source there).
  const v6 = compile(text, { format: "ip6tables" }).output!;
  expect(v6).toContain("-A DOCKWALL-PROXY -p tcp -m tcp --dport 7000 -j DROP\n");
  expect(v6).toContain("ip6tables -t filter -I INPUT -j DOCKWALL-PROXY");
  expect(compile(text, { format: "iptables" }).output!).not.toContain("DOCKWALL-PROXY");
  expect(compile(text, { format: "nft" }).output!).toMatch(/chain proxy-ip6 \{/);
});

test("an internal network's containers reach no published port through docker-proxy, in either family (a review: over IPv6, allow any let them reach solo, which has no IPv6 DNAT)", () => {
  const text = INTERNAL_PROXY_POLICY;
  const { m } = matrixOf(text);
  expect(formatMismatches(m)).toBe("");
  // (db, on back alone; and web, whose second network back is: a row of its own, from its address there.)
  const toSolo = m.cells.filter((c) => c.row.startsWith("containers@back") && c.column === "solo:9000/tcp").map((c) => `${c.family} ${c.probe} ${c.path} ${c.verdict} ${c.intent}`);
  expect(toSolo).toEqual(["4 tcp container:db -> 172.21.0.1:9000 dnat closed not-allowed", "4 tcp container:web@back -> 172.21.0.1:9000 dnat closed not-allowed", "6 tcp container:db -> [fd00:21::1]:9000 dnat closed not-allowed", "6 tcp container:web@back -> [fd00:21::1]:9000 dnat closed not-allowed"]);
  // The rest of the world still gets to solo:9000 through docker-proxy over IPv6, as allowed.
  expect(m.cells.filter((c) => c.row.startsWith("lan@eth1/ipv6") && c.column === "solo:9000/tcp").map((c) => `${c.path} ${c.verdict} ${c.intent}`)).toEqual(["dnat open allowed"]);
  // With `published open` and no host block too: dockwall's proxy chain then holds only the internal network's drops.
  const open = INTERNAL_PROXY_POLICY.replace("userland-proxy on; }", "userland-proxy on; published open; }").replace(/^host .*\n/m, "");
  expect(formatMismatches(matrixOf(open).m)).toBe("");
  expect(compile(open, { format: "ip6tables" }).output!.split("\n").filter((l) => l.startsWith("-A DOCKWALL-PROXY"))).toEqual([
    "-A DOCKWALL-PROXY -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
    "-A DOCKWALL-PROXY -i br-back -p tcp -m tcp --dport 8080 -j DROP",
    "-A DOCKWALL-PROXY -i br-back -p tcp -m tcp --dport 9000 -j DROP",
  ]);
});

test("a zone on a Docker network's bridge has no rows of neighbours: what arrives there is that network's containers, in their own rows (a review: 27 mismatches dockwall's own rules made, for good)", () => {
  const { m } = matrixOf(BRIDGE_ZONE_POLICY);
  expect(formatMismatches(m)).toBe("");
  expect(m.rows.filter((r) => r.interfaces.includes("br-front")).map((r) => r.id)).toEqual(["containers@front/ipv4:172.20.0.10", "containers@front/ipv4:172.20.0.11", "containers@front/ipv6:fd00:20::10", "containers@front/ipv6:fd00:20::11"]);
  // The host block does hold for them: a's row reaches port 22, the others' not.
  expect(m.cells.filter((c) => c.column === "host:22/tcp" && c.family === 4 && c.row.startsWith("containers@front")).map((c) => `${c.probe} ${c.verdict} ${c.intent}`).sort()).toEqual([
    "tcp container:a -> 172.20.0.1:22 open allowed",
    "tcp container:b -> 172.20.0.1:22 closed not-allowed",
  ]);
});

test("ip6tables off and userland-proxy off: no IPv6 path to a published port, so no IPv6 allow is a cell the kernel could hold (a review: verify reported them all as closed, for good)", () => {
  const { m } = matrixOf(`docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
zone wan { interface eth0; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
container web { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; }
allow lan to web:8080;
allow wan to web:8080;
`);
  expect(formatMismatches(m)).toBe("");
  expect(neighbourCells(m).filter((c) => c.family === 6 && c.path === "dnat").map((c) => `${c.verdict} ${c.intent}`)).toEqual(["closed not-allowed", "closed not-allowed", "closed not-allowed"]);
  expect(neighbourCells(m).filter((c) => c.family === 4 && c.path === "dnat" && c.intent === "allowed").length).toBe(2);
});

describe("examples/web-host.dw", () => {
  const text = POLICIES.find(([n]) => n === "examples/web-host.dw")![1];
  const { r, rulesets, m } = matrixOf(text);

  test("rows: each zone's classes per interface, and the sources no zone holds", () => {
    expect(m.rows.filter((x) => x.interfaces[0] === "eth1").map((x) => [x.kind, x.zone ?? "", x.sources.join(" ")])).toEqual([
      ["other", "", "0.0.0.0-192.168.0.255 192.168.2.0-203.0.113.6 203.0.113.8-255.255.255.255"],
      ["zone", "lan", "192.168.1.0/24"],
      ["zone", "admin", "203.0.113.7/32"],
      ["other", "", "::/0"],
    ]);
  });

  test("cells: what the allows and the host block say, on each path", () => {
    expect(cell(m, "lan", "eth1", "web:8080/tcp", "dnat").map((c) => [c.verdict, c.intent])).toEqual([["open", "allowed"]]);
    expect(cell(m, "lan", "eth1", "web:8080/tcp", "direct").map((c) => [c.verdict, c.intent])).toEqual([["closed", "not-allowed"]]);
    expect(cell(m, "lan", "eth1", "web:8080/tcp", "loopback").map((c) => [c.verdict, c.intent])).toEqual([["closed", "not-allowed"]]);
    expect(cell(m, "lan", "eth1", "api:127.0.0.1:9000/tcp", "loopback").map((c) => [c.verdict, c.intent])).toEqual([["closed", "not-allowed"]]);
    expect(cell(m, "wan", "eth0", "web:8443/tcp", "dnat").map((c) => [c.verdict, c.intent])).toEqual([["closed", "not-allowed"], ["open", "allowed"]]);
    expect(cell(m, "admin", "eth0", "host:22/tcp", "host").map((c) => [c.verdict, c.intent])).toEqual([["open", "allowed"]]);
    expect(cell(m, "wan", "eth0", "host:22/tcp", "host", 6).map((c) => [c.verdict, c.intent])).toEqual([["closed", "not-allowed"]]);
  });

  test("every cell's probe is a packet explain gives the cell's verdict for", () => {
    const ctx = { rulesets, policy: r.policy!, file: "web-host.dw", text };
    for (const c of m.cells) {
      const p = parsePacket(c.probe);
      if ("error" in p) throw new Error(`${c.probe}: ${p.error}`);
      const e = explain(ctx, p);
      if (c.verdict === "open") expect(e.verdict, c.probe).toBe("accept");
      else if (c.verdict === "unknown") expect(e.verdict, c.probe).toBe("unknown");
      else expect(e.verdict !== "accept" || e.delivered?.to === "host", c.probe).toBe(true);
    }
  });

  test("over loaded rules with a hand-made ACCEPT and a fail2ban-style DROP: exactly the cells they change are mismatches", () => {
    const v4 = compile(text, { format: "iptables" }).output!;
    const loaded = v4
      .replace(/^(-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/m, "$1-A DOCKER-USER -s 203.0.113.0/24 -i eth0 -j ACCEPT\n")
      .replace(/^(-A INPUT -i lo)/m, "-A INPUT -s 192.168.1.0/24 -p tcp -m tcp --dport 22 -j DROP\n$1");
    expect(loaded).not.toBe(v4);
    const live = buildMatrix({ policy: r.policy!, rulesets: { 4: toRuleset(parseSave(loaded), 4), 6: rulesets[6] } }, [4, 6]);
    const name = (c: Matrix["cells"][number]) => `${live.rows.find((x) => x.id === c.row)!.zone ?? "other"} ${c.column} ${c.path} ${c.verdict}`;
    // The cells whose packet the rules as compiled treat otherwise: exactly the mismatches (the compiled rules have none).
    const walked = (rs: typeof rulesets, probe: string) => {
      const pk = parsePacket(probe);
      if ("error" in pk) throw new Error(pk.error);
      return explain({ rulesets: rs, policy: r.policy! }, pk).verdict;
    };
    const changed = live.cells.filter((c) => walked(rulesets, c.probe) !== walked({ 4: toRuleset(parseSave(loaded), 4), 6: rulesets[6] }, c.probe));
    expect(changed.length).toBeGreaterThan(5);
    expect(live.cells.filter((c) => c.mismatch).map(name).sort()).toEqual(changed.map(name).sort());
    expect(live.cells.filter((c) => c.mismatch).map(name)).toEqual(expect.arrayContaining(["wan web:8080/tcp dnat open", "lan host:22/tcp host closed", "wan api:127.0.0.1:9000/tcp loopback open"]));
    // The allowed stay as they were: wan's 203.0.113.0/24 may reach web:8443, so that cell is open and no mismatch.
    expect(live.cells.filter((c) => name(c) === "wan web:8443/tcp dnat open" && c.mismatch)).toEqual([]);
    expect(formatMismatches(live)).toContain("open, but the policy does not allow it: web:8080/tcp (dnat, direct, loopback, IPv4) from wan (203.0.113.0/30, 203.0.113.4/31, 203.0.113.6/32, 203.0.113.8-203.0.113.255), 3 cells: e.g. dockwall explain --live POLICY 'tcp 203.0.113.99:40000 -> ");
  });
});

// A rule that drops what goes to some neighbours (an egress block put first in DOCKER-USER) drops the replies of their
// connections too: those neighbours cannot reach what the policy lets them, a class of their own (a rule's -d cuts the
// sources as its -s does). Not the Docker networks' own addresses, nor the host's: the rules name those everywhere.
/**
 * examples/web-host.dw's matrix over its rules with `loaded` made of them: the lan (eth1, IPv4) cut in two at 192.168.1.128/25,
 * web:8080 closed (a mismatch) from the upper half, open from the lower; explain's text of that closed cell's packet.
 */
function lanCutAt128(loaded: (v4: string) => string): string {
  const text = POLICIES.find(([n]) => n === "examples/web-host.dw")![1];
  const { r, rulesets } = matrixOf(text);
  const v4 = compile(text, { format: "iptables" }).output!;
  expect(loaded(v4)).not.toBe(v4);
  const live = { 4: toRuleset(parseSave(loaded(v4)), 4), 6: rulesets[6] };
  const m = buildMatrix({ policy: r.policy!, rulesets: live }, [4, 6]);
  const lanRows = m.rows.filter((x) => x.zone === "lan" && x.interfaces.includes("eth1") && x.id.includes("/ipv4"));
  expect(lanRows.map((x) => x.sources.join(", ")).sort()).toEqual(["192.168.1.0/25", "192.168.1.128/25"]);
  const web = (row: string) => m.cells.filter((c) => c.row === row && c.column === "web:8080/tcp" && c.path === "dnat");
  const [low, high] = [lanRows.find((x) => x.sources[0] === "192.168.1.0/25")!.id, lanRows.find((x) => x.sources[0] === "192.168.1.128/25")!.id];
  expect(web(high).map((c) => `${c.verdict} ${c.mismatch}`)).toEqual(["closed true"]);
  expect(web(low).map((c) => c.verdict)).toEqual(["open"]);
  const pk = parsePacket(web(high)[0]!.probe);
  if ("error" in pk) throw new Error(pk.error);
  return formatExplain(explain({ rulesets: live, policy: r.policy! }, pk), (_s, l) => l);
}

test("a hand-made egress block (-d) closes its neighbours' connections: a row of their own, and verify says so", () => {
  const said = lanCutAt128((v4) => v4.replace(/^(-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/m, "-A DOCKER-USER -d 192.168.1.128/25 -j DROP\n$1"));
  // What explain says of that cell's packet: the reply dropped by the rule.
  expect(said).toContain("but its replies are dropped: no connection");
  expect(said).toContain("decided by filter DOCKER-USER (the reply)");
});

// A review: the usual block of the cloud's metadata service (169.254.169.254, link-local: never a neighbour routed here)
// made rows of its own, and verify failed on a hardening rule every cloud guide gives.
test("a block of the metadata service's link-local address (-d 169.254.169.254) makes no row and no mismatch", () => {
  for (const [name, text] of POLICIES.filter(([n]) => /web-host|router|web-server|published-open|syntax-tour/.test(n))) {
    const { r, rulesets } = matrixOf(text);
    const v4 = compile(text, { format: "iptables" }).output!;
    const loaded = v4.replace(/^(:DOCKER-USER - \[0:0\]\n(?:.*\n)*?)(-A DOCKER-USER )/m, "$1-A DOCKER-USER -d 169.254.169.254/32 -j DROP\n$2");
    expect(loaded, name).not.toBe(v4);
    const m = buildMatrix({ policy: r.policy!, rulesets: { 4: toRuleset(parseSave(loaded), 4), 6: rulesets[6] } }, [4, 6]);
    expect(formatMismatches(m), name).toBe("");
  }
});

// A review: a piece cut by a rule's -d (10.0.0.0/8) was shown by its third address, the host's own (10.0.0.2, a cloud host's
// first address): a probe the kernel drops as martian before any rule.
test("a row's packet never comes from one of the host's own addresses", () => {
  const text = POLICIES.find(([n]) => n === "examples/web-host.dw")![1];
  const { r, rulesets } = matrixOf(text);
  const v4 = compile(text, { format: "iptables" }).output!;
  const loaded = v4.replace(/^(-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/m, "-A DOCKER-USER -d 10.0.0.0/8 -j DROP\n$1");
  // The host's address on eth0 is 10.0.0.2, eth1's 192.168.1.1.
  const hostAddress = (f: 4 | 6, iface: string) => (f === 6 ? undefined : iface === "eth0" ? "10.0.0.2" : iface === "eth1" ? "192.168.1.1" : undefined);
  const m = buildMatrix({ policy: r.policy!, rulesets: { 4: toRuleset(parseSave(loaded), 4), 6: rulesets[6] }, hostAddress }, [4]);
  // The wan's 10.0.0.0/8 a row of its own (its replies dropped), shown from 10.0.0.3, not the host's 10.0.0.2.
  const ten = m.rows.filter((x) => x.sources.includes("10.0.0.0/8"));
  expect(ten.map((x) => x.zone ?? "other").sort()).toEqual(["other", "wan"]);
  const probes = [...new Set(m.cells.filter((c) => ten.some((x) => x.id === c.row)).map((c) => c.probe.split(" ")[1]!.replace(/:\d+$/, "")))];
  expect(probes).toEqual(["10.0.0.3"]);
  expect(m.cells.filter((c) => ten.some((x) => x.id === c.row) && c.column === "api:5353/udp" && c.path === "dnat").map((c) => c.verdict)).toEqual(["closed", "closed"]);
});

// A review: NOTRACK on what goes to part of the lan (raw PREROUTING) takes the containers' replies to it out of conntrack:
// they are not translated back (a SYN-ACK from 172.17.0.2:80, not from the host's address), and the connection fails.
test("a NOTRACK on replies to a neighbour range closes its DNATed connections: a row of its own, closed, and explain says why", () => {
  const said = lanCutAt128((v4) => {
    expect(v4).not.toContain("*raw");
    return `${v4}*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -d 192.168.1.128/25 -j NOTRACK\nCOMMIT\n`;
  });
  expect(said).toContain("but its replies are not tracked (NOTRACK): not translated back, no connection");
  expect(said).toContain("decided by raw PREROUTING (the reply)");
});

// The same where the connection is masqueraded too: raw PREROUTING sees the reply addressed to the translated source (the
// host's address on docker0), and a NOTRACK of that takes it out of conntrack all the same (re-reading the change: the walk
// there was a copy of the reply's, and what it set was lost).
test("a NOTRACK of a masqueraded connection's reply, before nat undoes it: closed, as when nothing masquerades it", () => {
  const text = POLICIES.find(([n]) => n === "examples/web-host.dw")![1];
  const { r, rulesets } = matrixOf(text);
  const v4 = compile(text, { format: "iptables" }).output!;
  const masq = v4.replace(/^(\*nat\n(?::.*\n)*)/m, "$1-A POSTROUTING -o docker0 -j MASQUERADE\n");
  expect(masq).not.toBe(v4);
  const raw = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -d 172.17.0.1/32 -j NOTRACK\nCOMMIT\n";
  const pk = parsePacket("tcp 192.168.1.2:40000 -> 192.0.2.1:8080 in eth1");
  if ("error" in pk) throw new Error(pk.error);
  const said = (rules: string) => explain({ rulesets: { 4: toRuleset(parseSave(rules), 4), 6: rulesets[6] }, policy: r.policy! }, pk);
  // Masqueraded, no NOTRACK: open. With it: its replies not tracked, no connection.
  expect(said(masq).verdict).toBe("accept");
  const e = said(masq + raw);
  expect([e.verdict, e.reply_untracked, e.decided_by?.rule]).toEqual(["drop", true, "-A PREROUTING -d 172.17.0.1/32 -j NOTRACK"]);
});

// A fuzzer's helper, proven with packets on iptables: a TCP connection whose own packets are not tracked gets its SYN-ACK
// through as INVALID, and the server's next packets are a new connection to conntrack (loose pickup), NEW each time.
test("ssh taken out of conntrack, the host's packets from port 22 dropped but for SYN-ACKs: its replies after the first, and explain says why", () => {
  const text = POLICIES.find(([n]) => n === "examples/web-host.dw")![1];
  const { r, rulesets } = matrixOf(text);
  const v4 = compile(text, { format: "iptables" }).output!;
  const raw = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 22 -j NOTRACK\nCOMMIT\n";
  const out = v4.replace(/^(\*filter\n(?::.*\n)*)/m, "$1-A OUTPUT -p tcp -m tcp --sport 22 ! --tcp-flags SYN,ACK SYN,ACK -j DROP\n");
  expect(out).not.toBe(v4);
  const pk = parsePacket("tcp 192.168.1.2:40000 -> 192.0.2.1:22 in eth1");
  if ("error" in pk) throw new Error(pk.error);
  const said = (rules: string) => explain({ rulesets: { 4: toRuleset(parseSave(rules), 4), 6: rulesets[6] }, policy: r.policy! }, pk);
  expect(said(v4 + raw).verdict).toBe("accept");
  expect(said(out).verdict).toBe("accept");
  const e = said(out + raw);
  expect([e.verdict, e.reply_dropped, e.reply_loose, e.decided_by?.rule]).toEqual(["drop", true, true, "-A OUTPUT -p tcp -m tcp --sport 22 ! --tcp-flags SYN,ACK SYN,ACK -j DROP"]);
  const text2 = formatExplain(e, (_, label) => label);
  expect(text2).toContain("and is answered, but the replies after the first are dropped: the connection's own packets are not tracked (NOTRACK), so conntrack takes them for a new connection: no connection");
  expect(text2).toContain("decided by filter OUTPUT (a later reply)");
});

// A fuzzer: Docker 28.0.0 keys FORWARD on its ipsets (-m set --match-set docker-ext-bridges-v4 dst), which the evaluator
// did not read: every cell a neighbour's packet to a published port makes was unknown. The sets hold its bridges' subnets.
test("Docker 28.0.0 (FORWARD keyed on its ipsets): every cell answered, each as for 28.0.1, iptables off and on", () => {
  for (const mode of ["iptables off", "iptables on"]) {
    const text = (version: string) => POLICIES.find(([n]) => n === "examples/web-host.dw")![1].replace("version 20.10; iptables off;", `version ${version}; ${mode};`);
    const at = (version: string) => {
      const { m } = matrixOf(text(version));
      return m.cells.map((c) => `${c.row} ${c.column} ${c.path} ${c.family}: ${c.verdict}${c.why ? ` (${c.why})` : ""}`);
    };
    const v0 = at("28.0.0");
    expect(v0.filter((c) => c.includes("unknown")), mode).toEqual([]);
    expect(v0, mode).toEqual(at("28.0.1"));
  }
  // What the set holds not known (read live from a kernel without it, say): unknown, saying so; a set matched on the source too.
  const v4 = compile(POLICIES.find(([n]) => n === "examples/web-host.dw")![1].replace("version 20.10;", "version 28.0.0;"), { format: "iptables" }).output!;
  expect(v4).toContain("-m set --match-set docker-ext-bridges-v4 dst");
  const pk = parsePacket("tcp 192.168.1.2:40000 -> 192.0.2.1:8080 in eth1");
  if ("error" in pk) throw new Error(pk.error);
  const policy = compile(POLICIES.find(([n]) => n === "examples/web-host.dw")![1].replace("version 20.10;", "version 28.0.0;"), { noRender: true }).policy!;
  const said = (ipsets?: Record<string, string[]>, text = v4) => explain({ rulesets: { 4: { ...toRuleset(parseSave(text), 4), ...(ipsets ? { ipsets } : {}) } }, policy }, pk);
  expect(said().unknown).toEqual(["-m set --match-set docker-ext-bridges-v4 dst: what the set holds is not known"]);
  expect(said({ "docker-ext-bridges-v4": ["172.17.0.0/16", "172.20.0.0/16"] }).verdict).toBe("accept");
  expect(said({ "docker-ext-bridges-v4": ["172.17.0.0/16"] }, v4.replaceAll("docker-ext-bridges-v4 dst", "docker-ext-bridges-v4 src")).unknown).toEqual(["-m set --match-set docker-ext-bridges-v4 src"]);
});

// A fuzzer: the host's own row walked its cells to one address of the host's only; where a container publishes a port of the
// host block on that address (check warns), the host's service is still reached at its others, as the kernel does.
test("the host's own row covers every address of the host, as the neighbours' rows do", () => {
  const text = `docker { version 23.0; iptables on; userland-proxy off; }
zone wan0 { interface eth2; }
network aa1 { bridge br-n1; subnet 172.21.0.0/16; }
container cache2 { network aa1 172.21.0.12; publish 10.200.0.1:8080:80/tcp; }
host { allow wan0 tcp 8080; }
`;
  const r = compile(text, { noRender: true });
  expect(r.diagnostics.map((d) => d.code)).toContain("host-port-published");
  const m = buildMatrix(
    {
      policy: r.policy!,
      rulesets: asLoaded(r.policy!, r.generated!.rulesets),
      hostAddress: (f, iface) => (iface === "eth2" && f === 4 ? "10.200.0.1" : undefined),
      host: { addresses: ["10.200.0.1", "10.200.1.1", "172.21.0.1", "127.0.0.1"], routes: [{ dst: "10.200.0.0/24", dev: "eth2" }, { dst: "10.200.1.0/24", dev: "eth1" }, { dst: "172.21.0.0/16", dev: "br-n1" }] },
    },
    [4],
  );
  const host = m.cells.filter((c) => c.row === "host/ipv4" && c.column === "host:8080/tcp").map((c) => `${c.probe}: ${c.verdict}`);
  expect(host).toEqual(["tcp host -> 10.200.1.1:8080: open"]);
});

test("a loaded rule the evaluator does not understand: its cells are unknown, not mismatches, and verify lists them as what it cannot tell", () => {
  const text = POLICIES.find(([n]) => n === "examples/web-host.dw")![1];
  const { r, rulesets } = matrixOf(text);
  const loaded = compile(text, { format: "iptables" }).output!.replace(/^(-A INPUT -i lo)/m, "-A INPUT -p tcp -m tcp --dport 22 -m recent --name ssh --rcheck --seconds 60 -j DROP\n$1");
  const live = buildMatrix({ policy: r.policy!, rulesets: { 4: toRuleset(parseSave(loaded), 4), 6: rulesets[6] } }, [4, 6]);
  const unknown = live.cells.filter((c) => c.verdict === "unknown");
  expect(unknown.length).toBeGreaterThan(0);
  expect(unknown.every((c) => c.column === "host:22/tcp" && !c.mismatch && c.why === "-m recent --name")).toBe(true);
  const said = formatMismatches(live);
  expect(said.split("\n")[0]).toBe(`${unknown.length} cells it cannot tell:`);
  expect(said).toContain("cannot tell (-m recent --name): host:22/tcp (host, IPv4) from ");
});

// A broad hand-made ACCEPT (a review: verify printed a line per cell, thousands on a real host): per row and family, the
// columns whose cells by the same paths are alike on one line, with how many cells and one packet to explain; the rows of
// a zone said by their sources; a line of one cell as before.
test("verify's text: the cells a broad rule opened, folded by row, family and paths; one cell's line as before", () => {
  const P = `docker { version 20.10; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
zone admin { interface eth1; from 192.168.1.5; }
network bridge { bridge docker0; subnet 172.17.0.0/16; }
container a { network bridge 172.17.0.2; publish 8080:80; }
container b { network bridge 172.17.0.3; publish 8081:80, 8443:443; }
container c { network bridge 172.17.0.4; publish 8082:80; }
allow lan to a;
allow admin to b;
host { allow lan tcp 22; }
`;
  const r = compile(P, { noRender: true });
  const v4 = compile(P, { format: "iptables" }).output!;
  const at = (rule: string) => buildMatrix({ policy: r.policy!, rulesets: { 4: toRuleset(parseSave(v4.replace(/^(-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n)/m, `$1${rule}\n`)), 4) } }, [4]);
  const broad = at("-A DOCKER-USER -j ACCEPT");
  expect(broad.cells.filter((c) => c.mismatch).length).toBe(44);
  expect(formatMismatches(broad)).toBe(
    [
      "44 cells of the loaded rules not what the policy says:",
      "open, but the policy does not allow it: 4 columns, a:8080/tcp, b:8081/tcp, b:8443/tcp, c:8082/tcp (dnat, direct, loopback, IPv4) from wan, 12 cells: e.g. dockwall explain --live POLICY 'tcp 203.0.113.99:40000 -> 192.0.2.1:8080 in eth0'",
      "open, but the policy does not allow it: 4 columns, a:8080/tcp, b:8081/tcp, b:8443/tcp, c:8082/tcp (dnat, direct, loopback, IPv4) from any other source, 12 cells: e.g. dockwall explain --live POLICY 'tcp 203.0.113.99:40000 -> 192.0.2.1:8080 in eth1'",
      "open, but the policy does not allow it: a:8080/tcp (direct, loopback, IPv4) from lan (192.168.1.0/30, 192.168.1.4/32, 192.168.1.6-192.168.1.255), 2 cells: e.g. dockwall explain --live POLICY 'tcp 192.168.1.2:40000 -> 172.17.0.2:80 in eth1'",
      "open, but the policy does not allow it: 3 columns, b:8081/tcp, b:8443/tcp, c:8082/tcp (dnat, direct, loopback, IPv4) from lan (192.168.1.0/30, 192.168.1.4/32, 192.168.1.6-192.168.1.255), 9 cells: e.g. dockwall explain --live POLICY 'tcp 192.168.1.2:40000 -> 192.0.2.1:8081 in eth1'",
      "open, but the policy does not allow it: 3 columns, a:8080/tcp, b:8081/tcp, b:8443/tcp (direct, loopback, IPv4) from lan (192.168.1.5/32), 6 cells: e.g. dockwall explain --live POLICY 'tcp 192.168.1.5:40000 -> 172.17.0.2:80 in eth1'",
      "open, but the policy does not allow it: c:8082/tcp (dnat, direct, loopback, IPv4) from lan (192.168.1.5/32), 3 cells: e.g. dockwall explain --live POLICY 'tcp 192.168.1.5:40000 -> 192.0.2.1:8082 in eth1'",
      "(each cell, with its packet: dockwall verify POLICY --json)",
      "",
    ].join("\n"),
  );
  // Every cell is in one line's count, once.
  const counted = formatMismatches(broad).split("\n").map((l) => Number(/, (\d+) cells: /.exec(l)?.[1] ?? (/^open|^closed/.test(l) ? 1 : 0)));
  expect(counted.reduce((a, b) => a + b, 0)).toBe(44);
  // One cell: its own line, as before (no fold, no pointer to --json).
  const one = at("-A DOCKER-USER -s 203.0.113.7/32 -i eth0 -d 172.17.0.4/32 -p tcp -m tcp --dport 80 -m conntrack ! --ctstate DNAT -j ACCEPT");
  expect(formatMismatches(one)).toBe("1 cell of the loaded rules not what the policy says:\nopen, but the policy does not allow it: c:8082/tcp (direct, IPv4) from wan (203.0.113.7/32): dockwall explain --live POLICY 'tcp 203.0.113.7:40000 -> 172.17.0.4:80 in eth0'\n");
});

describe("dockwall matrix (the command)", () => {
  test("text, JSON with the spec's fields, exit 0 when all is as the policy says", async () => {
    const io = memoryIo({ "p.dw": POLICIES.find(([n]) => n === "examples/coexist.dw")![1] });
    expect(await run(["matrix", "p.dw", "--json"], io)).toBe(0);
    const j = JSON.parse(io.out.join("")) as Matrix;
    expect(Object.keys(j)).toEqual(["dockwall", "command", "rows", "columns", "cells"]);
    expect(Object.keys(j.cells[0]!)).toEqual(["row", "column", "family", "path", "verdict", "intent", "mismatch", "probe"]);
    expect(j.columns.map((c) => c.id)).toEqual(["prometheus:9090/tcp", "nginx:80/tcp", "nginx:443/tcp", "host:22/tcp", "host:ping", "host:22/tcp", "host:ping"].filter((x, i, a) => a.indexOf(x) === i));
  });
});

test("live, a zone on an interface without an address of a family (or on none a zone names) still has its dnat and host cells, to another of the host's addresses (a review: they were left out, and verify missed what they would show)", async () => {
  const { interfaceAddresses } = await import("../../src/analysis/command.js");
  const policy = (zones: string) => `docker { version 28.3; iptables off; }
${zones}
network web { bridge br-web; subnet 172.24.0.0/24; }
container nginx { network web 172.24.0.2; publish 80:80; }
allow vpn to nginx:80;
host { allow vpn tcp 22; }
`;
  // eth0 has an IPv4 address, wg0 only IPv6 ones (a global and its link-local).
  const addr = JSON.stringify([
    { ifname: "eth0", addr_info: [{ family: "inet", local: "203.0.113.5", scope: "global" }] },
    { ifname: "wg0", addr_info: [{ family: "inet6", local: "fd00::1", scope: "global" }, { family: "inet6", local: "fe80::1", scope: "link" }] },
  ]);
  for (const zones of ["zone vpn { from 10.99.0.0/24; }", "zone vpn { interface wg+; }", "zone vpn { interface wg0; }\nzone up { interface eth0; }"]) {
    const r = compile(policy(zones), { noRender: true });
    expect(r.ok).toBe(true);
    const m = buildMatrix({ policy: r.policy!, rulesets: asLoaded(r.policy!, r.generated!.rulesets), host: { addresses: ["203.0.113.5", "fd00::1", "fe80::1", "172.24.0.1"], routes: [{ dst: "0.0.0.0/0", dev: "eth0" }, { dst: "172.24.0.0/24", dev: "br-web" }] }, hostAddress: interfaceAddresses(addr) }, [4]);
    const ifaces = [...new Set(neighbourCells(m).map((c) => c.probe.split(" in ")[1]))];
    for (const iface of ifaces) {
      const paths = new Set(neighbourCells(m).filter((c) => c.probe.endsWith(` in ${iface}`)).map((c) => c.path));
      expect([zones, iface, [...paths].sort()]).toEqual([zones, iface, ["direct", "dnat", "host", "loopback"]]);
    }
    // To the host's IPv4 address (eth0's) from wherever the zone is: the allow holds there as the rules do.
    const dnat = neighbourCells(m).filter((c) => c.path === "dnat");
    expect(dnat.every((c) => c.probe.includes(" -> 203.0.113.5:80 in "))).toBe(true);
    expect(m.cells.filter((c) => c.mismatch)).toEqual([]);
  }
});

test("live, a rule for the host's address on another interface than the row's (an accept of the lan's address from the wan): its cells open, and mismatches (verify did not see it: each row walked to its own interface's address)", async () => {
  const text = `${WAN_LAN_WEB}host { allow lan tcp 22; }
`;
  const matrixWith = await liveIpv4(text, [["br-web", "172.24.0.1"]]);
  // (The wan's rows: its pieces of the address space, the probe from the first: its source aside.)
  const bad = (m: Matrix) => [...new Set(m.cells.filter((c) => c.mismatch).map((c) => `${m.rows.find((x) => x.id === c.row)!.zone ?? m.rows.find((x) => x.id === c.row)!.kind} ${c.column} ${c.path} ${c.verdict}: ${c.probe.replace(/^(\w+) \S+ ->/, "$1 SRC ->")}`))];
  expect(bad(matrixWith(""))).toEqual([]);
  // The wan to the lan interface's address, and to the bridge's: the host's port 22 is open from the wan.
  expect(bad(matrixWith("-A INPUT -d 192.168.1.1/32 -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT"))).toEqual(["wan host:22/tcp host open: tcp SRC -> 192.168.1.1:22 in eth0"]);
  // (And nginx's, on that bridge: the host block lets no container in either.)
  expect(bad(matrixWith("-A INPUT -d 172.24.0.1/32 -p tcp -m tcp --dport 22 -j ACCEPT"))).toEqual(["wan host:22/tcp host open: tcp SRC -> 172.24.0.1:22 in eth0", "containers host:22/tcp host open: tcp SRC -> 172.24.0.1:22"]);
  // An accept of what was sent to another of the host's addresses (the lan's), DNATed by Docker's rule: the wan reaches nginx through it.
  expect(bad(matrixWith("-A FORWARD -d 172.24.0.2/32 -i eth0 -m conntrack --ctorigdst 192.168.1.1/32 -j ACCEPT"))).toEqual(
    ["wan nginx:8080/tcp dnat open: tcp SRC -> 192.168.1.1:8080 in eth0"],
  );
  // The lan closed on its own address but open on the wan's: the cell is open (any of the host's addresses).
  const m = matrixWith("-A INPUT -d 192.168.1.1/32 -p tcp -m tcp --dport 22 -j DROP");
  expect(bad(m)).toEqual([]);
  expect(m.cells.find((c) => c.column === "host:22/tcp" && c.probe.endsWith(" in eth1"))!.probe).toMatch(/ -> 198\.51\.100\.1:22 in eth1$/);
});

test("a rule that tests the source port (a review: every cell was walked from port 40000, and '--sport 53 -j ACCEPT', the hole for DNS replies, went unseen): each class of ports the rules tell apart is walked, and the cell is open from any", () => {
  const text = `docker { version 28.3; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
network web { bridge br-web; subnet 172.24.0.0/24; }
container nginx { network web 172.24.0.2; publish 8080:80, 5353:53/udp; }
allow lan to nginx:8080, nginx:5353/udp;
host { allow lan tcp 22; }
`;
  const r = compile(text, { noRender: true });
  expect(r.ok).toBe(true);
  const v4 = compile(text, { format: "iptables" }).output!;
  const matrixWith = (extra: string) => {
    const loaded = v4.replace(/^(\*filter\n(?::.*\n)*)/m, `$1${extra}\n`);
    expect(loaded).not.toBe(v4);
    return buildMatrix({ policy: r.policy!, rulesets: { 4: toRuleset(parseSave(loaded), 4) } }, [4]);
  };
  const bad = (m: Matrix) => [...new Set(m.cells.filter((c) => c.mismatch).map((c) => `${m.rows.find((x) => x.id === c.row)!.zone ?? m.rows.find((x) => x.id === c.row)!.kind} ${c.column} ${c.path} ${c.verdict}: ${c.probe.replace(/^(\w+) [^ ]+?:(\d+) ->.* in (\w+)$/, "$1 from port $2 in $3")}`))].sort();
  expect(bad(matrixWith("-A INPUT -p tcp -m tcp --sport 1024:30000 -j ACCEPT"))).toEqual(["containers host:22/tcp host open: tcp container:nginx:1024 -> 172.24.0.1:22", "wan host:22/tcp host open: tcp from port 1024 in eth0"]);
  // (Straight to the container's address stays closed: Docker 28's drop in raw PREROUTING comes first.)
  expect(bad(matrixWith("-A FORWARD -p udp -m udp --sport 53 -j ACCEPT"))).toEqual(["wan nginx:5353/udp dnat open: udp from port 53 in eth0", "wan nginx:5353/udp loopback open: udp from port 53 in eth0", "lan nginx:5353/udp loopback open: udp from port 53 in eth1"].sort());
  expect(bad(matrixWith("-A FORWARD -p tcp -m multiport --sports 20:21 -j ACCEPT"))).toEqual(expect.arrayContaining(["wan nginx:8080/tcp dnat open: tcp from port 20 in eth0"]));
  // Every cell's probe (its port too) is a packet explain gives the cell's verdict for.
  const m = matrixWith("-A INPUT -p tcp -m tcp --sport 1024:30000 -j ACCEPT");
  const rs = { 4: toRuleset(parseSave(v4.replace(/^(\*filter\n(?::.*\n)*)/m, "$1-A INPUT -p tcp -m tcp --sport 1024:30000 -j ACCEPT\n")), 4) };
  for (const c of m.cells) {
    const pk = parsePacket(c.probe);
    if ("error" in pk) throw new Error(pk.error);
    const e = explain({ rulesets: rs, policy: r.policy! }, pk);
    expect([c.probe, e.verdict === "accept" ? "open" : e.verdict === "unknown" ? "unknown" : "closed"]).toEqual([c.probe, c.verdict]);
  }
});

test("an allow naming an IPv4 zone and an IPv6 one, with a source of each (a review: refused, as if each zone had to hold both): it compiles, and each source is let in only through its own zone", () => {
  const { m } = matrixOf(`docker { version 27.5; iptables off; userland-proxy off; ip6tables on; }
zone lan { interface eth1; from 10.1.0.0/24; }
zone admin { interface eth0; from fd02::/64; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
container web { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; }
allow lan, admin from 10.1.0.5, fd02::7 to web:8080;
`);
  expect(formatMismatches(m)).toBe("");
  const open = neighbourCells(m).filter((c) => c.verdict === "open" && c.path === "dnat").map((c) => `${c.family} ${m.rows.find((r) => r.id === c.row)!.sources.join(" ")} in ${m.rows.find((r) => r.id === c.row)!.interfaces.join("")}`);
  expect(open.sort()).toEqual(["4 10.1.0.5/32 in eth1", "6 fd02::7/128 in eth0"]);
});

test("live, the host's other ports (a review: an accept of a port the host block does not name went unreported): one column per class of ports the rules on the way in tell apart, none let in by the host block", async () => {
  const matrixWith = await liveIpv4(`${WAN_LAN_WEB}host { allow lan tcp 22; allow lan udp 53; }
`);
  const clean = matrixWith("");
  expect(clean.columns.filter((c) => c.kind === "host").map((c) => `${c.id} ${c.host_port}`)).toEqual(["host:22/tcp 22", "host:53/udp 53", "host:other/tcp 1", "host:other/udp 1"]);
  expect(formatMismatches(clean)).toBe("");
  const bad = (m: Matrix) => [...new Set(m.cells.filter((c) => c.mismatch).map((c) => `${m.rows.find((x) => x.id === c.row)!.zone ?? m.rows.find((x) => x.id === c.row)!.kind} ${c.column} ${c.verdict}: ${c.probe.split(" -> ")[1]}`))].sort();
  expect(bad(matrixWith("-A INPUT -p tcp -m tcp --dport 9100 -j ACCEPT"))).toEqual(["containers host:9100/tcp open: 198.51.100.1:9100", "lan host:9100/tcp open: 192.168.1.1:9100 in eth1", "wan host:9100/tcp open: 198.51.100.1:9100 in eth0"]);
  // multiport's --ports (either port; a fuzzer found it read as a match dockwall does not know): the same column, and what comes from port 9100.
  expect(bad(matrixWith("-A INPUT -p tcp -m multiport --ports 9100 -j ACCEPT"))).toEqual([
    "containers host:22/tcp open: 198.51.100.1:22",
    "containers host:9100/tcp open: 198.51.100.1:9100",
    "containers host:other/tcp open: 198.51.100.1:1",
    "lan host:9100/tcp open: 192.168.1.1:9100 in eth1",
    "lan host:other/tcp open: 192.168.1.1:1 in eth1",
    "wan host:22/tcp open: 198.51.100.1:22 in eth0",
    "wan host:9100/tcp open: 198.51.100.1:9100 in eth0",
    "wan host:other/tcp open: 198.51.100.1:1 in eth0",
  ]);
  expect(bad(matrixWith("-A INPUT -i eth0 -j ACCEPT"))).toEqual(expect.arrayContaining(["wan host:other/tcp open: 198.51.100.1:1 in eth0", "wan host:other/udp open: 198.51.100.1:1 in eth0"]));
  // A port the connection was first sent to (a second review: no column came of it), and a DNAT of another port to the host's ssh (its cell was closed).
  expect(bad(matrixWith("-A INPUT -i eth0 -p tcp -m conntrack --ctstate NEW --ctorigdstport 9100 -j ACCEPT"))).toEqual(["wan host:9100/tcp open: 198.51.100.1:9100 in eth0"]);
  expect(bad(matrixWith("-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -j ACCEPT", "-A PREROUTING -i eth0 -p tcp -m tcp --dport 2222 -j DNAT --to-destination 192.168.1.1:22"))).toEqual(["wan host:2222/tcp open: 198.51.100.1:2222 in eth0"]);
  // A rule that names a range of ports: its own column, the rest still one.
  expect(matrixWith("-A INPUT -p tcp -m tcp --dport 9000:9200 -j ACCEPT").columns.filter((c) => c.kind === "host" && c.proto === "tcp").map((c) => `${c.id} ${c.host_port}`)).toEqual(["host:22/tcp 22", "host:other/tcp 1", "host:9000-9200/tcp 9000"]);
});

test("live, rules that test no port on the way in (INPUT flushed, policy ACCEPT): the host's other ports still a column, open, a mismatch (a review: the one class of ports held the host block's port 22, and no column showed the rest)", async () => {
  const { interfaceAddresses } = await import("../../src/analysis/command.js");
  const r = compile(`docker { version 28.3; iptables off; userland-proxy off; }\nzone wan { interface eth0; }\nzone lan { interface eth1; }\nhost { allow lan tcp 22; }\n`, { noRender: true });
  const addr = JSON.stringify([["eth0", "198.51.100.1"], ["eth1", "192.168.1.1"]].map(([ifname, local]) => ({ ifname, addr_info: [{ family: "inet", local, scope: "global" }] })));
  const host = { addresses: ["198.51.100.1", "192.168.1.1"], routes: [{ dst: "0.0.0.0/0", dev: "eth0" }, { dst: "192.168.1.0/24", dev: "eth1" }], interfaces: ["lo", "eth0", "eth1"] };
  const flushed = toRuleset(parseSave("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"), 4);
  const m = buildMatrix({ policy: r.policy!, rulesets: { 4: flushed }, host, hostAddress: interfaceAddresses(addr) }, [4]);
  expect(m.columns.filter((c) => c.kind === "host" && c.proto === "tcp").map((c) => `${c.id} ${c.host_port}`)).toEqual(["host:22/tcp 22", "host:other/tcp 1"]);
  const bad = [...new Set(m.cells.filter((c) => c.mismatch).map((c) => `${m.rows.find((x) => x.id === c.row)!.zone ?? m.rows.find((x) => x.id === c.row)!.kind} ${c.column} ${c.verdict}`))].sort();
  expect(bad).toEqual(expect.arrayContaining(["lan host:other/tcp open", "wan host:22/tcp open", "wan host:other/tcp open"]));
});

/** The cells of the rows of neighbours (zones, any other source): not those of the containers and the host. */
function neighbourCells(m: Matrix): Matrix["cells"] {
  const ids = new Set(m.rows.filter((r) => r.kind === "zone" || r.kind === "other").map((r) => r.id));
  return m.cells.filter((c) => ids.has(c.row));
}

const WAN_LAN_WEB = `docker { version 28.3; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
network web { bridge br-web; subnet 172.24.0.0/24; }
container nginx { network web 172.24.0.2; publish 8080:80; }
allow lan to nginx:8080;
`;

/**
 * The live IPv4 matrix of a policy's compiled rules with `filter` (and `nat`) rules put first in
 * their table, on a host with eth0 198.51.100.1 and eth1 192.168.1.1 (and `more` interfaces).
 */
async function liveIpv4(text: string, more: [string, string][] = []): Promise<(filter: string, nat?: string) => Matrix> {
  const { interfaceAddresses } = await import("../../src/analysis/command.js");
  const r = compile(text, { noRender: true });
  expect(r.ok).toBe(true);
  const ifaces: [string, string][] = [["eth0", "198.51.100.1"], ["eth1", "192.168.1.1"], ...more];
  const addr = JSON.stringify(ifaces.map(([ifname, local]) => ({ ifname, addr_info: [{ family: "inet", local, scope: "global" }] })));
  const host = { addresses: ifaces.map(([, a]) => a), routes: [{ dst: "0.0.0.0/0", dev: "eth0" }, { dst: "192.168.1.0/24", dev: "eth1" }, { dst: "172.24.0.0/24", dev: "br-web" }], interfaces: ["lo", ...ifaces.map(([i]) => i)] };
  const v4 = compile(text, { format: "iptables" }).output!;
  return (filter: string, nat = "") => {
    let loaded = filter ? v4.replace(/^(\*filter\n(?::.*\n)*)/m, `$1${filter}\n`) : v4;
    if (nat) loaded = loaded.replace(/^(\*nat\n(?::.*\n)*)/m, `$1${nat}\n`);
    expect(loaded === v4).toBe(!filter && !nat);
    return buildMatrix({ policy: r.policy!, rulesets: { 4: toRuleset(parseSave(loaded), 4) }, host, hostAddress: interfaceAddresses(addr) }, [4]);
  };
}

// The rows the spec names besides the zones' (analysis.md, "Rows"): each Docker network's containers, and the host itself,
// whose traffic the policy leaves to Docker's own rules. Their cells are what Docker's rules do with the same packet (the
// intent), the host's services what the host block says; test/analysis/matrix-live.test.ts sends them for real.
test("rows of each network's containers and of the host itself: what they reach, held against Docker's own rules and the host block", () => {
  const { m } = matrixOf(readFileSync(new URL("../../examples/web-host.dw", import.meta.url), "utf8"));
  expect(m.rows.filter((r) => r.kind === "containers" || r.kind === "host").map((r) => `${r.id} ${r.interfaces.join(",")} ${r.sources.join(" ")}`)).toEqual([
    "containers@bridge/ipv4 docker0 172.17.0.0/16",
    "containers@app/ipv4 br-app 172.20.0.0/16",
    "host/ipv4 lo host",
    "host/ipv6 lo host",
  ]);
  const at = (row: string, column: string, path: string) => m.cells.filter((c) => c.row === row && c.column === column && c.path === path && c.family === 4).map((c) => `${c.verdict} ${c.intent} ${c.probe}`);
  // api's containers reach web's port through docker-proxy (userland-proxy on), not web's own address (Docker isolates networks).
  expect(at("containers@app/ipv4", "web:8080/tcp", "dnat")).toEqual(["open allowed tcp container:api -> 172.20.0.1:8080"]);
  expect(at("containers@app/ipv4", "web:8080/tcp", "direct")).toEqual(["closed not-allowed tcp container:api -> 172.17.0.2:80"]);
  // The host block lets no container reach ssh (no zone holds a bridge but 'any'), and ping from any.
  expect(at("containers@bridge/ipv4", "host:22/tcp", "host")).toEqual(["closed not-allowed tcp container:web -> 172.17.0.1:22"]);
  expect(at("containers@bridge/ipv4", "host:ping", "host")).toEqual(["open allowed icmp container:web -> 172.17.0.1"]);
  // The host itself reaches every published port, on its addresses and 127.0.0.1, and each container's address.
  expect(at("host/ipv4", "api:127.0.0.1:9000/tcp", "loopback")).toEqual(["open allowed tcp host -> 127.0.0.1:9000"]);
  expect(at("host/ipv4", "web:8443/tcp", "direct")).toEqual(["open allowed tcp host -> 172.17.0.2:443"]);
  expect(m.cells.filter((c) => c.mismatch)).toEqual([]);
});

// A second review: compiled, with Docker 28's drop of direct access in raw PREROUTING, a source spoofed inside a Docker network
// DNATed to a container of another network is masqueraded on its way (Docker's MASQUERADE of that subnet); its reply comes back
// to the host's address on the container's bridge, which the compiled matrix did not count among the host's: unknown, where
// explain gave a verdict. Every cell is known now, and each probe's explain is its cell.
test("compiled, Docker 28: no cell unknown for want of the host's address on a bridge, and explain of each probe is its cell", () => {
  const text = readFileSync(new URL("../../examples/web-host.dw", import.meta.url), "utf8").replace(/version [^;]+;/, "version 28.3;");
  const { r, rulesets, m } = matrixOf(text);
  expect(m.cells.filter((c) => c.verdict === "unknown").map((c) => c.probe)).toEqual([]);
  for (const c of m.cells.filter((x) => x.probe.startsWith("udp 172.17.0.2:40000 -> "))) {
    const pk = parsePacket(c.probe);
    if ("error" in pk) throw new Error(pk.error);
    const e = explain({ rulesets, policy: r.policy! }, pk);
    expect([c.probe, e.verdict === "accept" ? "open" : e.verdict === "unknown" ? "unknown" : "closed"]).toEqual([c.probe, c.verdict]);
  }
});

// Compiled (no host to read interfaces from), a wildcard zone stands for an interface of its own kind: beside a longer
// wildcard (eth0+), eth+ alone takes eth1, not eth0 (a review of the lint found the same stand-in taken by both).
test("a wildcard beside a longer one: a row for an interface only the shorter takes", () => {
  const { m } = matrixOf(`docker { version 28; iptables off; userland-proxy off; }
zone up { interface eth0+; }
zone any_eth { interface eth+; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow any_eth to web:8080;
`);
  const ifaces = [...new Set(m.rows.filter((r) => r.kind === "zone").flatMap((r) => r.interfaces))];
  expect(ifaces).toEqual(["eth00", "eth1"]);
  // eth1 is any_eth's alone: its row is any_eth's, and web:8080 open from it.
  expect(m.rows.filter((r) => r.interfaces.includes("eth1")).map((r) => r.zone)).toEqual(["any_eth", "any_eth"]);
});

// A review: `published open` with ip6tables off: Docker writes no IPv6 rules, so a neighbour routing via the host reaches the
// container's own IPv6 address (what Docker does); the direct cell's intent took "no IPv6 DNAT" for "no IPv6 path", and the
// compiled rules' own matrix (and verify on a clean host) said mismatch.
test("published open, ip6tables off: the container's own IPv6 address is open, as Docker leaves it, and no mismatch", () => {
  const { m } = matrixOf(`docker { version 28; iptables off; userland-proxy off; ip6tables off; published open; }
zone wan { interface eth0; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
container web { network app 172.20.0.10, fd00:20::10; publish 8080:80; }
`);
  expect(m.cells.filter((c) => c.mismatch)).toEqual([]);
  expect(cell(m, "wan", "eth0", "web:8080/tcp", "direct", 6).map((c) => `${c.verdict} ${c.intent}`)).toEqual(["open allowed"]);
});

// A review: verify keeps only the cells not what the policy says, and a zone's rows without one were not counted: a
// fail2ban-style drop of one lan address read "from lan", as if all of lan were shut out.
test("verify's text (only the mismatching cells kept): a zone cut into rows is named by the sources of the row", () => {
  const text = POLICIES.find(([n]) => n === "examples/web-host.dw")![1];
  const { r, rulesets } = matrixOf(text);
  const loaded = compile(text, { format: "iptables" }).output!.replace(/^(-A INPUT -i lo)/m, "-A INPUT -s 192.168.1.5/32 -p tcp -m tcp --dport 22 -j DROP\n$1");
  const live = buildMatrix({ policy: r.policy!, rulesets: { 4: toRuleset(parseSave(loaded), 4), 6: rulesets[6] }, only: "mismatches" }, [4, 6]);
  expect(formatMismatches(live)).toBe("1 cell of the loaded rules not what the policy says:\nclosed, but the policy allows it: host:22/tcp (host, IPv4) from lan (192.168.1.5/32): dockwall explain --live POLICY 'tcp 192.168.1.5:40000 -> 192.0.2.1:22 in eth1'\n");
});

