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
  const done = computeDiff(r, { 4: after }, { all: false, ignore: [] });
  expect(done.chains.filter((c) => c.chain === "FORWARD" || c.chain === "DOCKER-USER")).toEqual([]);
  expect(done.warnings.filter((w) => w.includes("FORWARD's policy"))).toEqual([]);
});

test("ip6tables off: dockerd writes no IPv6 rules (its networks' IPv6 passes by FORWARD's policy), so the IPv6 output sets none", () => {
  const r = compile(POLICY, { format: "ip6tables" });
  expect(r.output).not.toMatch(/^:FORWARD /m);
  expect(compile(POLICY.replace("userland-proxy off;", "userland-proxy off; ip6tables on;"), { format: "ip6tables" }).output).toMatch(/^:FORWARD DROP \[0:0\]$/m);
});
