// The typed matches and targets of the rule IR (src/ir/match.ts): what the iptables-save reader
// types it writes back exactly as it read it (the renderers translate at the edge), what it does
// not model stays as read (`other`), and the values are parsed once (ports, states, DNAT).
import { expect, test } from "vitest";
import { moduleView, pushIptablesMatch, typedMatch, typedTargetOptions, targetOptionsView, PortList, DnatTo, CtStates, readNatTo, type Match } from "../../src/ir/match.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import { ruleText } from "../../src/targets/iptables.js";

const LINES = [
  "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
  "-A DOCKER -d 192.168.1.1/32 ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
  "-A DOCKER-USER -s 192.168.1.0/24 -d 172.17.0.2/32 -i eth1 -o docker0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j RETURN",
  "-A DOCKER-USER -m conntrack --ctstate DNAT --ctorigdst 127.0.0.0/8 -j DROP",
  "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
  "-A INPUT -p tcp -m multiport --dports 80,443,1000:2000 -j ACCEPT",
  "-A INPUT -p tcp -m tcp --sport 1024:65535 --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT",
  "-A INPUT -m iprange --src-range 10.0.0.5-10.0.0.9 -j ACCEPT",
  "-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT",
  "-A INPUT -m addrtype --dst-type LOCAL -m comment --comment dockwall -j DOCKER",
  "-A FORWARD -m physdev --physdev-is-bridged -j RETURN",
  "-A FORWARD -m set --match-set docker-ext-bridges-v4 dst -j DOCKER",
  // Not modelled: kept as read.
  "-A INPUT -p tcp -m tcp --dport 22 -m recent --rcheck --seconds 60 --name ssh --mask 255.255.255.255 --rsource -j DROP",
  "-A INPUT -m conntrack --ctstate NEW --ctstatus CONFIRMED -j ACCEPT",
  "-A INPUT -m limit --limit 5/min -j LOG --log-prefix \"in: \"",
  "-A INPUT -m comment --comment \"ssh from the office\" -j ACCEPT",
  "-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable",
  "-A INPUT -p tcp -m tcp --dport 22 -j SET --add-set f2b src",
  "-A PREROUTING -p tcp -m tcp --dport 22 -j CT --notrack",
];

test("what iptables-save printed is written back exactly, typed or not", () => {
  const saved = parseSave(`*filter\n${LINES.map((l) => `${l}\n`).join("")}COMMIT\n`);
  const rs = toRuleset(saved, 4);
  const back = rs.tables[0]!.chains.flatMap((c) => c.rules.map((r) => ruleText(c.name, r)));
  expect(back.sort()).toEqual([...LINES].sort());
});

test("the reader types the matches dockwall models, and keeps the others as read", () => {
  const kinds = (line: string) => {
    const rs = toRuleset(parseSave(`*filter\n${line}\nCOMMIT\n`), 4);
    return rs.tables[0]!.chains.flatMap((c) => c.rules.flatMap((r) => r.matches.map((m) => (m.kind === "other" ? `other:${m.module}` : m.kind))));
  };
  expect(kinds(LINES[2]!)).toEqual(["tcp", "conntrack"]);
  expect(kinds(LINES[5]!)).toEqual(["multiport"]);
  expect(kinds(LINES[12]!)).toEqual(["tcp", "other:recent"]);
  // An option dockwall does not model makes the whole match another tool's.
  expect(kinds(LINES[13]!)).toEqual(["other:conntrack"]);
  // Options in an order iptables-save does not print (a hand-written file) are kept as written.
  const m = typedMatch("conntrack", [{ name: "ctorigdstport", value: "80" }, { name: "ctstate", value: "DNAT" }]);
  expect(m.kind).toBe("other");
  expect(moduleView(m).options.map((o) => o.name)).toEqual(["ctorigdstport", "ctstate"]);
});

