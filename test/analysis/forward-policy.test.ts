// The host as a router (a fact dockwall must get right: "if ip_forward is already 1 when
// dockerd starts, Docker leaves FORWARD's policy ACCEPT"). The policy's words take FORWARD's
// policy to be DROP, `forward` statements being how the host routes. With `iptables on` dockwall
// owns DOCKER-USER, not FORWARD, but sets FORWARD's policy to DROP in each family dockerd writes
// rules for (its own accept its networks' traffic). A host (IPv4 and IPv6 forwarding on) with a
// client on its lan and a server on its wan: with dockwall's output loaded the client is not
// routed and verify says nothing; once FORWARD's policy is ACCEPT again it is routed, verify says
// why (exit 1, a finding), diff shows the policy going back to DROP, and apply puts it back.
import { Ajv } from "ajv";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it, test } from "vitest";
import { forwardPolicyFindings } from "../../src/analysis/matrix.js";
import { compile } from "../../src/compile.js";
import { parseSave, toRuleset } from "../../src/live/save.js";
import { createNetns, deleteNetns, describeKernel, type Netns } from "../lab/kernel.js";
import { run } from "../lab/proc.js";

const bin = process.env.DOCKWALL_BIN || new URL("../../bin/dockwall", import.meta.url).pathname;
const POLICY = `docker { version 20.10; iptables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
host { allow lan tcp 22; }
`;

