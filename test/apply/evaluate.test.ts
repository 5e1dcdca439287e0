// The packet evaluator (src/analysis/evaluate.ts) against the kernel: policies loaded into the
// packet lab (a real dockerd 20.10 with "iptables": false, real containers), and for a table of
// packets — to the host's own services, to published ports (DNAT'd to containers), straight
// to container addresses, from the lan and the wan — the evaluator's verdict must be what real
// connections get. Plus unit cases for what the kernel lab cannot show.
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { evaluate, type Packet } from "../../src/analysis/evaluate.js";
import { isWholeSave, parseSave, toRuleset } from "../../src/live/save.js";
import { targetOptionsView } from "../../src/ir/match.js";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";

const LAB_TIMEOUT = 120_000;

const POLICIES: Record<string, string> = {
  "live.md's example, lab addresses": `docker { version 20.10; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; }
allow lan to web:8080;
host { allow lan tcp 22; allow any icmp; }
`,
  "published open, no host block": `docker { version 20.10; iptables off; userland-proxy off; published open; }
zone lan { interface eth1; }
`,
  "wan to web, lan to db, host policy accept but ssh only from wan": `docker { version 20.10; iptables off; userland-proxy off; }
zone wan { interface eth0; from 198.51.100.0/24; }
zone lan { interface eth1; }
allow wan to web;
allow lan to db:5432, api:9000;
host { policy accept; allow wan tcp 2222; }
`,
  "a source narrower than the zone; forward lan to wan": `docker { version 20.10; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; }
allow lan from 192.168.77.2 to web:8080;
allow wan from 198.51.100.99 to db:5432;
forward lan to wan;
host { allow lan from 192.168.77.0/28 tcp 22, 2222; }
`,
};

type From = "lan" | "wan";
const PACKETS: [From, string, number][] = [];
for (const from of ["lan", "wan"] as const) {
  const host = from === "lan" ? ADDR.hostLan : ADDR.hostWan;
  for (const port of [22, 2222, 8080, 5432, 9000]) PACKETS.push([from, host, port]);
  PACKETS.push([from, "172.17.0.2", 80], [from, "172.17.0.3", 5432]);
  // The same host services and published ports over IPv6.
  const host6 = from === "lan" ? ADDR.hostLan6 : ADDR.hostWan6;
  for (const port of [22, 2222, 8080]) PACKETS.push([from, host6, port]);
}

