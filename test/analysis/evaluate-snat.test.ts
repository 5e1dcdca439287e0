// The source nat a connection gets, as the reply walk reads it (src/analysis/evaluate.ts snatOf, connectionSnat): a fuzzer
// found an IPv6 --to-source without brackets cut at its last colon (explain and the matrix then stopped with an error), and
// a match nat POSTROUTING holds that the walk cannot read stopped them too.
import { describe, expect, it } from "vitest";
import { evaluate, type Packet } from "../../src/analysis/evaluate.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import { routeLocalnet } from "../../src/analysis/command.js";

const save = (nat: string, raw: string) => `*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${raw}COMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n${nat}COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n`;

describe("a connection's source nat, read for its reply", () => {
  const p6: Packet = { family: 6, in: "eth1", src: "fd00:1::5", dst: "fd00:9::7", proto: "tcp", sport: 40000, dport: 443, state: "NEW", local: ["fd00:1::1", "fd00:200:2::1"], routes: [{ dst: "fd00:1::/64", dev: "eth1" }, { dst: "fd00:9::/64", dev: "eth0" }] };
  it("IPv6 --to-source without brackets: the whole address (its replies, addressed to it in raw PREROUTING, dropped there)", () => {
    const rs = toRuleset(parseSave(save("-A POSTROUTING -o eth0 -j SNAT --to-source fd00:200:2::1\n", "-A PREROUTING -d fd00:200:2::1/128 -p tcp -m tcp --sport 443 -j DROP\n")), 6);
    expect(evaluate(rs, p6, { replies: true })).toMatchObject({ verdict: "DROP", reply: true, decided: { table: "raw", chain: "PREROUTING" } });
    const other = toRuleset(parseSave(save("-A POSTROUTING -o eth0 -j SNAT --to-source fd00:200:2::2\n", "-A PREROUTING -d fd00:200:2::1/128 -p tcp -m tcp --sport 443 -j DROP\n")), 6);
    expect(evaluate(other, p6, { replies: true }).verdict).toBe("ACCEPT");
  });
  it("a match of nat POSTROUTING the walk cannot read, where raw tests the reply's destination: unknown, naming it", () => {
    const rs = toRuleset(parseSave(save("-A POSTROUTING -m recent --name x --rcheck -j MASQUERADE\n", "-A PREROUTING -d fd00:200:2::1/128 -j DROP\n")), 6);
    const v = evaluate(rs, p6, { replies: true });
    expect([v.verdict, v.why]).toEqual(["unknown", "its reply: -m recent --name"]);
  });
});

