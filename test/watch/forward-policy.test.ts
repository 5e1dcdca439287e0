// iptables on: FORWARD's policy DROP is dockwall's to keep (dockerd leaves ACCEPT when forwarding
// was on before it started), FORWARD's rules are not. What apply and watch load when the kernel
// has it ACCEPT: the policy set, the rules as they are; then nothing more to do.
import { expect, test } from "vitest";
import { mergeForLoad } from "../../src/apply/merge.js";
import { compile } from "../../src/compile.js";
import { computeDiff } from "../../src/live/command.js";
import { parseSave } from "../../src/live/save.js";
import { reconcileStep } from "../../src/watch/reconcile.js";

const POLICY = `docker { version 20.10; iptables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
`;
// What dockerd 20.10 writes in FORWARD for the default bridge, and another tool's rule after it.
const LIVE = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
:LIBVIRT_FWI - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A FORWARD -j LIBVIRT_FWI
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-USER -j RETURN
-A LIBVIRT_FWI -o virbr0 -j REJECT --reject-with icmp-port-unreachable
COMMIT
`;

const forwardRules = (text: string) => text.split("\n").filter((l) => l.startsWith("-A FORWARD "));

test("FORWARD ACCEPT in the kernel: apply's and watch's load set DROP and keep FORWARD's rules; the next reconcile has nothing to do", () => {
  const r = compile(POLICY, { noRender: true });
  expect(r.ok).toBe(true);
  const wanted = r.generated!.rulesets[4]!;
  const live = parseSave(LIVE);
  const merged = mergeForLoad(live, wanted, { ownsInput: false }).text;
  expect(merged).toContain("\n:FORWARD DROP [0:0]\n");
  expect(forwardRules(merged)).toEqual(forwardRules(LIVE));
  const step = reconcileStep(live, wanted, { ownsInput: false });
  expect(step.text).toMatch(/^:FORWARD DROP \[0:0\]$/m);
  // Its policy alone: FORWARD is not flushed and its rules are not written again (a rule another tool adds meanwhile stays).
  expect(step.text).not.toMatch(/^-F FORWARD/m);
  expect(step.text).not.toMatch(/^-A FORWARD /m);
  expect(step.changes.map((c) => `${c.table} ${c.chain}`)).toEqual(["filter FORWARD", "filter DOCKER-USER"]);
  // Loaded: the same rules in FORWARD, its policy DROP; nothing left to change, and diff agrees.
  const after = step.after;
  expect(after.get("filter")!.chains.get("FORWARD")!.policy).toBe("DROP");
  expect(after.get("filter")!.chains.get("FORWARD")!.rules.map((x) => x.text)).toEqual(forwardRules(LIVE));
  expect(reconcileStep(after, wanted, { ownsInput: false }).text).toBe("");
  // (diff leaves out the jump to another tool's chain, as it does the chain.)
  const before = computeDiff(r, { 4: live }, { all: false, ignore: [] });
  expect(before.chains.find((c) => c.chain === "FORWARD")).toMatchObject({ status: "changed", policy: { live: "ACCEPT", wanted: "DROP" }, lines: forwardRules(LIVE).slice(0, 5).map((text, i) => ({ kind: "same", text, live: i + 1, wanted: i + 1 })) });
  expect(before.warnings.filter((w) => w.startsWith("IPv4 FORWARD's policy goes from ACCEPT to DROP"))).toHaveLength(1);
  // IPv6, where dockerd 20.10 (ip6tables off) writes no rules: the warning says so.
  const six = computeDiff(r, { 6: parseSave("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n") }, { all: false, ignore: [] });
  expect(six.warnings.filter((w) => w.startsWith("IPv6 FORWARD's policy goes from ACCEPT to DROP: dockerd writes no rules for this family and leaves it as it is, so the host routes between all its interfaces now; after this deploy it routes only what DOCKER-USER lets through for Docker's networks,"))).toHaveLength(1);
  const done = computeDiff(r, { 4: after }, { all: false, ignore: [] });
  expect(done.chains.filter((c) => c.chain === "FORWARD" || c.chain === "DOCKER-USER")).toEqual([]);
  expect(done.warnings.filter((w) => w.includes("FORWARD's policy"))).toEqual([]);
});

test("ip6tables off: dockerd writes no IPv6 rules, so the IPv6 output's DOCKER-USER accepts what dockerd would let through (its networks' traffic) and sets FORWARD's policy to DROP", () => {
  const v6 = POLICY.replace("container web { network bridge 172.17.0.2; publish 8080:80; }", "network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }\ncontainer web { network app 172.20.0.2, fd00:20::2; publish 8080:80; }").replace("zone lan { interface eth1; }", "zone lan { interface eth1; }\nzone home { interface br-lan; }");
  const out = compile(v6, { format: "ip6tables" }).output!;
  expect(out).toMatch(/^:FORWARD DROP \[0:0\]$/m);
  expect(out.split("\n").filter((l) => l.startsWith("-A DOCKER-USER "))).toEqual([
    "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A DOCKER-USER -i br-app -j ACCEPT",
    "-A DOCKER-USER -d fd00:20::2/128 -i eth1 -o br-app -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j ACCEPT",
    "-A DOCKER-USER -o br-app -j DROP",
    "-A DOCKER-USER -m physdev --physdev-is-bridged -j ACCEPT",
    "-A DOCKER-USER -o br-lan -j RETURN",
    "-A DOCKER-USER -o br-+ -j DROP",
    // No `-i br-+ -j ACCEPT`: a bridge only named like Docker's (a VM's br-vms) is not routed out (a review found it was).
    "-A DOCKER-USER -j RETURN",
  ]);
  // With ip6tables on, dockerd's own rules accept its networks' traffic: DOCKER-USER leaves it to them.
  const on = compile(v6.replace("userland-proxy off;", "userland-proxy off; ip6tables on;"), { format: "ip6tables" }).output!;
  expect(on).toMatch(/^:FORWARD DROP \[0:0\]$/m);
  expect(on).toContain("-A DOCKER-USER -i br-app -j RETURN");
  expect(on).not.toContain("-A DOCKER-USER -i br-+ -j ACCEPT");
  // The --format nft file sets no policy of iptables' and accepts nothing for Docker (its table can only drop).
  const nft = compile(v6, { format: "nft" }).output!;
  expect(nft).not.toMatch(/i(if)?name "br-\+" accept/);
});

test("ip6tables off, DOCKER-USER standing for Docker's rules: an internal network and one without IPv6 are not taken for networks not known yet, and traffic within a bridge passes with published open too (a review)", async () => {
  const { evaluate } = await import("../../src/analysis/evaluate.js");
  const { asLoaded } = await import("../../src/analysis/loaded.js");
  for (const published of ["closed", "open"]) {
    const text = `docker { version 20.10; iptables on; userland-proxy off; published ${published}; }
