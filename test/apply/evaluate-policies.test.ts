// The packet evaluator against the kernel, for every example and golden policy: each policy's
// own world is built in namespaces (test/lab/policylab.ts: its interfaces, neighbours sending
// from the addresses its zones and rules name, its bridges and containers), its rules are
// loaded as a user loads them, and a table of packets — to the host's services and published
// ports (DNAT'd to containers), to 127.0.0.1, straight to containers, between neighbours, from
// containers out, ping; IPv4 and IPv6 — is sent for real. The evaluator must predict every one.
// It walks what apply's lockout guard walks: the compiled rules laid over what was loaded
// before (with "iptables": true, Docker's own chains), and with iptables off also the
// compiled rules alone.
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { evaluate, type Verdict } from "../../src/analysis/evaluate.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import { reconcileStep } from "../../src/watch/reconcile.js";
import type { Ruleset } from "../../src/ir/ruleset.js";
import { describeKernel } from "../lab/kernel.js";
import { dockersOwn, listening, packetOf, planPolicyLab, startPolicyLab, type LabProbe, type PolicyLabPlan } from "../lab/policylab.js";

const root = new URL("../../", import.meta.url).pathname;
const POLICIES: [string, string][] = [
  ...readdirSync(`${root}examples`)
    .filter((f) => f.endsWith(".dw"))
    .map((f): [string, string] => [`examples/${f}`, readFileSync(`${root}examples/${f}`, "utf8")]),
  ...readdirSync(`${root}test/golden`, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d): [string, string] => [`test/golden/${d.name}/policy.dw`, readFileSync(`${root}test/golden/${d.name}/policy.dw`, "utf8")]),
];

function describeProbe(pr: LabProbe): string {
  const from = "iface" in pr.from ? `${pr.from.iface} ${pr.src}` : "container" in pr.from ? `container ${pr.from.container} ${pr.src}` : `host ${pr.src}`;
  const dst = pr.dst.includes(":") ? `[${pr.dst}]` : pr.dst;
  return `${from} → ${pr.proto} ${dst}${pr.port ? `:${pr.port}` : ""}`;
}

function predict(plan: PolicyLabPlan, rs: Ruleset, pr: LabProbe): { open: boolean | "unknown"; v: Verdict } {
  const v = evaluate(rs, packetOf(plan, pr));
  if (v.verdict === "unknown") return { open: "unknown", v };
  return { open: v.verdict === "ACCEPT" && listening(plan, pr, v.path, v.dnat ?? { addr: pr.dst, port: pr.port }), v };
}

const all: string[] = [];

