// The lockout guard, in process: SSH_CONNECTION and the host's addresses in, a diagnostic
// pointing into the policy out (or none). The namespace tests (apply.test.ts) run it for real.
import { describe, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { lockout, parseIpAddr, sshPacket } from "../../src/apply/guard.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import { reconcileStep } from "../../src/watch/reconcile.js";

const IP_ADDR = `1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 198.51.100.1/24 brd 198.51.100.255 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet6 2001:db8::1/64 scope global \\       valid_lft forever preferred_lft forever
3: eth1@if4    inet 192.168.1.1/24 brd 192.168.1.255 scope global eth1\\       valid_lft forever preferred_lft forever
`;

const POLICY = `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
zone admin { from 203.0.113.7; }
host {
  allow lan tcp 22;
}
`;

function guard(policy: string, ssh: string): string {
  const r = compile(policy, { noRender: true });
  const pk = sshPacket(ssh, parseIpAddr(IP_ADDR));
  if (typeof pk === "string") return pk;
  const d = lockout(r.policy!, r.generated!.rulesets[pk.family], pk);
  return d ? formatDiagnostics([d], "host.dw", policy) : "accepted";
}

/** As apply runs it: the compiled rules laid over what is loaded (`live`, iptables-save text). */
function guardOver(policy: string, ssh: string, live: string): string {
  const r = compile(policy, { noRender: true });
  expect(r.ok, formatDiagnostics(r.diagnostics, "host.dw", policy)).toBe(true);
  const pk = sshPacket(ssh, parseIpAddr(IP_ADDR));
  if (typeof pk === "string") return pk;
  const step = reconcileStep(parseSave(live), r.generated!.rulesets[pk.family]!, { ownsInput: r.policy!.host !== undefined });
  const d = lockout(r.policy!, toRuleset(step.after, pk.family), pk);
  return d ? formatDiagnostics([d], "host.dw", policy) : "accepted";
}

describe("the lockout guard", () => {
  test("reads `ip -o addr show`", () => {
    expect(parseIpAddr(IP_ADDR)).toEqual([
      { iface: "lo", cidr: "127.0.0.1/8" },
      { iface: "eth0", cidr: "198.51.100.1/24" },
      { iface: "eth0", cidr: "2001:db8::1/64" },
      { iface: "eth1", cidr: "192.168.1.1/24" },
    ]);
  });

  test("a session the host block admits", () => {
    expect(guard(POLICY, "192.168.1.50 51000 192.168.1.1 22")).toBe("accepted");
  });

  test("a session it does not: the host block, why, and the rule that would admit it (a zone that holds the client)", () => {
    expect(guard(POLICY, "203.0.113.7 51000 198.51.100.1 22")).toBe(
      "host.dw:4:1: error: the new rules would not accept your SSH session's next connection (203.0.113.7 → 198.51.100.1:22 on eth0): no rule accepts it, and INPUT's policy is DROP\n" +
        "4 | host {\n" +
        "  | ^^^^^^\n" +
        "  = help: add 'allow admin tcp 22;' to the host block (zone 'admin' holds 203.0.113.7 on eth0); or apply anyway with --force\n" +
        "  = note: SSH_CONNECTION says this session came from 203.0.113.7\n",
    );
  });

  test("SSH to a port a container publishes: the connection would go to the container", () => {
    const policy = POLICY.replace("host {", "container git { network bridge 172.17.0.2; publish 22:22; }\nallow lan to git:22;\nhost {");
    expect(guard(policy, "192.168.1.50 51000 192.168.1.1 22")).toMatch(/: it would be forwarded to 172\.17\.0\.2:22 \(a container publishes port 22\)\n/);
  });

  test("iptables on: Docker's own rules count too (its DNAT of a published port 22 takes the session)", () => {
    const facts = "container git { network bridge 172.17.0.2; publish 22:22; }\n";
    // What dockerd wrote: Docker's chains alone, as dockwall reproduces them.
    const docker = compile(`docker { version 20.10; iptables off; published open; userland-proxy off; }\n${facts}`, { format: "iptables" }).output!;
    const policy = POLICY.replace("iptables off", "iptables on").replace("host {", `${facts}allow lan to git:22;\nhost {`);
    // dockwall's own rules (INPUT, DOCKER-USER) admit the session; Docker's nat sends it to git.
    expect(guard(policy, "192.168.1.50 51000 192.168.1.1 22")).toBe("accepted");
    expect(guardOver(policy, "192.168.1.50 51000 192.168.1.1 22", docker)).toMatch(/: it would be forwarded to 172\.17\.0\.2:22 \(a container publishes port 22\)\n/);
  });

  test("other tools' chains and jumps count too: the rule that decides may be theirs", () => {
    const live = "*filter\n:INPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n-A f2b-sshd -s 192.168.1.50/32 -j REJECT --reject-with icmp-port-unreachable\n-A f2b-sshd -j RETURN\nCOMMIT\n";
    expect(guardOver(POLICY, "192.168.1.50 51000 192.168.1.1 22", live)).toMatch(/: rejected by filter f2b-sshd rule 1: -A f2b-sshd -s 192\.168\.1\.50\/32 -j REJECT --reject-with icmp-port-unreachable\n/);
    expect(guardOver(POLICY, "192.168.1.51 51000 192.168.1.1 22", live)).toBe("accepted");
  });

  test("no host block: INPUT is the host's own, nothing to refuse", () => {
    expect(guard(POLICY.replace(/host \{[^}]*\}\n/, ""), "203.0.113.7 51000 198.51.100.1 22")).toBe("accepted");
  });

  test("what it cannot check is said", () => {
    expect(guard(POLICY, "garbage")).toBe("SSH_CONNECTION='garbage' is not 'CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT'");
    expect(guard(POLICY, "192.168.1.50 51000 10.9.9.9 22")).toBe("no interface holds the SSH server address 10.9.9.9 (SSH_CONNECTION)");
  });
});
