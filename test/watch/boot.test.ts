// The boot ruleset (issue 26, item 3), without a kernel: no rule for any one container, other
// tools' chains kept; with iptables on, Docker's own per-container rules left out too.
import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { bootFacts, bootSave } from "../../src/watch/boot.js";

const state = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8"));
const dockerWrote = readFileSync(new URL("../facts/corpus/publish-tcp/iptables.v4", import.meta.url), "utf8");
const F2B = ":f2b-sshd - [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd\n-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable\n";

for (const mode of ["off", "on"] as const) {
  test(`iptables ${mode}: the saved rules hold no DNAT, no allow to a container's port, no container's hairpin; fail2ban's chain and jump stay`, () => {
    const policy = `docker { version 20.10; iptables ${mode}; userland-proxy off; }\nzone wan { interface eth0; }\nallow wan to web:8080;\n`;
    const now = compile(policy, { format: "iptables", facts: { raw: state, source: "s.json" } });
    expect(now.ok).toBe(true);
    // What is loaded: dockwall's rules (over Docker's own with iptables on), and fail2ban's.
    const loaded = (mode === "on" ? dockerWrote : now.output!).replace(/^(:OUTPUT ACCEPT \[0:0\]\n)/m, `$1${F2B}`);
    expect(loaded).toMatch(/-j DNAT --to-destination 172\.17\.0\.2:80/);
    const boot = compile(policy, { noRender: true, facts: bootFacts({ raw: state, source: "s.json" }), factsErrors: "warn" });
    expect(boot.ok).toBe(true);
    const saved = bootSave(loaded, boot.generated!.rulesets[4]!, { ownsInput: false });
    expect(saved).not.toMatch(/-j DNAT|--ctorigdstport|172\.17\.0\.2\/32/);
    expect(saved).toContain("-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd\n");
    expect(saved).toContain("-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable\n");
    expect(saved).toContain("-A DOCKER-USER -o docker0 -j DROP\n");
    expect(saved).toContain("-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n");
  });
}

test("IPv6 (dockerd --ipv6 with ip6tables): the saved IPv6 rules hold no DNAT and no allow to a container's IPv6 address either", () => {
  const v6state = JSON.parse(readFileSync(new URL("../facts/corpus/ipv6-ip6tables/state.json", import.meta.url), "utf8"));
  for (const mode of ["off", "on"] as const) {
    const policy = `docker { version 20.10; iptables ${mode}; ip6tables on; userland-proxy off; }\nzone wan { interface eth0; }\nallow wan to web:8080;\n`;
    const now = compile(policy, { format: "ip6tables", facts: { raw: v6state, source: "s.json" } });
    expect(now.ok).toBe(true);
    const loaded = mode === "on" ? readFileSync(new URL("../facts/corpus/ipv6-ip6tables/iptables.v6", import.meta.url), "utf8") : now.output!;
    expect(loaded).toMatch(/-j DNAT --to-destination \[2001:db8:1::/);
    const boot = compile(policy, { noRender: true, facts: bootFacts({ raw: v6state, source: "s.json" }), factsErrors: "warn" });
    expect(boot.ok).toBe(true);
    const saved = bootSave(loaded, boot.generated!.rulesets[6]!, { ownsInput: false });
    expect(saved).not.toMatch(/-j DNAT|--ctorigdstport|2001:db8:1::[0-9a-f:]*\/128/);
    expect(saved).toMatch(/^-A DOCKER-USER -o docker0 -j DROP$/m);
  }
});