describe("the reply of the host's connection DNATed to itself (a fuzzer, proven by hand with packets)", () => {
  // nat OUTPUT sends the host's connection to a neighbour to one of its own addresses: the reply leaves from there, and nat
  // POSTROUTING maps its source back to the neighbour's address before lo takes it in (PREROUTING, INPUT see that one).
  const rules = (input: string) => toRuleset(parseSave(`*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A OUTPUT -p tcp -j DNAT --to-destination [fd00:200:1::1]:22\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${input}COMMIT\n`), 6);
  const p: Packet = { family: 6, in: "", src: "fd00:200:0::1", dst: "fd00:200:0::2", proto: "tcp", sport: 40000, dport: 7000, state: "NEW", local: ["fd00:200:0::1", "fd00:200:1::1"], routes: [{ dst: "fd00:200:0::/64", dev: "eth0" }, { dst: "fd00:200:1::/64", dev: "eth1" }], fromHost: true };
  it("INPUT sees the reply from the address the connection was sent to, not the one it was DNATed to", () => {
    expect(evaluate(rules("-A INPUT -s fd00:200:1::/50 -j REJECT\n"), p, { replies: true })).toMatchObject({ verdict: "ACCEPT", path: "input", dnat: { addr: "fd00:200:1::1", port: 22 } });
    expect(evaluate(rules("-A INPUT -s fd00:200::2/128 -p tcp -m tcp --sport 7000 -j DROP\n"), p, { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    // OUTPUT (before nat POSTROUTING) sees the address it leaves from.
    expect(evaluate(rules("-A OUTPUT -s fd00:200:1::1/128 -p tcp -m tcp --sport 22 -j DROP\n"), p, { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    expect(evaluate(rules("-A OUTPUT -s fd00:200::2/128 -j DROP\n"), p, { replies: true }).verdict).toBe("ACCEPT");
  });
});

describe("the reply of the host's connection to itself, as raw OUTPUT reads it", () => {
  it("addressed to 127.0.0.1: LOCAL to addrtype (a fuzzer: an accept of LOCAL before a drop of everything was passed by)", () => {
    const raw = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -m addrtype --dst-type LOCAL -j ACCEPT\n-A OUTPUT -j DROP\nCOMMIT\n";
    const rs = toRuleset(parseSave(raw), 4);
    const p: Packet = { family: 4, in: "lo", src: "127.0.0.1", dst: "127.0.0.1", proto: "tcp", sport: 40000, dport: 9000, state: "NEW", local: ["10.0.0.1"], routes: [], fromHost: true };
    expect(evaluate(rs, p, { replies: true })).toMatchObject({ verdict: "ACCEPT", path: "input" });
  });
});

describe("the reply of a connection taken out of conntrack (a fuzzer, each proven with packets by hand)", () => {
  // The host to a container: its packets NOTRACKed in raw OUTPUT; INPUT accepts INVALID ones after a rule that tests them.
  const rules = (family: 4 | 6, test: string) =>
    toRuleset(parseSave(`*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j CT --notrack\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${test}-A INPUT -m conntrack --ctstate INVALID,NEW -j ACCEPT\nCOMMIT\n`), family);
  const toWeb = (proto: "tcp" | "udp" | "icmp"): Packet => ({ family: 4, in: "", src: "172.20.0.1", dst: "172.20.0.10", proto, ...(proto === "icmp" ? { icmpType: 8 } : { sport: 40000, dport: proto === "udp" ? 53 : 80 }), state: "NEW", local: ["172.20.0.1", "10.200.0.1"], routes: [{ dst: "172.20.0.0/16", dev: "br-front" }], fromHost: true });
  it("its SYN-ACK or echo reply is INVALID and has no entry: xt_conntrack decides on the state test alone, --ctorigdst and the rest not read", () => {
    for (const proto of ["tcp", "icmp"] as const) {
      const v = evaluate(rules(4, "-A INPUT -m conntrack --ctstate INVALID --ctorigdst 10.200.0.2 -j DROP\n"), toWeb(proto), { replies: true });
      expect([proto, v.verdict, v.reply]).toEqual([proto, "DROP", true]);
      // Without a state test, no match at all, whatever it tests.
      expect([proto, evaluate(rules(4, "-A INPUT -m conntrack --ctorigdst 172.20.0.10 -j DROP\n"), toWeb(proto), { replies: true }).verdict]).toEqual([proto, "ACCEPT"]);
    }
    // (The echo reply is all there is of it; a TCP connection's replies after its SYN-ACK have an entry of their own, whose
    // original destination is the host: below.)
    expect(evaluate(rules(4, "-A INPUT -m conntrack ! --ctorigdst 10.200.0.2 -j DROP\n"), toWeb("icmp"), { replies: true }).verdict).toBe("ACCEPT");
  });
  it("a UDP reply starts an entry of its own: NEW, and its original direction is the reply itself", () => {
    const udp = toWeb("udp");
    expect(evaluate(rules(4, "-A INPUT -m conntrack --ctorigdst 172.20.0.10 -j DROP\n"), udp, { replies: true }).verdict).toBe("ACCEPT");
    expect(evaluate(rules(4, "-A INPUT -m conntrack --ctorigdst 172.20.0.1 -j DROP\n"), udp, { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    expect(evaluate(rules(4, "-A INPUT -m conntrack --ctstate NEW --ctorigdstport 53 -j DROP\n"), udp, { replies: true }).verdict).toBe("ACCEPT");
    expect(evaluate(rules(4, "-A INPUT -m conntrack --ctstate NEW --ctorigdstport 40000 -j DROP\n"), udp, { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    // nat's chains run for it: a DNAT elsewhere takes it away from the client; to the address it has, nothing.
    const natted = (to: string) => toRuleset(parseSave(`*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j CT --notrack\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -i br-front -p udp -j DNAT --to-destination ${to}\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n`), 4);
    expect(evaluate(natted("172.20.0.11"), udp, { replies: true })).toMatchObject({ verdict: "DROP", reply: true, replyDnat: true, decided: { table: "nat", chain: "PREROUTING", index: 0 } });
    expect(evaluate(natted("172.20.0.1"), udp, { replies: true }).verdict).toBe("ACCEPT");
  });
  // A fuzzer's helper, proven with packets by hand: a TCP connection whose own packets are not tracked. Its SYN-ACK has no
  // entry (INVALID); the server's next packets (its ACK, its data) are taken by conntrack for a connection of their own
  // (nf_conntrack_tcp_loose, on by default): NEW, each of them (no packet of the other way is seen). A FIN sent with the
  // data begins no connection: INVALID.
  const synAck = "-p tcp -m tcp --tcp-flags SYN,ACK SYN,ACK -m conntrack --ctstate INVALID -j ACCEPT";
  it("TCP: the replies after the first are NEW (conntrack picks them up), a FIN with them INVALID: a drop of both closes the connection", () => {
    const tcp = toWeb("tcp");
    const only = (accept: string) => toRuleset(parseSave(`*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j CT --notrack\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${accept}COMMIT\n`), 4);
    expect(evaluate(only(`-A INPUT ${synAck}\n`), tcp, { replies: true })).toMatchObject({ verdict: "DROP", reply: true, replyLoose: true, decided: { table: "filter", chain: "INPUT", index: -1 } });
    expect(evaluate(only(`-A INPUT ${synAck}\n-A INPUT -m conntrack --ctstate NEW -j ACCEPT\n`), tcp, { replies: true }).verdict).toBe("ACCEPT");
    // Every INVALID one let in (the SYN-ACK, and a FIN sent with the data), the data (NEW) not: it depends on the server.
    const v = evaluate(only("-A INPUT -m conntrack --ctstate INVALID -j ACCEPT\n"), tcp, { replies: true });
    expect([v.verdict, v.why]).toEqual(["unknown", "its replies after the first (a new connection to conntrack: the connection's own packets are not tracked): the server's data is dropped by filter INPUT (its policy), but a FIN sent with it (INVALID to conntrack) gets through: whether the client gets an answer depends on the server"]);
    // (ICMP and UDP: no later packets of another kind; the first reply decides, as above.)
    expect(evaluate(only("-A INPUT -m conntrack --ctstate INVALID -j ACCEPT\n"), toWeb("icmp"), { replies: true }).verdict).toBe("ACCEPT");
    // They begin an entry of their own: its original destination is the host, not web.
    const orig = (test: string) => only(`-A INPUT -m conntrack ${test} -j DROP\n-A INPUT ${synAck}\n-A INPUT -m conntrack --ctstate NEW -j ACCEPT\n`);
    expect(evaluate(orig("! --ctorigdst 10.200.0.2"), tcp, { replies: true })).toMatchObject({ verdict: "DROP", reply: true, replyLoose: true, decided: { index: 0 } });
    expect(evaluate(orig("--ctorigdst 172.20.0.10"), tcp, { replies: true }).verdict).toBe("ACCEPT");
    expect(evaluate(orig("--ctstate NEW --ctorigdst 172.20.0.1"), tcp, { replies: true })).toMatchObject({ verdict: "DROP", replyLoose: true });
    // A flag test that tells the data with PSH from a bare ACK: not known.
    const psh = evaluate(only(`-A INPUT ${synAck}\n-A INPUT -p tcp -m tcp --tcp-flags PSH PSH -j ACCEPT\n`), tcp, { replies: true });
    expect([psh.verdict, psh.why]).toEqual(["unknown", "its replies after the first (a new connection to conntrack: the connection's own packets are not tracked): -m tcp --tcp-flags PSH PSH: a connection's ACK and its data answer it otherwise"]);
  });
  it("forwarded: a container's connection out taken out of conntrack where it comes in, FORWARD accepting INVALID SYN-ACKs but not NEW replies: closed", () => {
    const rs = (more: string) =>
      toRuleset(parseSave(`*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -i br-app -j CT --notrack\n${more}COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD ${synAck}\n-A FORWARD -i br-app -j ACCEPT\nCOMMIT\n`), 4);
    const out: Packet = { family: 4, in: "br-app", src: "172.20.0.10", dst: "192.168.1.7", proto: "tcp", sport: 40000, dport: 80, state: "NEW", local: ["172.20.0.1", "192.168.1.1"], routes: [{ dst: "172.20.0.0/16", dev: "br-app" }, { dst: "192.168.1.0/24", dev: "eth1" }] };
    expect(evaluate(rs(""), out, { replies: true })).toMatchObject({ verdict: "DROP", reply: true, replyLoose: true, decided: { chain: "FORWARD", index: -1 } });
    // The replies taken out of conntrack too (NOTRACK where they come in): UNTRACKED, which FORWARD does not accept either.
    expect(evaluate(rs("-A PREROUTING -i eth1 -j CT --notrack\n"), out, { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    // A DNAT of what comes in (the replies after the first are a new connection to nat): elsewhere, away from the client.
    const natted = (nat: string, filter: string) =>
      toRuleset(parseSave(`*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -i br-app -j CT --notrack\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n${nat}COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${filter}COMMIT\n`), 4);
    const dnat = "-A PREROUTING -i eth1 -p tcp -j DNAT --to-destination 172.20.0.11\n";
    expect(evaluate(natted(dnat, "-A FORWARD -m conntrack --ctstate INVALID -p tcp -m tcp ! --tcp-flags SYN,ACK SYN,ACK -j DROP\n"), out, { replies: true })).toMatchObject({ verdict: "DROP", reply: true, replyLoose: true, replyDnat: true, decided: { table: "nat", chain: "PREROUTING", index: 0 } });
    // (A FIN with the data is not DNATed, INVALID, and gets through: it depends on the server.)
    expect(evaluate(natted(dnat, ""), out, { replies: true }).why).toBe("its replies after the first (a new connection to conntrack: the connection's own packets are not tracked): the server's data is DNATed elsewhere by nat PREROUTING #1, but a FIN sent with it (INVALID to conntrack) gets through: whether the client gets an answer depends on the server");
    // A source nat of them: not worked out.
    const v = evaluate(natted("-A POSTROUTING -o br-app -j SNAT --to-source 172.20.0.1\n", ""), out, { replies: true });
    expect([v.verdict, v.why]).toEqual(["unknown", "its replies after the first (a new connection to conntrack: the connection's own packets are not tracked): nat POSTROUTING translates their source, which is not worked out"]);
  });
});

describe("the host's connection to 127.0.0.1 DNATed out to a neighbour (route_localnet; proven with packets in localnet-kernel.test.ts)", () => {
  // Linux routes a packet from 127.0.0.1 out of another interface than lo only where route_localnet is on for it (or for
  // all), and the machine it reaches drops it unless nat POSTROUTING translated its source.
  const rules = (post: string) => toRuleset(parseSave(`*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.168.7.2:80\n${post}COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n`), 4);
  const masq = rules("-A POSTROUTING -s 127.0.0.0/8 -o eth1 -j MASQUERADE\n");
  const p = (localnet?: Packet["localnet"]): Packet => ({ family: 4, in: "", src: "127.0.0.1", dst: "127.0.0.1", proto: "tcp", sport: 40000, dport: 8080, state: "NEW", local: ["192.168.7.1"], routes: [{ dst: "192.168.7.0/24", dev: "eth1" }], fromHost: true, ...(localnet ? { localnet } : {}) });
  const said = (rs: ReturnType<typeof rules>, pk: Packet) => {
    const v = evaluate(rs, pk, { replies: true });
    return `${v.verdict}${v.why ? `: ${v.why}` : ""}${v.kernel ? ` (by Linux, no rule: ${v.kernel})` : ""}${v.decided ? ` (by ${v.decided.table} ${v.decided.chain})` : ""}`;
  };
  it("off (read from the kernel): dropped, by Linux and no rule; not known: unknown, saying why; never accepted", () => {
    expect(said(masq, p({ on: ["docker0"], read: true }))).toBe("DROP (by Linux, no rule: Linux does not route a packet from 127.0.0.1 out of eth1 (where a DNAT sends it): route_localnet is off for eth1 (read from the kernel))");
    expect(said(masq, p())).toBe("unknown: the host sends it from 127.0.0.1, and a DNAT routes it out of eth1: Linux routes it there only if route_localnet is on for eth1, which dockwall does not read");
    expect(said(masq, p({ on: ["docker0"], read: false }))).toBe(
      "unknown: the host sends it from 127.0.0.1, and a DNAT routes it out of eth1: Linux routes it there only if route_localnet is on for eth1, which dockerd turns on only for its bridges with userland-proxy off",
    );
  });
  it("on for the interface, with a masquerade: accepted, its later packets too; without one, unknown (the neighbour gets it from 127.0.0.1)", () => {
    expect(said(masq, p({ on: ["eth1"], read: true }))).toBe("ACCEPT (by filter OUTPUT)");
    expect(said(rules(""), p({ on: ["eth1"], read: true }))).toBe(
      "unknown: it leaves eth1 from 127.0.0.1 (no source nat of it): what gets it drops it, as Linux drops a packet from 127.0.0.0/8 that comes in by another interface than lo",
    );
    // A masquerade out of another interface is none for this one.
    expect(said(rules("-A POSTROUTING -s 127.0.0.0/8 -o eth0 -j MASQUERADE\n"), p({ on: ["eth1"], read: true }))).toMatch(/^unknown: it leaves eth1 from 127\.0\.0\.1/);
  });
  it("not DNATed, or from another address: as before (lo; a route_localnet of no matter)", () => {
    expect(said(rules(""), { ...p(), dport: 9000 })).toBe("ACCEPT (by filter INPUT)");
    expect(said(masq, { ...p(), src: "192.168.7.1", dst: "192.168.7.1" })).toBe("ACCEPT (by filter INPUT)");
  });
});

describe("the host's connection to ::1 DNATed out to a neighbour (IPv6 has no route_localnet; localnet-kernel.test.ts proves it with packets)", () => {
  const rules = (post: string) => toRuleset(parseSave(`*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A OUTPUT -d ::1/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:7::2]:80\n${post}COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n`), 6);
  const p: Packet = { family: 6, in: "", src: "::1", dst: "::1", proto: "tcp", sport: 40000, dport: 8080, state: "NEW", local: ["fd00:7::1"], routes: [{ dst: "fd00:7::/64", dev: "eth1" }], fromHost: true };
  it("without a source nat, unknown (its receiver drops it); with a masquerade, dropped by Linux (its replies, to ::1, come in by eth1)", () => {
    const bare = evaluate(rules(""), p, { replies: true });
    expect([bare.verdict, bare.why]).toEqual(["unknown", "it leaves eth1 from ::1 (no source nat of it): what gets it drops it, as Linux drops a packet from ::1 that comes in by another interface than lo"]);
    const masq = evaluate(rules("-A POSTROUTING -s ::1/128 -o eth1 -j MASQUERADE\n"), p, { replies: true });
    expect([masq.verdict, masq.kernel, masq.decided]).toEqual(["DROP", "its replies come back by eth1, to ::1 once nat maps them back: Linux takes a packet to ::1 by lo alone, and drops them", undefined]);
  });
});

describe("routeLocalnet: where route_localnet is on, read from /proc (explain, matrix, verify --live)", () => {
  const reader = (files: Record<string, string>) => (path: string) => {
    const t = files[path.replace(/^\/proc\/sys\/net\/ipv4\/conf\/(.*)\/route_localnet$/, "$1")];
    if (t === undefined) throw new Error(`ENOENT ${path}`);
    return t;
  };
  it("per interface; `all` on turns it on for every one; `all` unread: not known; an interface unread: off", () => {
    expect(routeLocalnet(reader({ all: "0\n", eth1: "1\n", docker0: "0\n", lo: "0\n" }), ["lo", "eth1", "docker0"])).toEqual(["eth1"]);
    expect(routeLocalnet(reader({ all: "1\n" }), ["lo", "eth1"])).toEqual(["lo", "eth1"]);
    expect(routeLocalnet(reader({ eth1: "1\n" }), ["eth1"])).toBeUndefined();
    expect(routeLocalnet(reader({ all: "0\n", eth1: "1\n" }), ["eth1", "tun0"])).toEqual(["eth1"]);
  });
});