describeKernel("the packet evaluator agrees with the kernel, for every example and golden policy", () => {
  afterAll(() => {
    // Over all policies: DNAT'd packets and IPv6 ones, each both admitted and refused.
    if (all.length === 0) return;
    const dnat = all.filter((r) => r.includes(" DNAT "));
    const v6 = all.filter((r) => r.includes("["));
    for (const rows of [dnat, v6]) {
      expect(rows.some((r) => r.endsWith("kernel open"))).toBe(true);
      expect(rows.some((r) => r.endsWith("kernel closed"))).toBe(true);
    }
  });

  it("covers every example and golden policy", () => {
    expect(POLICIES.map(([n]) => n)).toEqual(expect.arrayContaining(["examples/web-host.dw", "examples/coexist.dw", "test/golden/ipv6-dual-stack/policy.dw"]));
    expect(POLICIES.length).toBeGreaterThanOrEqual(10);
  });

  for (const [name, text] of POLICIES) {
    it(name, async () => {
      const r = compile(text, { noRender: true });
      expect(r.ok, formatDiagnostics(r.diagnostics, name, text)).toBe(true);
      const p = r.policy!;
      const plan = planPolicyLab(p);
      const lab = await startPolicyLab(plan);
      try {
        const before: Record<4 | 6, string> = { 4: "", 6: "" };
        if (p.docker.iptables) {
          // dockerd's own chains first, then the policy's, as its output says: --noflush.
          const own = dockersOwn(text, p);
          for (const f of [4, 6] as const) {
            const out = compile(own, { format: f === 4 ? "iptables" : "ip6tables" });
            expect(out.ok, formatDiagnostics(out.diagnostics, "docker's own", own)).toBe(true);
            const loaded = lab.host.restore(f, out.output!);
            expect(loaded.stderr).toBe("");
            before[f] = lab.host.save(f);
          }
        }
        for (const f of [4, 6] as const) {
          const out = compile(text, { format: f === 4 ? "iptables" : "ip6tables" });
          const loaded = lab.host.restore(f, out.output!, { noflush: p.docker.iptables });
          expect(loaded.stderr).toBe("");
        }
        // What apply's guard walks: the compiled rules over what was loaded before.
        const after = Object.fromEntries(
          ([4, 6] as const).map((f) => [f, toRuleset(reconcileStep(parseSave(before[f]), r.generated!.rulesets[f]!, { ownsInput: p.host !== undefined }).after, f)]),
        ) as Record<4 | 6, Ruleset>;
        const kernel = await lab.probe(plan.probes);
        const rows: string[] = [];
        const disagree: string[] = [];
        plan.probes.forEach((pr, i) => {
          const a = predict(plan, after[pr.family], pr);
          const k = kernel[i]!.open ? "open" : "closed";
          const shown = a.open === "unknown" ? `unknown (${a.v.why})` : a.open ? "open" : "closed";
          const via = a.v.dnat ? ` DNAT to ${a.v.dnat.addr}:${a.v.dnat.port ?? pr.port}` : "";
          const row = `${describeProbe(pr)}: evaluator ${shown} (${a.v.verdict} ${a.v.path}${via}), kernel ${k}`;
          rows.push(row);
          if (shown !== k) disagree.push(row);
          if (!p.docker.iptables) {
            // The compiled rules alone say the same (nothing else was loaded).
            const c = predict(plan, r.generated!.rulesets[pr.family]!, pr);
            if (c.open !== a.open) disagree.push(`${describeProbe(pr)}: compiled rules ${c.open}, after-state ${a.open}`);
          }
        });
        all.push(...rows);
        expect(disagree, `${disagree.length} of ${rows.length} disagree:\n${disagree.join("\n")}\n\nall:\n${rows.join("\n")}`).toEqual([]);
        // Not a table of one answer: each policy admits something and refuses something.
        expect(rows.some((row) => row.endsWith("kernel open"))).toBe(true);
        expect(rows.some((row) => row.endsWith("kernel closed"))).toBe(true);
      } finally {
        await lab.stop();
      }
    }, 120_000);
  }

  it("with other tools' rules loaded first (fail2ban, a raw NOTRACK, a mangle MARK), loaded as apply loads: the guard's view of the kernel, IPv4 and IPv6", async () => {
    const text = readFileSync(`${root}examples/web-host.dw`, "utf8");
    const r = compile(text, { noRender: true });
    const plan = planPolicyLab(r.policy!);
    const lab = await startPolicyLab(plan);
    try {
      const others = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 5353 -j CT --notrack
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j MARK --set-xmark 0x1/0xffffffff
COMMIT
*filter
:INPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22,8080 -j f2b-sshd
-A f2b-sshd -s 192.168.1.2/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
`;
      // The same kinds for IPv6: fail2ban rejects the lan neighbour's IPv6 address on ssh, udp 5353 is untracked.
      const others6 = others
        .replace("-s 192.168.1.2/32 -j REJECT --reject-with icmp-port-unreachable", "-s fd00:200:1::2/128 -j REJECT --reject-with icmp6-port-unreachable");
      const rows: string[] = [];
      for (const [f, seed] of [[4, others], [6, others6]] as const) {
        expect(lab.host.restore(f, seed).stderr).toBe("");
        const step = reconcileStep(parseSave(lab.host.save(f)), r.generated!.rulesets[f]!, { ownsInput: true });
        expect(lab.host.restore(f, step.text, { noflush: true }).stderr).toBe("");
        const after = toRuleset(step.after, f);
        const probes = plan.probes.filter((pr) => pr.family === f);
        const kernel = await lab.probe(probes);
        rows.push(
          ...probes.map((pr, i) => {
            const a = predict(plan, after, pr);
            const shown = a.open === "unknown" ? `unknown (${a.v.why})` : a.open ? "open" : "closed";
            return `${describeProbe(pr)}: evaluator ${shown} (${a.v.verdict} ${a.v.path}${a.v.decided?.chain ? ` by ${a.v.decided.table} ${a.v.decided.chain}` : ""}), kernel ${kernel[i]!.open ? "open" : "closed"}`;
          }),
        );
      }
      const disagree = rows.filter((row) => !/evaluator (open|closed) .*kernel \1$/.test(row));
      expect(disagree, rows.join("\n")).toEqual([]);
      // fail2ban's REJECT decided some (ssh and 8080 from 192.168.1.2), the untracked udp went to the host's proxy.
      expect(rows).toContainEqual(expect.stringMatching(/^eth1 192\.168\.1\.2 → tcp 10\.200\.1\.1:22: evaluator closed \(REJECT input by filter f2b-sshd\), kernel closed$/));
      expect(rows).toContainEqual(expect.stringMatching(/^eth1 192\.168\.1\.253 → tcp 10\.200\.1\.1:22: evaluator open .*kernel open$/));
      expect(rows).toContainEqual(expect.stringMatching(/^eth1 192\.168\.1\.2 → udp 10\.200\.1\.1:5353: evaluator open \(ACCEPT input by filter INPUT\), kernel open$/));
      expect(rows).toContainEqual(expect.stringMatching(/^eth1 fd00:200:1::2 → tcp \[fd00:200:1::1\]:22: evaluator closed \(REJECT input by filter f2b-sshd\), kernel closed$/));
      expect(rows).toContainEqual(expect.stringMatching(/^eth1 fd00:200:1::2 → udp \[fd00:200:1::1\]:5353: evaluator open \(ACCEPT input by filter INPUT\), kernel open$/));
    } finally {
      await lab.stop();
    }
  }, 120_000);
});

describe("the policy lab's plan", () => {
  it("places each zone's addresses behind its interface and probes what the policy names", () => {
    const text = readFileSync(`${root}examples/web-host.dw`, "utf8");
    const plan = planPolicyLab(compile(text, { noRender: true }).policy!);
    expect(plan.ifaces.map((f) => [f.name, f.sources])).toEqual([
      ["eth0", ["203.0.113.2", "203.0.113.253"]],
      ["eth1", ["192.168.1.2", "192.168.1.253"]],
      ["dwx0", ["203.0.113.7"]],
    ]);
    expect(plan.bridges.map((b) => [b.name, b.addrs])).toEqual([
      ["docker0", ["172.17.0.1/16"]],
      ["br-app", ["172.20.0.1/16"]],
    ]);
    expect(plan.hostListeners).toContainEqual({ bind: "127.0.0.1", proto: "tcp", port: 9000 });
    expect(plan.probes.map(describeProbe)).toEqual(
      expect.arrayContaining([
        "eth1 192.168.1.2 → tcp 10.200.1.1:8080",
        "eth1 192.168.1.2 → tcp 127.0.0.1:9000",
        "eth1 192.168.1.2 → tcp 172.17.0.2:80",
        "eth0 203.0.113.2 → udp 10.200.0.1:5353",
        "dwx0 203.0.113.7 → tcp 10.200.2.1:22",
        "eth1 fd00:200:1::2 → icmp [fd00:200:1::1]",
        "container web 172.17.0.2 → tcp 10.200.0.2:7000",
      ]),
    );
  });
});
