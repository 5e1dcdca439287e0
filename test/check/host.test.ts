// `dockwall check` holds the host's sysctls against what the rules need of it when dockerd
// writes none of its own (`iptables off`): IP forwarding for the --format nft file (Docker 29's
// nftables backend never turns it on, and dockerd does not start without it), br_netfilter for a
// network with icc off. Read from /proc (here, a machine in memory); none read, nothing said.
import { expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { memoryIo } from "../support/io.js";

const POLICY = `docker { version 29.7; iptables off; ip6tables off; userland-proxy off; }
zone lan { interface eth1; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; icc off; }
`;
const proc = (v4: string, v6: string, bridge: boolean, call = "1") => ({
  "/proc/sys/net/ipv4/ip_forward": `${v4}\n`,
  "/proc/sys/net/ipv6/conf/all/forwarding": `${v6}\n`,
  ...(bridge ? { "/proc/sys/net/bridge/bridge-nf-call-iptables": `${call}\n`, "/proc/sys/net/bridge/bridge-nf-call-ip6tables": `${call}\n` } : {}),
});
async function check(args: string[], files: Record<string, string>) {
  const io = memoryIo({ "p.dw": POLICY, ...files });
  const code = await run(["check", "p.dw", ...args], io);
  return { code, lines: io.err.join("").split("\n").filter((l) => /: (warning|error|note): |= (help|note)/.test(l)) };
}

test("forwarding off, -f nft: a warning at 'iptables off' naming each sysctl (IPv6 too where a network has an IPv6 subnet), with how to turn it on", async () => {
  const r = await check(["-f", "nft"], proc("0", "0", true));
  expect(r.code).toBe(0);
  expect(r.lines).toEqual([
    "p.dw:1:24: warning: IP forwarding is off on this host (net.ipv4.ip_forward = 0, net.ipv6.conf.all.forwarding = 0): Docker's tables in the --format nft file forward nothing to or from the containers, and dockerd 29 with its nftables backend does not start while it is off",
    "  = help: turn it on before dockerd starts, and at every boot: sysctl -w net.ipv4.ip_forward=1; sysctl -w net.ipv6.conf.all.forwarding=1, and the same in /etc/sysctl.d/99-docker.conf",
    '  = note: dockerd must run with "iptables": false and "ip6tables": false: it then writes no table of its own, and this file\'s are the only ones',
  ]);
  // On, or another format (dockerd's iptables backend turns it on itself), or nothing read: nothing said.
  expect((await check(["-f", "nft"], proc("1", "1", true))).lines).toEqual([]);
  expect((await check([], proc("0", "0", true))).lines).toEqual([]);
  expect((await check(["-f", "nft"], {})).lines).toEqual([]);
});

test("icc off without br_netfilter: a warning at the network, whatever the format; with iptables on (dockerd loads it) nothing", async () => {
  const r = await check([], proc("1", "1", false));
  expect(r.lines).toEqual([
    "p.dw:3:9: warning: network 'app' has icc off, but br_netfilter is not loaded on this host: its containers reach each other through bridge br-app without passing any rule (dockerd sees to it only when it writes rules itself)",
    "  = help: load it now and at every boot: modprobe br_netfilter, and a line 'br_netfilter' in /etc/modules-load.d/br_netfilter.conf",
  ]);
  // Loaded, but the sysctls 0 (a libvirt or hardening setting): the same, for IPv4 and IPv6 (a review).
  expect((await check([], proc("1", "1", true, "0"))).lines).toEqual([
    "p.dw:3:9: warning: network 'app' has icc off, but bridged traffic does not go through the rules on this host (net.bridge.bridge-nf-call-iptables = 0, net.bridge.bridge-nf-call-ip6tables = 0): its containers reach each other through bridge br-app without passing any rule (dockerd sees to it only when it writes rules itself)",
    "  = help: set it now and at every boot: sysctl -w net.bridge.bridge-nf-call-iptables=1; sysctl -w net.bridge.bridge-nf-call-ip6tables=1, and the same in /etc/sysctl.d/",
  ]);
  const io = memoryIo({ "p.dw": POLICY.replace("iptables off; ip6tables off;", "iptables on;"), ...proc("1", "1", false) });
  await run(["check", "p.dw"], io);
  expect(io.err.join("")).not.toContain("br_netfilter");
});