test("a finding per family the kernel forwards with FORWARD's policy ACCEPT; none with DROP, with a final DROP rule, or where it does not forward", () => {
  const p = compile(POLICY, { noRender: true }).policy!;
  const rs = (text: string, f: 4 | 6) => toRuleset(parseSave(text), f);
  const accept = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j DOCKER-USER\n:DOCKER-USER - [0:0]\nCOMMIT\n";
  const f = forwardPolicyFindings(p, { 4: rs(accept, 4), 6: rs(accept, 6) }, { 4: true, 6: true });
  expect(f.map((x) => x.family)).toEqual([4, 6]);
  expect(f[0]!.message).toBe("IPv4: FORWARD's policy is ACCEPT and the host forwards (net.ipv4.ip_forward = 1): it routes between its interfaces whatever no 'forward' statement allows (dockerd leaves ACCEPT when forwarding was on before it started). 'dockwall apply' sets it to DROP, as the iptables and ferm outputs do (or 'iptables -P FORWARD DROP'); Docker's own rules still pass its networks' traffic, and 'forward' statements what they name");
  // dockerd 20.10 with ip6tables off writes no IPv6 rules: a DROP policy alone would stop its networks' IPv6 too, and the help says so.
  expect(f[1]!.message).toMatch(/'dockwall apply' sets it to DROP, its DOCKER-USER then accepting what dockerd \(writing no IPv6 rules here, ip6tables off\) would let through; a 'ip6tables -P FORWARD DROP' alone would stop its networks' IPv6 traffic too$/);
  expect(forwardPolicyFindings(p, { 4: rs(accept.replace("FORWARD ACCEPT", "FORWARD DROP"), 4) }, { 4: true })).toEqual([]);
  expect(forwardPolicyFindings(p, { 4: rs(accept.replace("COMMIT", "-A FORWARD -j DROP\nCOMMIT"), 4) }, { 4: true })).toEqual([]);
  expect(forwardPolicyFindings(p, { 4: rs(accept, 4) }, { 4: false, 6: false })).toEqual([]);
  // A final REJECT, a DROP with a comment, a jump to a chain that drops everything: each stands for the policy (a review).
  expect(forwardPolicyFindings(p, { 4: rs(accept.replace("COMMIT", "-A FORWARD -j REJECT\nCOMMIT"), 4) }, { 4: true })).toEqual([]);
  expect(forwardPolicyFindings(p, { 4: rs(accept.replace("COMMIT", '-A FORWARD -m comment --comment "the end" -j DROP\nCOMMIT'), 4) }, { 4: true })).toEqual([]);
  expect(forwardPolicyFindings(p, { 4: rs(accept.replace("COMMIT", ":end - [0:0]\n-A FORWARD -j end\n-A end -j DROP\nCOMMIT"), 4) }, { 4: true })).toEqual([]);
  // A drop of one interface's traffic is not one of every packet.
  expect(forwardPolicyFindings(p, { 4: rs(accept.replace("COMMIT", "-A FORWARD -i eth0 -j DROP\nCOMMIT"), 4) }, { 4: true })).toHaveLength(1);
});

describeKernel("the host as a router: FORWARD's policy, with packets", () => {
  it("dockwall's iptables-on output sets FORWARD's policy DROP (a lan client is not routed to the wan); back at ACCEPT the client is routed, verify says so, diff shows it, and apply closes it again", async () => {
    const made: Netns[] = [];
    const dir = mkdtempSync(join(tmpdir(), "dockwall-fwd-"));
    try {
      const host = createNetns("-r");
      const client = createNetns("-r");
      const server = createNetns("-r");
      made.push(host, client, server);
      const ok = (r: { status: number | null; stderr: string }) => expect([r.status, r.stderr]).toEqual([0, ""]) as unknown;
      for (const [dev, peer, hostAddr, peerAddr, host6, peer6] of [["eth1", client, "192.168.1.1", "192.168.1.5", "fd00:1::1", "fd00:1::5"], ["eth0", server, "198.51.100.1", "198.51.100.2", "2001:db8:100::1", "2001:db8:100::2"]] as const) {
        ok(host.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", peer.name]));
        ok(host.run(["ip", "addr", "add", `${hostAddr}/24`, "dev", dev]));
        ok(host.run(["ip", "-6", "addr", "add", `${host6}/64`, "dev", dev, "nodad"]));
        ok(host.run(["ip", "link", "set", dev, "up"]));
        ok(peer.run(["ip", "addr", "add", `${peerAddr}/24`, "dev", "eth0"]));
        ok(peer.run(["ip", "-6", "addr", "add", `${peer6}/64`, "dev", "eth0", "nodad"]));
        ok(peer.run(["ip", "link", "set", "eth0", "up"]));
        ok(peer.run(["ip", "route", "add", "default", "via", hostAddr]));
        ok(peer.run(["ip", "-6", "route", "add", "default", "via", host6]));
      }
      ok(host.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
      ok(host.run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]));
      const listener = run(["sh", "-c", `nsenter --net=${server.path} socat TCP6-LISTEN:7000,ipv6only=0,fork,reuseaddr SYSTEM:'echo wan' >/dev/null 2>&1 & echo $!`]).stdout.trim();
      try {
        // IPv4 and IPv6: routed in both, or in neither.
        // A connection that is refused is tried once (a second second would change nothing), one that should pass three times.
        const reach = (to: string, tries: number) => {
          for (let i = 0; i < tries; i++) if (client.run(["socat", "-T1", "-", `TCP:${to}:7000,connect-timeout=1`], "").stdout.includes("wan")) return true;
          return false;
        };
        const routed = (expected: boolean) => {
          const tries = expected ? 3 : 1;
          const both = [reach("198.51.100.2", tries), reach("[2001:db8:100::2]", tries)];
          expect(both[0]).toBe(both[1]);
          return both[0];
        };
        // dockerd writes IPv6 rules too (ip6tables on), so dockwall sets FORWARD's policy in both families.
        const BOTH = POLICY.replace("userland-proxy off;", "userland-proxy off; ip6tables on;");
        expect(routed(true)).toBe(true);
        for (const [format, restore] of [["iptables", "iptables-restore"], ["ip6tables", "ip6tables-restore"]] as const) ok(host.run([restore, "--noflush"], compile(BOTH, { format }).output!));
        writeFileSync(join(dir, "host.dw"), BOTH);
        const dockwall = (cmd: string, ...args: string[]) => spawnSync("nsenter", [`--net=${host.path}`, bin, cmd, join(dir, "host.dw"), ...args], { encoding: "utf8" });
        const verify = (...args: string[]) => dockwall("verify", ...args);
        expect(routed(false)).toBe(false);
        const loaded = verify();
        expect([loaded.status, loaded.stdout], loaded.stderr).toEqual([0, ""]);
        // dockerd left FORWARD's policy ACCEPT (forwarding was on before it started).
        ok(host.run(["iptables", "-P", "FORWARD", "ACCEPT"]));
        ok(host.run(["ip6tables", "-P", "FORWARD", "ACCEPT"]));
        expect(routed(true)).toBe(true);
        const open = verify("--json");
        expect(open.status, open.stderr).toBe(1);
        const j = JSON.parse(open.stdout) as { findings: { family: number; message: string }[] };
        const ajv = new Ajv({ allErrors: true, strict: false });
        ajv.addSchema(JSON.parse(readFileSync(new URL("../../src/schema/dockwall.schema.json", import.meta.url), "utf8")) as object, "dockwall");
        expect(ajv.validate("dockwall#/definitions/matrix", j) ? "" : ajv.errorsText(ajv.errors)).toBe("");
        // Each pair of zones walked, and a source in no zone on the lan's interface (the lan names only 192.168.1.0/24: its
        // IPv6 client is one): routed every way, and no forward statement allows any.
        expect(j.findings.map((f) => f.message.replace(/ \S+host\.dw /, " POLICY "))).toEqual([
          "routed, but no 'forward' statement allows it: wan (eth0) to lan (eth1), IPv4: dockwall explain --live POLICY 'tcp 192.0.2.119:40001 -> 192.168.1.7:40000 in eth0'",
          "routed, but no 'forward' statement allows it: lan (eth1) to wan (eth0), IPv4: dockwall explain --live POLICY 'tcp 192.168.1.2:40001 -> 198.51.100.7:40000 in eth1'",
          "routed, but no 'forward' statement allows it: a source in no zone (eth1) to wan (eth0), IPv4: dockwall explain --live POLICY 'tcp 192.0.2.119:40001 -> 198.51.100.7:40000 in eth1'",
          "routed, but no 'forward' statement allows it: wan (eth0) to lan (eth1), IPv6: dockwall explain --live POLICY 'tcp [2001:db8::277]:40001 -> [fd00:1::7]:40000 in eth0'",
          "routed, but no 'forward' statement allows it: a source in no zone (eth1) to wan (eth0), IPv6: dockwall explain --live POLICY 'tcp [2001:db8::277]:40001 -> [2001:db8:100::7]:40000 in eth1'",
        ]);
        // As text: under a heading of their own, after the cells (a review read them as cells the count above left out).
        const text = verify();
        expect(text.stdout).toContain("the host as a router, 5 findings:\nrouted, but no 'forward' statement allows it: wan (eth0) to lan (eth1), IPv4: ");
        // diff shows the policy going back to DROP, and says what that stops.
        const diff = dockwall("diff");
        expect(diff.status, diff.stderr).toBe(1);
        expect(diff.stdout).toContain("@@ ip filter FORWARD @@\n! policy ACCEPT -> DROP\n");
        expect(diff.stdout).toContain("@@ ip6 filter FORWARD @@\n! policy ACCEPT -> DROP\n");
        expect(diff.stdout).toContain("warning: IPv4 FORWARD's policy goes from ACCEPT to DROP: dockerd left it ACCEPT (IP forwarding was on before it started)");
        const applied = dockwall("apply");
        expect(applied.status, applied.stderr).toBe(0);
        expect(routed(false)).toBe(false);
        const closed = verify();
        expect([closed.status, closed.stdout]).toEqual([0, ""]);
        // dockerd's rules in FORWARD stay: the jump to DOCKER-USER first, as loaded.
        expect(host.run(["iptables", "-S", "FORWARD"]).stdout).toBe("-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n");
        // On nftables alone (beside Docker 29's nftables backend): dockwall's table stands for FORWARD's policy DROP,
        // walked by the nftables evaluator; a host's own forward chain that accepts everything instead is found.
        ok(host.run(["nft", "flush", "ruleset"]));
        const NFT = POLICY.replace("iptables on;", "iptables on; firewall-backend nftables;");
        writeFileSync(join(dir, "host.dw"), NFT);
        ok(host.run(["nft", "-f", "-"], compile(NFT, { format: "nft" }).output!));
        expect(routed(false)).toBe(false);
        const nft = verify();
        expect([nft.status, nft.stdout], nft.stderr).toEqual([0, ""]);
        ok(host.run(["nft", "flush", "ruleset"]));
        ok(host.run(["nft", "-f", "-"], "table inet filter {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n"));
        expect(routed(true)).toBe(true);
        const open6 = verify();
        expect(open6.status).toBe(1);
        expect(open6.stdout).toMatch(/^routed, but no 'forward' statement allows it: lan \(eth1\) to wan \(eth0\), IPv4: /m);
        expect(open6.stdout).toMatch(/^routed, but no 'forward' statement allows it: wan \(eth0\) to lan \(eth1\), IPv6: /m);
      } finally {
        run(["kill", listener]);
      }
    } finally {
      for (const n of made) deleteNetns(n.name);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describeKernel("ip6tables off (dockerd writes no IPv6 rules): dockwall's IPv6 DOCKER-USER stands for Docker's, with FORWARD's policy DROP, with packets", () => {
  it("a lan client is not routed to the wan over IPv6; a container's IPv6 reaches the wan; the wan and the lan do not reach the container's address; a VM behind a br-* bridge the policy does not name is not routed", () => {
    const made: Netns[] = [];
    try {
      const host = createNetns("-r");
      const client = createNetns("-r");
      const server = createNetns("-r");
      const ctr = createNetns("-r");
      const vm = createNetns("-r");
      made.push(host, client, server, ctr, vm);
      const ok = (r: { status: number | null; stderr: string }) => expect([r.status, r.stderr]).toEqual([0, ""]) as unknown;
      for (const [dev, peer, host6, peer6] of [["eth1", client, "fd00:1::1", "fd00:1::5"], ["eth0", server, "2001:db8:100::1", "2001:db8:100::2"]] as const) {
        ok(host.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", peer.name]));
        ok(host.run(["ip", "-6", "addr", "add", `${host6}/64`, "dev", dev, "nodad"]));
        ok(host.run(["ip", "link", "set", dev, "up"]));
        ok(peer.run(["ip", "-6", "addr", "add", `${peer6}/64`, "dev", "eth0", "nodad"]));
        ok(peer.run(["ip", "link", "set", "eth0", "up"]));
        ok(peer.run(["ip", "-6", "route", "add", "default", "via", host6]));
      }
      // A bridge on the host with one namespace behind it (its gateway GW::1, the namespace GW::2).
      const bridge = (br: string, veth: string, peer: Netns, net: string) => {
        ok(host.run(["ip", "link", "add", br, "type", "bridge"]));
        ok(host.run(["ip", "-6", "addr", "add", `${net}1/64`, "dev", br, "nodad"]));
        ok(host.run(["ip", "link", "set", br, "up"]));
        ok(host.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", peer.name]));
        ok(host.run(["ip", "link", "set", veth, "master", br]));
        ok(host.run(["ip", "link", "set", veth, "up"]));
        ok(peer.run(["ip", "-6", "addr", "add", `${net}2/64`, "dev", "eth0", "nodad"]));
        ok(peer.run(["ip", "link", "set", "eth0", "up"]));
        ok(peer.run(["ip", "-6", "route", "add", "default", "via", `${net}1`]));
      };
      // A Docker network's bridge with a container on it (dockerd 20.10 with --ipv6, ip6tables off: no IPv6 rules of its own).
      bridge("br-app", "vethctr", ctr, "fd00:20::");
      // A VM's bridge, only named like Docker's (br-*), which the policy does not name.
      bridge("br-vms", "vethvm", vm, "fd00:99::");
      ok(host.run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]));
      const listen = (ns: Netns, port: number, word: string) => run(["sh", "-c", `nsenter --net=${ns.path} socat TCP6-LISTEN:${port},fork,reuseaddr SYSTEM:'echo ${word}' >/dev/null 2>&1 & echo $!`]).stdout.trim();
      const listeners = [listen(server, 7000, "wan"), listen(ctr, 80, "ctr")];
      try {
        const reach = (from: Netns, to: string, port: number, word: string, tries: number) => {
          for (let i = 0; i < tries; i++) if (from.run(["socat", "-T1", "-", `TCP6:[${to}]:${port},connect-timeout=1`], "").stdout.includes(word)) return true;
          return false;
        };
        expect(reach(client, "2001:db8:100::2", 7000, "wan", 3)).toBe(true); // FORWARD's policy ACCEPT: routed
        expect(reach(vm, "2001:db8:100::2", 7000, "wan", 3)).toBe(true);
        const policy = `docker { version 20.10; iptables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
container web { network app 172.20.0.2, fd00:20::2; publish 8080:80; }
allow lan to web:8080;
`;
        const out = compile(policy, { format: "ip6tables" }).output!;
        ok(host.run(["ip6tables-restore", "--noflush"], out));
        // The jump the file's header says to add once (apply and watch add it themselves).
        ok(host.run(["ip6tables", "-I", "FORWARD", "-j", "DOCKER-USER"]));
        expect(reach(client, "2001:db8:100::2", 7000, "wan", 1)).toBe(false);
        expect(reach(ctr, "2001:db8:100::2", 7000, "wan", 3)).toBe(true);
        expect(reach(server, "fd00:20::2", 80, "ctr", 1)).toBe(false);
        expect(reach(client, "fd00:20::2", 80, "ctr", 1)).toBe(false);
        // Not a Docker network's: not routed (a review found it was, by an accept for br-* networks not known yet).
        expect(reach(vm, "2001:db8:100::2", 7000, "wan", 1)).toBe(false);
      } finally {
        for (const l of listeners) run(["kill", l]);
      }
    } finally {
      for (const n of made) deleteNetns(n.name);
    }
  }, 60_000);
});
