// The host's own connection to 127.0.0.1, DNATed out of another interface than lo (a hand-made
// rule, or another tool's): Linux routes it there only where route_localnet is on for that
// interface (or for all), and the machine it reaches drops a packet from 127.0.0.1 unless nat
// POSTROUTING translated its source. explain --live against a real connection, in namespaces, with
// iptables rules and with an nftables table, IPv4 and IPv6 (which has no route_localnet: from ::1
// it never connects): where the kernel does not connect, explain must not say accepted (it did);
// where it connects, explain says accepted.
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createNetns, deleteNetns, describeKernel, type Netns } from "../lab/kernel.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bin = process.env.DOCKWALL_BIN || `${root}bin/dockwall`;
const netprobe = `${root}test/lab/netprobe.mjs`;
const PACKET = "tcp host -> 127.0.0.1:8080";

describeKernel("route_localnet: the host's connection to 127.0.0.1 DNATed out to a neighbour", () => {
  let host: Netns;
  let peer: Netns;
  let listener: ChildProcess | undefined;

  const sh = (ns: Netns, argv: string[], input?: string) => {
    const r = ns.run(argv, input);
    if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const localnet = (all: 0 | 1, eth1: 0 | 1) => sh(host, ["sysctl", "-qw", `net.ipv4.conf.all.route_localnet=${all}`, `net.ipv4.conf.eth1.route_localnet=${eth1}`]);
  const connects = (lo = "127.0.0.1") => {
    const r = spawnSync("nsenter", [`--net=${host.path}`, "node", netprobe, "probe", "1500"], { input: JSON.stringify([{ src: lo, dst: lo, port: 8080, proto: "tcp" }]), encoding: "utf8" });
    if (r.status !== 0) throw new Error(`netprobe: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { open: boolean; reply?: string }[])[0]!;
  };
  const explain = (packet = PACKET) => {
    const r = spawnSync("nsenter", [`--net=${host.path}`, bin, "explain", "--live", packet, "--json"], { encoding: "utf8" });
    if (r.status !== 0 && r.status !== 1) throw new Error(`explain --live: ${r.status} ${r.stderr}`);
    const first = (JSON.parse(r.stdout) as { packets: { verdict: string; unknown: string[]; decided_by: unknown; dropped_by_kernel?: string }[] }).packets[0]!;
    return { verdict: `${first.verdict}${first.decided_by === null && first.verdict === "drop" ? " (by Linux)" : ""}`, why: first.dropped_by_kernel ?? first.unknown.join("; ") };
  };

  beforeAll(async () => {
    host = createNetns("-lnh");
    peer = createNetns("-lnp");
    // The veth is made inside the host's namespace, its other end moved straight to the peer's: nothing in the root namespace.
    sh(host, ["ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", peer.name]);
    sh(host, ["ip", "addr", "add", "192.168.7.1/24", "dev", "eth1"]);
    sh(peer, ["ip", "addr", "add", "192.168.7.2/24", "dev", "eth0"]);
    sh(host, ["ip", "addr", "add", "fd00:7::1/64", "dev", "eth1", "nodad"]);
    sh(peer, ["ip", "addr", "add", "fd00:7::2/64", "dev", "eth0", "nodad"]);
    sh(host, ["ip", "link", "set", "eth1", "up"]);
    sh(peer, ["ip", "link", "set", "eth0", "up"]);
    listener = spawn("nsenter", [`--net=${peer.path}`, "node", netprobe, "listen", "peer", "tcp=80"], { stdio: ["pipe", "pipe", "inherit"] });
    await new Promise<void>((ok, fail) => {
      listener!.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && ok());
      listener!.once("exit", (c) => fail(new Error(`netprobe listen exited ${c}`)));
    });
  });
  afterAll(() => {
    listener?.kill();
    if (host) deleteNetns(host.name);
    if (peer) deleteNetns(peer.name);
  });

  const backends = {
    iptables: {
      load: (masquerade: boolean) =>
        sh(host, ["iptables-restore"], `*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.168.7.2:80\n${masquerade ? "-A POSTROUTING -s 127.0.0.0/8 -o eth1 -j MASQUERADE\n" : ""}COMMIT\n`),
      clear: () => sh(host, ["iptables-restore"], "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"),
    },
    nftables: {
      load: (masquerade: boolean) =>
        sh(host, ["nft", "-f", "-"], `table ip t\ndelete table ip t\ntable ip t {\n  chain o { type nat hook output priority -100; policy accept; ip daddr 127.0.0.1 tcp dport 8080 dnat to 192.168.7.2:80; }\n  chain p { type nat hook postrouting priority 100; policy accept;${masquerade ? ' ip saddr 127.0.0.0/8 oifname "eth1" masquerade;' : ""} }\n}\n`),
      clear: () => sh(host, ["nft", "flush", "ruleset"]),
    },
  };

  // IPv6 has no route_localnet: the host's packet from ::1 leaves, and either its receiver drops it (no source nat) or,
  // masqueraded, its replies are dropped as they come back by eth1 to ::1.
  const backends6 = {
    ip6tables: {
      load: (masquerade: boolean) =>
        sh(host, ["ip6tables-restore"], `*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A OUTPUT -d ::1/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:7::2]:80\n${masquerade ? "-A POSTROUTING -s ::1/128 -o eth1 -j MASQUERADE\n" : ""}COMMIT\n`),
      clear: () => sh(host, ["ip6tables-restore"], "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"),
    },
    nftables: {
      load: (masquerade: boolean) =>
        sh(host, ["nft", "-f", "-"], `table ip6 t\ndelete table ip6 t\ntable ip6 t {\n  chain o { type nat hook output priority -100; policy accept; ip6 daddr ::1 tcp dport 8080 dnat to [fd00:7::2]:80; }\n  chain p { type nat hook postrouting priority 100; policy accept;${masquerade ? ' ip6 saddr ::1 oifname "eth1" masquerade;' : ""} }\n}\n`),
      clear: () => sh(host, ["nft", "flush", "ruleset"]),
    },
  };
  for (const [name, b] of Object.entries(backends6)) {
    it(`${name}, IPv6: from ::1 DNATed out, the kernel never connects; explain says unknown without a masquerade, dropped by Linux with one`, () => {
      backends6.ip6tables.clear();
      backends.nftables.clear();
      const seen: string[] = [];
      const whys: string[] = [];
      for (const masquerade of [false, true]) {
        b.load(masquerade);
        const k = connects("::1");
        const e = explain("tcp host -> [::1]:8080");
        seen.push(`${masquerade ? "masquerade" : "no masquerade"}: kernel ${k.open ? "open" : "closed"}, explain ${e.verdict}`);
        whys.push(e.why);
      }
      // (The address itself is reached from the host: what closes the connection is ::1.)
      expect(spawnSync("nsenter", [`--net=${host.path}`, "node", netprobe, "probe", "1500"], { input: JSON.stringify([{ src: "fd00:7::1", dst: "fd00:7::2", port: 80, proto: "tcp" }]), encoding: "utf8" }).stdout).toContain('"open":true');
      b.clear();
      expect(seen).toEqual(["no masquerade: kernel closed, explain unknown", "masquerade: kernel closed, explain drop (by Linux)"]);
      expect(whys).toEqual([
        "it leaves eth1 from ::1 (no source nat of it): what gets it drops it, as Linux drops a packet from ::1 that comes in by another interface than lo",
        "its replies come back by eth1, to ::1 once nat maps them back: Linux takes a packet to ::1 by lo alone, and drops them",
      ]);
    });
  }

  for (const [name, b] of Object.entries(backends)) {
    it(`${name}: off, the kernel drops it and explain says so (dropped by Linux, no rule); on for eth1 or for all, with a masquerade, both connect; without it, neither`, () => {
      // iptables-nft writes nftables tables: the other backend's rules go first.
      backends.iptables.clear();
      backends.nftables.clear();
      const seen: string[] = [];
      const check = (what: string) => {
        const k = connects();
        const e = explain();
        seen.push(`${what}: kernel ${k.open ? `open (${k.reply?.trim()})` : "closed"}, explain ${e.verdict}`);
        return e;
      };
      b.load(true);
      localnet(0, 0);
      const off = check("off, masquerade");
      expect(off.why).toBe("Linux does not route a packet from 127.0.0.1 out of eth1 (where a DNAT sends it): route_localnet is off for eth1 (read from the kernel)");
      localnet(0, 1);
      check("on for eth1, masquerade");
      localnet(1, 0);
      check("on for all, masquerade");
      b.load(false);
      localnet(0, 1);
      const bare = check("on for eth1, no masquerade");
      expect(bare.why).toContain("it leaves eth1 from 127.0.0.1 (no source nat of it)");
      localnet(0, 0);
      b.clear();
      expect(seen).toEqual([
        "off, masquerade: kernel closed, explain drop (by Linux)",
        "on for eth1, masquerade: kernel open (peer), explain accept",
        "on for all, masquerade: kernel open (peer), explain accept",
        "on for eth1, no masquerade: kernel closed, explain unknown",
      ]);
    });
  }
});
