// --format nft and bridges dockwall does not know yet, with packets (a review found the first
// translation spared whatever came in on an interface named br-*: a host's own br-lan then
// reached a Docker network created while no watcher ran). A router with the host's bridge
// br-lan (a client behind it) and a Docker bridge br-9f3c that the policy does not know (a
// container behind it, listening): the client must not get through with dockwall's table
// loaded, as it does not with the iptables output; with no rules at all it does. IPv4 and IPv6.
import { expect, it } from "vitest";
import { compile } from "../../src/compile.js";
import { createNetns, deleteNetns, describeKernel, type Netns } from "../lab/kernel.js";
import { run } from "../lab/proc.js";

const POLICY = `docker { version 20.10; iptables on; userland-proxy off; }
zone lan { interface br-lan; from 192.168.10.0/24; }
network app { bridge br-app; subnet 172.24.0.0/24; subnet fd00:24::/64; }
container web { network app 172.24.0.2, fd00:24::2; publish 80:80; }
allow lan to web:80;
`;

describeKernel("--format nft: a bridge dockwall does not know yet is closed, whatever interface the packet comes in on", () => {
  it("a client behind the host's br-lan does not reach a container on an unknown Docker bridge (nft as iptables), IPv4 and IPv6; without rules it does", async () => {
    const made: Netns[] = [];
    const ns = () => {
      const n = createNetns("-b");
      made.push(n);
      return n;
    };
    try {
      const router = ns();
      const client = ns();
      const ctr = ns();
      const ok = (r: { status: number | null; stderr: string }) => expect(r.stderr).toBe("") as unknown;
      const link = (br: string, peer: Netns, addr: string, gw: string, addr6: string, gw6: string) => {
        const host = `v${br.slice(3, 7)}`;
        ok(router.run(["ip", "link", "add", br, "type", "bridge"]));
        ok(router.run(["ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", peer.name]));
        ok(router.run(["ip", "link", "set", host, "master", br, "up"]));
        ok(router.run(["ip", "addr", "add", `${gw}/24`, "dev", br]));
        ok(router.run(["ip", "link", "set", br, "up"]));
        ok(peer.run(["ip", "addr", "add", `${addr}/24`, "dev", "eth0"]));
        ok(peer.run(["ip", "link", "set", "eth0", "up"]));
        ok(peer.run(["ip", "link", "set", "lo", "up"]));
        ok(peer.run(["ip", "route", "add", "default", "via", gw]));
        ok(router.run(["ip", "-6", "addr", "add", `${gw6}/64`, "dev", br, "nodad"]));
        ok(peer.run(["ip", "-6", "addr", "add", `${addr6}/64`, "dev", "eth0", "nodad"]));
        ok(peer.run(["ip", "-6", "route", "add", "default", "via", gw6]));
      };
      link("br-lan", client, "192.168.10.5", "192.168.10.1", "fd00:10::5", "fd00:10::1");
      link("br-9f3c", ctr, "172.30.0.2", "172.30.0.1", "fd00:30::2", "fd00:30::1");
      ok(router.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
      ok(router.run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]));
      const server = run(["sh", "-c", `nsenter --net=${ctr.path} socat TCP6-LISTEN:8080,ipv6only=0,fork,reuseaddr SYSTEM:'echo ctr' >/dev/null 2>&1 & echo $!`]).stdout.trim();
      const one = (to: string) => {
        for (let i = 0; i < 3; i++) {
          const r = client.run(["socat", "-T1", "-", `TCP:${to}:8080,connect-timeout=1`], "");
          if (r.stdout.includes("ctr")) return "open";
        }
        return "closed";
      };
      // IPv4, then IPv6: the same answer for both, or the two answers.
      const reach = () => {
        const [v4, v6] = [one("172.30.0.2"), one("[fd00:30::2]")];
        return v4 === v6 ? v4 : `IPv4 ${v4}, IPv6 ${v6}`;
      };
      try {
        await new Promise((r) => setTimeout(r, 300));
        expect(reach()).toBe("open");
        const nft = compile(POLICY, { format: "nft" });
        expect(nft.ok).toBe(true);
        ok(router.run(["nft", "-f", "-"], nft.output!));
        expect(reach()).toBe("closed");
        ok(router.run(["nft", "delete", "table", "inet", "dockwall"]));
        expect(reach()).toBe("open");
        // The iptables output of the same policy (dockerd's FORWARD jump to DOCKER-USER stood in for).
        for (const [format, tool] of [["iptables", "iptables"], ["ip6tables", "ip6tables"]] as const) {
          ok(router.run([`${tool}-restore`, "--noflush"], compile(POLICY, { format }).output!));
          ok(router.run([tool, "-I", "FORWARD", "-j", "DOCKER-USER"]));
        }
        expect(reach()).toBe("closed");
      } finally {
        run(["kill", server]);
      }
    } finally {
      for (const n of made) deleteNetns(n.name);
    }
  }, 60_000);
});