test("values are parsed once, where the rule is made or read", () => {
  const ports = new PortList("80,443,1000:2000,:10");
  expect(ports.ranges).toEqual([[80, 80], [443, 443], [1000, 2000], [0, 10]]);
  expect([ports.has(1500), ports.has(500), ports.has(5)]).toEqual([true, false, true]);
  expect(new PortList("8080").single).toBe(8080);
  expect(new PortList("80:90").single).toBeUndefined();
  expect(new DnatTo("[fd00::2]:80").one).toEqual({ addr: "fd00::2", port: 80 });
  expect(new DnatTo("172.17.0.2").one).toEqual({ addr: "172.17.0.2", port: undefined });
  expect(new DnatTo("172.17.0.2-172.17.0.4:80").one).toBeUndefined();
  // A range of ports: DNAT's one port is not known, the address is (SNAT's --to-source reads that, with the same parse).
  expect(new DnatTo("172.17.0.2:80-90").one).toBeUndefined();
  expect(new DnatTo("fd00::2").one).toEqual({ addr: "fd00::2", port: undefined });
  expect(["10.0.0.1", "10.0.0.1:1024-65535", "[fd00::1]:1024-2048", "fd00::1", "fd00::1:2", "10.0.0.1-10.0.0.9", "[fd00::1-fd00::9]", ""].map((t) => readNatTo(t))).toEqual([
    { addr: "10.0.0.1" },
    { addr: "10.0.0.1", port: 1024, toPort: 65535 },
    { addr: "fd00::1", port: 1024, toPort: 2048 },
    { addr: "fd00::1" },
    // (Bare IPv6 is the whole address: a port after it needs brackets.)
    { addr: "fd00::1:2" },
    null,
    null,
    null,
  ]);
  const dnat = typedTargetOptions("DNAT", [{ name: "to-destination", value: "172.17.0.2:80" }]);
  expect(dnat.kind).toBe("dnat");
  expect(targetOptionsView(dnat)).toEqual([{ name: "to-destination", value: "172.17.0.2:80" }]);
  expect(typedTargetOptions("DNAT", [{ name: "to-destination", value: "172.17.0.2:80" }, { name: "random", value: "" }]).kind).toBe("other");
  expect(typedTargetOptions("CT", [{ name: "notrack", value: "" }]).kind).toBe("notrack");
  const ct = toRuleset(parseSave("*raw\n-A PREROUTING -p tcp -m tcp --dport 22 -j CT --notrack\nCOMMIT\n"), 4).tables[0]!.chains[0]!.rules[0]!;
  expect(ct.targetOptions).toEqual({ kind: "notrack" });
  // A rule's key (TableBuilder's duplicate check) reads typed values as their text.
  expect(JSON.stringify({ dport: { value: new PortList("80") } })).toBe('{"dport":{"value":"80"}}');
});

test("the iptables writer and moduleView say the same of every kind of match", () => {
  const ms: Match[] = [
    { kind: "tcp", sport: { value: new PortList("1024:65535"), neg: true }, dport: { value: new PortList("22") }, flags: { value: "FIN,SYN,RST,ACK SYN" } },
    { kind: "udp", dport: { value: new PortList("53") } },
    { kind: "conntrack", state: { value: new CtStates("DNAT") }, origDst: { value: "127.0.0.0/8", neg: true }, origDstPort: { value: new PortList("8080") } },
    { kind: "multiport", dir: "dports", ports: { value: new PortList("80,443") } },
    { kind: "state", state: { value: new CtStates("NEW") } },
    { kind: "addrtype", src: { value: "LOCAL" }, dst: { value: "LOCAL", neg: true } },
    { kind: "iprange", src: { value: "10.0.0.5-10.0.0.9" } },
    { kind: "icmp", type: { value: "8" } },
    { kind: "icmp6", type: { value: "135" } },
    { kind: "comment", text: "dockwall" },
    { kind: "physdev", bridged: { neg: true } },
    { kind: "set", set: { value: "docker-ext-bridges-v4 dst" } },
    { kind: "other", module: "recent", options: [{ name: "rcheck" }, { name: "seconds", value: "60" }] },
  ];
  for (const m of ms) {
    const out: string[] = [];
    pushIptablesMatch(out, m);
    const v = moduleView(m);
    expect(out.join(""), m.kind).toBe(` -m ${v.module}${v.options.map((o) => `${o.neg ? " ! --" : " --"}${o.name}${o.value === undefined ? "" : ` ${o.value}`}`).join("")}`);
    // And the reader types it back as it was.
    expect(moduleView(typedMatch(v.module, v.options)), m.kind).toEqual(v);
  }
});