describeDocker("the packet evaluator agrees with the kernel", () => {
  let lab: Lab;
  const ipv6Rows: string[] = [];
  beforeAll(async () => {
    lab = await startLab({
      userlandProxy: false,
      linkIpv6: true,
      containers: [
        { name: "web", publish: ["8080:80"], listen: ["tcp:80"] },
        { name: "db", publish: ["5432:5432"], listen: ["tcp:5432"] },
        { name: "api", publish: ["127.0.0.1:9000:9000"], listen: ["tcp:9000"] },
      ],
    });
    await lab.serveOnHost(22, "sshd");
    await lab.serveOnHost(2222, "alt");
  }, LAB_TIMEOUT);
  afterAll(async () => {
    await lab?.stop();
  }, LAB_TIMEOUT);

  for (const [name, text] of Object.entries(POLICIES)) {
    it(name, async () => {
      // The facts are the lab's: its containers as a policy would declare them.
      const declared = `${text}container web { network bridge ${lab.containers.web!.ip}; publish 8080:80; }
container db { network bridge ${lab.containers.db!.ip}; publish 5432:5432; }
container api { network bridge ${lab.containers.api!.ip}; publish 127.0.0.1:9000:9000; }
`;
      const v4 = compile(declared, { format: "iptables" });
      const v6 = compile(declared, { format: "ip6tables" });
      const r = compile(declared, { noRender: true });
      expect(r.ok, formatDiagnostics(r.diagnostics, "p.dw", declared)).toBe(true);
      lab.reset();
      lab.load(v4.output!, v6.output!);
      const local = [ADDR.hostLan, ADDR.hostWan, ADDR.bridgeGw];
      const rows: string[] = [];
      const kernel = await Promise.all(PACKETS.map(([from, dst, port]) => lab.probe(from, dst, port, "tcp", { timeout: 0.7 })));
      PACKETS.forEach(([from, dst, port], i) => {
        const family = dst.includes(":") ? 6 : 4;
        const pk: Packet = {
          family,
          in: from === "lan" ? "eth1" : "eth0",
          src: family === 6 ? (from === "lan" ? ADDR.lan6 : ADDR.wan6) : from === "lan" ? ADDR.lan : ADDR.wan,
          dst,
          proto: "tcp",
          sport: 40000,
          dport: port,
          state: "NEW",
          local: family === 6 ? [ADDR.hostLan6, ADDR.hostWan6] : local,
          routes: [{ dst: "172.17.0.0/16", dev: "docker0" }],
        };
        const v = evaluate(r.generated!.rulesets[family]!, pk);
        // A connection opens when the rules accept it and something listens where it goes.
        const listening = v.path === "input" ? [22, 2222].includes(port) : true;
        const predicted = v.verdict === "ACCEPT" && listening ? "open" : "closed";
        rows.push(`${from} → ${dst}:${port}: evaluator ${predicted} (${v.verdict}${v.dnat ? ` via DNAT to ${v.dnat.addr}` : ""}), kernel ${kernel[i]!.open ? "open" : "closed"}`);
      });
      const disagree = rows.filter((row) => !/evaluator (\w+) .*kernel \1$/.test(row));
      // IPv6 too: something open and something closed among its packets, over all policies.
      ipv6Rows.push(...rows.filter((row) => row.includes("2001:db8")));
      expect(disagree, rows.join("\n")).toEqual([]);
      // Not a table of "closed": each policy opens something and closes something.
      expect(rows.some((row) => row.endsWith("kernel open"))).toBe(true);
      expect(rows.some((row) => row.endsWith("kernel closed"))).toBe(true);
    }, LAB_TIMEOUT);
  }

  it("the IPv6 packets were not all alike", () => {
    expect(ipv6Rows.length).toBe(Object.keys(POLICIES).length * 6);
    expect(ipv6Rows.some((row) => row.endsWith("kernel open"))).toBe(true);
    expect(ipv6Rows.some((row) => row.endsWith("kernel closed"))).toBe(true);
  });
});

