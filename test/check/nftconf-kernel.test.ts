// What `check`'s nftables-flush warning says, with packets: on a host whose iptables is
// iptables-nft, dockwall's rules live in nftables tables, and nftables.conf's `flush ruleset`
// (Debian's own file starts with one) removes them — the host then accepts what the policy
// closes. A host (with dockwall's IPv4 and IPv6 rules: only tcp 22 from the lan) and a client
// on its lan: port 8080 is closed, and after `nft -f` of Debian's nftables.conf it is open.
import { expect, it } from "vitest";
import { compile } from "../../src/compile.js";
import { createNetns, deleteNetns, describeKernel, type Netns } from "../lab/kernel.js";
import { run } from "../lab/proc.js";

const POLICY = `docker { version 20.10; iptables on; userland-proxy off; }
zone lan { interface veth0; from 192.168.10.0/24; from fd00:10::/64; }
host { allow lan tcp 22; }
`;
const DEBIAN = `#!/usr/sbin/nft -f

flush ruleset

table inet filter {
\tchain input {
\t\ttype filter hook input priority filter;
\t}
\tchain forward {
\t\ttype filter hook forward priority filter;
\t}
\tchain output {
\t\ttype filter hook output priority filter;
\t}
}
`;

describeKernel("nftables.conf's 'flush ruleset' removes dockwall's iptables-nft rules (the nftables-flush warning)", () => {
  it("port 8080 of the host is closed to the lan with dockwall's rules, and open after nft -f of Debian's nftables.conf, IPv4 and IPv6", async () => {
    const made: Netns[] = [];
    try {
      const host = createNetns("-f");
      made.push(host);
      const client = createNetns("-f");
      made.push(client);
      const ok = (r: { status: number | null; stderr: string }) => expect([r.status, r.stderr]).toEqual([0, ""]) as unknown;
      ok(host.run(["ip", "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", client.name]));
      ok(host.run(["ip", "addr", "add", "192.168.10.1/24", "dev", "veth0"]));
      ok(host.run(["ip", "-6", "addr", "add", "fd00:10::1/64", "dev", "veth0", "nodad"]));
      ok(host.run(["ip", "link", "set", "veth0", "up"]));
      ok(client.run(["ip", "addr", "add", "192.168.10.5/24", "dev", "eth0"]));
      ok(client.run(["ip", "-6", "addr", "add", "fd00:10::5/64", "dev", "eth0", "nodad"]));
      ok(client.run(["ip", "link", "set", "eth0", "up"]));
      const server = run(["sh", "-c", `nsenter --net=${host.path} socat TCP6-LISTEN:8080,ipv6only=0,fork,reuseaddr SYSTEM:'echo host' >/dev/null 2>&1 & echo $!`]).stdout.trim();
      try {
        const reach = () =>
          ["192.168.10.1", "[fd00:10::1]"].map((to) => {
            for (let i = 0; i < 3; i++) if (client.run(["socat", "-T1", "-", `TCP:${to}:8080,connect-timeout=1`], "").stdout.includes("host")) return "open";
            return "closed";
          });
        expect(reach()).toEqual(["open", "open"]);
        for (const [format, restore] of [["iptables", "iptables-restore"], ["ip6tables", "ip6tables-restore"]] as const) {
          const r = compile(POLICY, { format });
          expect(r.ok).toBe(true);
          ok(host.run([restore, "--noflush"], r.output!));
        }
        expect(reach()).toEqual(["closed", "closed"]);
        ok(host.run(["nft", "-f", "-"], DEBIAN));
        expect(host.run(["iptables-save"]).stdout).not.toContain("INPUT DROP");
        expect(reach()).toEqual(["open", "open"]);
      } finally {
        run(["kill", server]);
      }
    } finally {
      for (const n of made) deleteNetns(n.name);
    }
  });
});
