// --format nft beside Docker 29's nftables backend, as a router (a review of issue 24's work):
// that backend sets no FORWARD policy, and requires IP forwarding on, so a host whose firewall
// is dockwall's table would route between its other interfaces whatever no `forward` statement
// allows. On a real dockerd ("iptables": false; Docker 29's own tables as dockerd 29.7 writes
// them, reproduced, loaded as dockerd would have), then dockwall's table for `iptables on;
// firewall-backend nftables;`: the lan is not routed to the wan; with `forward lan to wan;` it is
// (and not the other way); the published port stays as the policy says. Without dockwall's table
// the lan reaches the wan (so what follows is not vacuous).
import { afterAll, beforeAll, expect, it, test } from "vitest";
import { compile } from "../../src/compile.js";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { createNetns, deleteNetns, describeKernel, type Netns } from "../lab/kernel.js";
import { run } from "../lab/proc.js";

type Probe = ["lan" | "wan", string, number];

describeDocker("--format nft beside Docker 29's nftables backend: the host routes only what `forward` says", () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await startLab({ userlandProxy: false, containers: [{ name: "web", ip: "172.17.0.2", publish: ["8080:80"], listen: ["tcp:80"] }] });
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
  });

  const world = `zone wan { interface eth0; }
zone lan { interface eth1; }
network bridge { bridge docker0; subnet 172.17.0.0/16; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
`;
  /** Docker 29's own tables for these networks and containers, as its nftables backend writes them. */
  const dockers = () => {
    const r = compile(`docker { version 29.7; iptables off; ip6tables off; userland-proxy off; published open; }\n${world}`, { format: "nft" });
    expect(r.ok).toBe(true);
    return [...r.output!.matchAll(/^table ip6? docker-bridges \{\n[\s\S]*?^\}\n/gm)].map((m) => m[0]).join("");
  };
  const ours = (extra = "") => {
    const r = compile(`docker { version 29.7; iptables on; firewall-backend nftables; userland-proxy off; }\n${world}${extra}`, { format: "nft" });
    expect(r.ok, r.diagnostics.map((d) => d.message).join("\n")).toBe(true);
    return r.output!;
  };
  const probes: Probe[] = [
    ["lan", ADDR.wan, ADDR.egressTcp],
    ["wan", ADDR.lan, ADDR.egressTcp],
    ["lan", ADDR.hostLan, 8080],
    ["wan", ADDR.hostWan, 8080],
  ];
  const run = async () => Promise.all(probes.map(async ([from, addr, port]) => `${from} -> ${addr}:${port}: ${(await lab!.probe(from, addr, port, "tcp", { retries: 1 })).open ? "open" : "closed"}`));
  const load = (text: string) => {
    lab!.reset();
    lab!.host.run(["nft", "flush", "ruleset"]);
    expect(lab!.host.run(["nft", "-f", "-"], text).stderr).toBe("");
  };

  test("Docker's tables alone: the lan and the wan are routed to each other", async () => {
    load(dockers());
    expect(await run()).toEqual([`lan -> ${ADDR.wan}:${ADDR.egressTcp}: open`, `wan -> ${ADDR.lan}:${ADDR.egressTcp}: open`, `lan -> ${ADDR.hostLan}:8080: open`, `wan -> ${ADDR.hostWan}:8080: open`]);
  });

  test("with dockwall's table: nothing routed but Docker's networks' traffic; the published port as the policy says", async () => {
    load(dockers() + ours());
    expect(await run()).toEqual([`lan -> ${ADDR.wan}:${ADDR.egressTcp}: closed`, `wan -> ${ADDR.lan}:${ADDR.egressTcp}: closed`, `lan -> ${ADDR.hostLan}:8080: open`, `wan -> ${ADDR.hostWan}:8080: closed`]);
  });

  test("forward lan to wan: the lan reaches the wan (Docker's nftables tables drop nothing else), not the other way", async () => {
    load(dockers() + ours("forward lan to wan;\n"));
    expect(await run()).toEqual([`lan -> ${ADDR.wan}:${ADDR.egressTcp}: open`, `wan -> ${ADDR.lan}:${ADDR.egressTcp}: closed`, `lan -> ${ADDR.hostLan}:8080: open`, `wan -> ${ADDR.hostWan}:8080: closed`]);
  });

  test("Docker's iptables backend (or not known): a forward statement is refused for --format nft, as before", () => {
    for (const backend of ["firewall-backend iptables; ", ""]) {
      const r = compile(`docker { version 29.7; iptables on; ${backend}userland-proxy off; }\n${world}forward lan to wan;\n`, { format: "nft" });
      expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => d.code)).toEqual(["nft-format"]);
    }
  });
});

// (A review found a zone whose interface is named like a Docker bridge routed anywhere: br-* took it for one.)
/**
 * A host routing between a bridge of its own (BRIDGE, a client at 192.168.1.5 / fd00:1::5 behind
 * it) and eth0 (a server at 198.51.100.2 / 2001:db8:100::2 listening on 7000, and on 22 its
 * client side): what each direction reaches, IPv4 then IPv6.
 */