zone wan { interface eth0; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
network int { bridge br-int; subnet 172.30.0.0/16; subnet fd00:30::/64; internal; }
network v4 { bridge br-v4; subnet 172.31.0.0/16; }
container web { network app 172.20.0.2, fd00:20::2; publish 8080:80; }
container db { network int 172.30.0.2, fd00:30::2; }
`;
    const r = compile(text, { noRender: true });
    expect(r.ok).toBe(true);
    const rs = asLoaded(r.policy!, r.generated!.rulesets)[6]!;
    const routes = [{ dst: "fd00:20::/64", dev: "br-app" }, { dst: "fd00:30::/64", dev: "br-int" }, { dst: "::/0", dev: "eth0" }];
    const verdict = (inIf: string, src: string, dst: string, bridged = false) => evaluate(rs, { family: 6, in: inIf, src, dst, proto: "tcp", sport: 40000, dport: 80, state: "NEW", local: ["2001:db8::1"], routes, bridged }).verdict;
    // The wan to the internal network's container, and that container out to the wan: not routed, open or closed.
    expect([published, verdict("eth0", "2001:db8:9::9", "fd00:30::2")]).toEqual([published, "DROP"]);
    expect([published, verdict("br-int", "fd00:30::2", "2001:db8:9::9")]).toEqual([published, "DROP"]);
    // Within the internal network's bridge, and within any bridge: passes (as before, when FORWARD's policy was ACCEPT).
    expect([published, verdict("br-int", "fd00:30::2", "fd00:30::3", true)]).toEqual([published, "ACCEPT"]);
    expect([published, verdict("br0", "2001:db8:5::2", "2001:db8:5::3", true)]).toEqual([published, "ACCEPT"]);
    // app's container out to the wan: passes; the wan to it: as published says.
    expect([published, verdict("br-app", "fd00:20::2", "2001:db8:9::9")]).toEqual([published, "ACCEPT"]);
    expect([published, verdict("eth0", "2001:db8:9::9", "fd00:20::2")]).toEqual([published, published === "open" ? "ACCEPT" : "DROP"]);
    // A network without IPv6 is not a network not known yet: nothing of it is routed over IPv6.
    expect([published, verdict("br-v4", "fd00:31::2", "2001:db8:9::9")]).toEqual([published, "DROP"]);
  }
});