describe("the packet evaluator, cases the lab does not probe", () => {
  const policy = `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
host { allow lan tcp 22; }
`;
  const rs = compile(policy, { noRender: true }).generated!.rulesets[4]!;
  const base: Packet = { family: 4, in: "eth1", src: "192.168.1.5", dst: "192.168.1.1", proto: "tcp", sport: 40000, dport: 22, state: "NEW", local: ["192.168.1.1"], routes: [{ dst: "172.17.0.0/16", dev: "docker0" }] };

  test.each([
    ["ssh from the lan", {}, "ACCEPT", "input"],
    ["ssh from elsewhere on the lan interface", { src: "10.1.1.1" }, "DROP", "input"],
    ["an established connection", { src: "10.1.1.1", state: "ESTABLISHED" }, "ACCEPT", "input"],
    ["the published port, DNAT'd to web", { dport: 8080 }, "ACCEPT", "forward"],
    ["the published port from outside the zone", { dport: 8080, src: "10.1.1.1" }, "DROP", "forward"],
    ["loopback", { in: "lo", src: "127.0.0.1", dst: "127.0.0.1", dport: 5000 }, "ACCEPT", "input"],
  ] as const)("%s", (_name, change, verdict, path) => {
    const v = evaluate(rs, { ...base, ...change });
    expect([v.verdict, v.path]).toEqual([verdict, path]);
  });

  test("says which rule decided, and the policy when none did", () => {
    expect(evaluate(rs, base).decided).toMatchObject({ table: "filter", chain: "INPUT", index: 2 });
    expect(evaluate(rs, { ...base, src: "10.1.1.1" }).decided).toEqual({ table: "filter", chain: "INPUT", index: -1 });
  });

  test("rules read back from iptables-save text: a goto, or an ICMP type with a code, is 'unknown', not a guess", () => {
    const saved = (rule: string) => toRuleset(parseSave(`*filter\n:INPUT DROP [0:0]\n:f2b - [0:0]\n${rule}\n-A INPUT -p icmp -j ACCEPT\nCOMMIT\n`), 4);
    const ping: Packet = { ...base, proto: "icmp", dport: undefined, icmpType: 8 };
    expect(evaluate(saved("-A INPUT -p tcp -g f2b"), base)).toMatchObject({ verdict: "unknown", why: "target -g f2b" });
    expect(evaluate(saved("-A INPUT -p icmp -m icmp --icmp-type 8/0 -j DROP"), ping)).toMatchObject({ verdict: "unknown", why: "icmp type 8/0" });
    // A match module that takes no options (a review: read as nothing, so the rule held for every packet): unknown, naming it.
    expect(evaluate(saved("-A INPUT -m socket -j DROP"), base)).toMatchObject({ verdict: "unknown", why: "-m socket" });
    expect(evaluate(saved("-A INPUT -p tcp -m tcp -j DROP"), base)).toMatchObject({ verdict: "DROP", decided: { index: 0 } });
    expect(evaluate(saved("-A INPUT -p icmp -m icmp --icmp-type echo-request -j DROP"), ping)).toMatchObject({ verdict: "DROP", decided: { index: 0 } });
    expect(evaluate(saved("-A INPUT -p icmp -m icmp --icmp-type 0 -j DROP"), ping)).toMatchObject({ verdict: "ACCEPT", decided: { index: 1 } });
    expect(evaluate(saved("-A INPUT -m iprange --src-range 192.168.1.1-192.168.1.9 -j DROP"), base)).toMatchObject({ verdict: "DROP" });
    expect(evaluate(saved("-A INPUT -m iprange ! --src-range 192.168.1.1-192.168.1.9 -j DROP"), base)).toMatchObject({ verdict: "DROP", decided: { index: -1 } });
  });

  test("targets that only mark or note the packet decide nothing; NOTRACK makes it UNTRACKED (and skips nat)", () => {
    const rs = (raw: string, input: string) =>
      toRuleset(parseSave(`*raw\n:PREROUTING ACCEPT [0:0]\n${raw}\nCOMMIT\n*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-xmark 0x1/0xffffffff\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n${input}\nCOMMIT\n`), 4);
    const ssh = (raw: string) => evaluate(rs(raw, "-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT"), base);
    expect(ssh("-A PREROUTING -p tcp -j LOG")).toMatchObject({ verdict: "ACCEPT", decided: { chain: "INPUT", index: 1 } });
    expect(ssh("-A PREROUTING -p tcp -j CT --notrack")).toMatchObject({ verdict: "ACCEPT", decided: { chain: "INPUT", index: 0 } });
    expect(ssh("-A PREROUTING -p tcp -j NOTRACK")).toMatchObject({ verdict: "ACCEPT", decided: { chain: "INPUT", index: 0 } });
    expect(ssh("-A PREROUTING -p tcp -j CT --zone 1")).toMatchObject({ verdict: "unknown", why: "target CT --zone" });
    expect(ssh("-A PREROUTING -p tcp -m tcp --dport 22 -j DROP")).toMatchObject({ verdict: "DROP", decided: { table: "raw", chain: "PREROUTING", index: 0 } });
  });

  test("the kernel's semantics at the edges (review findings)", () => {
    const rs = (text: string) => toRuleset(parseSave(text), 4);
    // A RETURN in a built-in raw/mangle chain falls to that chain's policy.
    expect(evaluate(rs("*mangle\n:PREROUTING DROP [0:0]\n-A PREROUTING -p tcp -m tcp --dport 22 -j RETURN\nCOMMIT\n"), base)).toMatchObject({ verdict: "DROP", decided: { table: "mangle", index: -1 } });
    // --ctorigdstport is the port first addressed, DNAT or not.
    const input = (rule: string) => rs(`*filter\n:INPUT ACCEPT [0:0]\n${rule}\nCOMMIT\n`);
    expect(evaluate(input("-A INPUT -p tcp -m conntrack --ctorigdstport 22 -j DROP"), base)).toMatchObject({ verdict: "DROP", decided: { index: 0 } });
    expect(evaluate(input("-A INPUT -p tcp -m conntrack ! --ctorigdstport 22 -j DROP"), base)).toMatchObject({ verdict: "ACCEPT", decided: { index: -1 } });
    // A rule whose target only notes the packet is not read at all (its match would be 'unknown').
    expect(evaluate(input("-A INPUT -m limit --limit 5/min -j LOG --log-prefix \"-IN- \"\n-A INPUT -j DROP"), base)).toMatchObject({ verdict: "DROP", decided: { index: 1 } });
    // --syn (saved as --tcp-flags FIN,SYN,RST,ACK SYN): a new connection's first packet is one.
    expect(evaluate(input("-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP"), base)).toMatchObject({ verdict: "DROP", decided: { index: 0 } });
    expect(evaluate(input("-A INPUT -p tcp -m tcp --tcp-flags SYN,ACK ACK -j DROP"), base)).toMatchObject({ verdict: "ACCEPT" });
    expect(evaluate(input("-A INPUT -p tcp -m tcp --tcp-flags SYN,ACK ACK -j DROP"), { ...base, state: "ESTABLISHED" })).toMatchObject({ verdict: "unknown" });
    // A DNAT to a range of addresses or ports: 'unknown', not a crash.
    const nat = (to: string) => rs(`*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 22 -j DNAT --to-destination ${to}\nCOMMIT\n`);
    for (const to of ["10.0.3.2-10.0.3.3", "172.17.0.2:22-23", ":2222"]) expect(evaluate(nat(to), base)).toMatchObject({ verdict: "unknown", why: `DNAT --to-destination ${to}` });
    // addrtype LOCAL in filter looks at the address after DNAT.
    const dnatted = rs("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 22 -j DNAT --to-destination 172.17.0.2:22\nCOMMIT\n*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m addrtype --dst-type LOCAL -j DROP\nCOMMIT\n");
    expect(evaluate(dnatted, base)).toMatchObject({ verdict: "ACCEPT", path: "forward" });
  });

  test("what it cannot read exactly is 'unknown': a mask that is not a prefix, a module given twice; a cut-short save is noticed", () => {
    const input = (rule: string) => toRuleset(parseSave(`*filter\n:INPUT DROP [0:0]\n${rule}\nCOMMIT\n`), 4);
    expect(evaluate(input("-A INPUT -s 192.0.0.0/255.0.255.0 -j ACCEPT"), base)).toMatchObject({ verdict: "unknown", why: "the address mask 192.0.0.0/255.0.255.0" });
    expect(evaluate(input("-A INPUT -m conntrack --ctstate NEW -m limit --limit 3/min -m conntrack --ctorigdstport 22 -j ACCEPT"), base)).toMatchObject({ verdict: "unknown", why: "-m conntrack given twice in one rule" });
    expect(isWholeSave("*filter\n:INPUT DROP [0:0]\nCOMMIT\n# Completed\n")).toBe(true);
    expect(isWholeSave("")).toBe(true);
    expect(isWholeSave("*filter\n:INPUT DROP [0:0]\n-A INPUT -s 10.")).toBe(false);
    expect(isWholeSave("*filter\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n")).toBe(false);
  });

  test("two-word options and text values read back whole", () => {
    const r = parseSave("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j SET --add-set f2b src\n-A INPUT -j SET --add-set f2b dst\n-A INPUT -j LOG --log-prefix \"-IN- \"\nCOMMIT\n").get("filter")!.chains.get("INPUT")!.rules;
    expect(r[0]!.key).not.toBe(r[1]!.key);
    expect(targetOptionsView(r[0]!.toRule().targetOptions)).toEqual([{ name: "add-set", value: "f2b src" }]);
    expect(targetOptionsView(r[2]!.toRule().targetOptions)).toEqual([{ name: "log-prefix", value: "-IN- " }]);
  });

  test("a match it does not know is 'unknown', not a guess", () => {
    // (A copy of the chains, not a structured clone: the IR's values are typed, with methods.)
    const strange = { ...rs, tables: rs.tables.map((t) => ({ ...t, chains: t.chains.map((c) => ({ ...c, rules: [...c.rules] })) })) };
    strange.tables.find((t) => t.name === "filter")!.chains.find((c) => c.name === "INPUT")!.rules.unshift({ matches: [{ kind: "other", module: "recent", options: [{ name: "rcheck" }] }], target: "DROP" });
    expect(evaluate(strange, base)).toMatchObject({ verdict: "unknown", why: "-m recent --rcheck" });
  });
});
