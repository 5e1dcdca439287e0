// The source nat a connection gets, as the reply walk reads it (src/analysis/evaluate.ts snatOf, connectionSnat): a fuzzer
// found an IPv6 --to-source without brackets cut at its last colon (explain and the matrix then stopped with an error), and
// a match nat POSTROUTING holds that the walk cannot read stopped them too.
import { describe, expect, it } from "vitest";
import { evaluate, type Packet } from "../../src/analysis/evaluate.js";
import { parseSave, toRuleset } from "../../src/live/save.js";

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
      expect([proto, evaluate(rules(4, "-A INPUT -m conntrack ! --ctorigdst 10.200.0.2 -j DROP\n"), toWeb(proto), { replies: true }).verdict]).toEqual([proto, "ACCEPT"]);
    }
  });
  it("a UDP reply starts an entry of its own: NEW, and its original direction is the reply itself", () => {
    const udp = toWeb("udp");
    expect(evaluate(rules(4, "-A INPUT -m conntrack --ctorigdst 172.20.0.10 -j DROP\n"), udp, { replies: true }).verdict).toBe("ACCEPT");
    expect(evaluate(rules(4, "-A INPUT -m conntrack --ctorigdst 172.20.0.1 -j DROP\n"), udp, { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
    expect(evaluate(rules(4, "-A INPUT -m conntrack --ctstate NEW --ctorigdstport 53 -j DROP\n"), udp, { replies: true }).verdict).toBe("ACCEPT");
    expect(evaluate(rules(4, "-A INPUT -m conntrack --ctstate NEW --ctorigdstport 40000 -j DROP\n"), udp, { replies: true })).toMatchObject({ verdict: "DROP", reply: true });
  });
});