async function router(bridge: string, body: (r: { host: Netns; out: (tries?: number) => string; in: (tries?: number) => string }) => void): Promise<void> {
  const made: Netns[] = [];
  try {
    const host = createNetns("-q");
    const client = createNetns("-q");
    const server = createNetns("-q");
    made.push(host, client, server);
    const ok = (r: { status: number | null; stderr: string }) => expect([r.status, r.stderr]).toEqual([0, ""]) as unknown;
    ok(host.run(["ip", "link", "add", bridge, "type", "bridge"]));
    ok(host.run(["ip", "link", "add", "vlan0", "type", "veth", "peer", "name", "eth0", "netns", client.name]));
    ok(host.run(["ip", "link", "set", "vlan0", "master", bridge, "up"]));
    ok(host.run(["ip", "addr", "add", "192.168.1.1/24", "dev", bridge]));
    ok(host.run(["ip", "link", "set", bridge, "up"]));
    ok(host.run(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", server.name]));
    ok(host.run(["ip", "addr", "add", "198.51.100.1/24", "dev", "eth0"]));
    ok(host.run(["ip", "link", "set", "eth0", "up"]));
    ok(host.run(["ip", "-6", "addr", "add", "fd00:1::1/64", "dev", bridge, "nodad"]));
    ok(host.run(["ip", "-6", "addr", "add", "2001:db8:100::1/64", "dev", "eth0", "nodad"]));
    for (const [peer, addr, gw, addr6, gw6] of [[client, "192.168.1.5", "192.168.1.1", "fd00:1::5", "fd00:1::1"], [server, "198.51.100.2", "198.51.100.1", "2001:db8:100::2", "2001:db8:100::1"]] as const) {
      ok(peer.run(["ip", "addr", "add", `${addr}/24`, "dev", "eth0"]));
      ok(peer.run(["ip", "-6", "addr", "add", `${addr6}/64`, "dev", "eth0", "nodad"]));
      ok(peer.run(["ip", "link", "set", "eth0", "up"]));
      ok(peer.run(["ip", "route", "add", "default", "via", gw]));
      ok(peer.run(["ip", "-6", "route", "add", "default", "via", gw6]));
    }
    ok(host.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
    ok(host.run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]));
    const listeners = [
      run(["sh", "-c", `nsenter --net=${server.path} socat TCP6-LISTEN:7000,ipv6only=0,fork,reuseaddr SYSTEM:'echo wan' >/dev/null 2>&1 & echo $!`]).stdout.trim(),
      run(["sh", "-c", `nsenter --net=${client.path} socat TCP6-LISTEN:22,ipv6only=0,fork,reuseaddr SYSTEM:'echo lan' >/dev/null 2>&1 & echo $!`]).stdout.trim(),
    ];
    // Where closed is expected one try will do (a lost packet cannot make it look open).
    const reach = (from: Netns, to: string[], port: number, word: string, tries: number) =>
      to.map((a) => {
        for (let i = 0; i < tries; i++) if (from.run(["socat", "-T1", "-", `TCP:${a}:${port},connect-timeout=${tries === 1 ? 0.5 : 1}`], "").stdout.includes(word)) return "open";
        return "closed";
      }).join(" ");
    try {
      body({ host, out: (tries = 3) => reach(client, ["198.51.100.2", "[2001:db8:100::2]"], 7000, "wan", tries), in: (tries = 3) => reach(server, ["192.168.1.5", "[fd00:1::5]"], 22, "lan", tries) });
    } finally {
      for (const l of listeners) run(["kill", l]);
    }
  } finally {
    for (const n of made) deleteNetns(n.name);
  }
}

const routerTable = (zones: string, extra = "", docker = "") => {
  const r = compile(`docker { version 29.7; iptables on; firewall-backend nftables; userland-proxy off;${docker} }\n${zones}zone wan { interface eth0; }\nnetwork app { bridge br-app; subnet 172.20.0.0/16; }\n${extra}`, { format: "nft" });
  expect(r.ok, r.diagnostics.map((d) => d.message).join("\n")).toBe(true);
  return r.output!;
};

describeKernel("--format nft beside Docker 29's nftables backend: a zone on the host's own br-lan is routed only where `forward` says", () => {
  it("a client behind br-lan does not reach the wan; with forward lan to wan it does; without dockwall's table it does (IPv4 and IPv6)", async () => {
    await router("br-lan", ({ host, out }) => {
      expect(out()).toBe("open open");
      expect(host.run(["nft", "-f", "-"], routerTable("zone lan { interface br-lan; }\n")).stderr).toBe("");
      expect(out(1)).toBe("closed closed");
      expect(host.run(["nft", "-f", "-"], routerTable("zone lan { interface br-lan; }\n", "forward lan to wan;\n")).stderr).toBe("");
      expect(out()).toBe("open open");
    });
  }, 60_000);

  it("a bridge only named like Docker's (br-vms, in no zone) is routed neither out nor in, published open too (IPv4 and IPv6)", async () => {
    await router("br-vms", ({ host, out, in: into }) => {
      expect([out(), into()]).toEqual(["open open", "open open"]);
      for (const docker of ["", " published open;"]) {
        expect(host.run(["nft", "-f", "-"], routerTable("zone lan { interface eth1; }\n", "", docker)).stderr).toBe("");
        expect([out(1), into(1)], docker).toEqual(["closed closed", "closed closed"]);
      }
    });
  }, 60_000);
});
