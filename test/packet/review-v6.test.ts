// Two IPv6 paths a review found wrong, with real packets in the policy lab:
// - `published open` with a `host` block: docker-proxy's sockets (where Docker writes no DNAT:
//   IPv6 with ip6tables off) were closed by the host block's DROP, while IPv4 reached the same
//   ports through the DNAT. Open means everyone's, over both families.
// - `--format nft` beside Docker's iptables backend with ip6tables off: an internal network's
//   IPv6 was routed out, and into it from another network, where the iptables output closes it.
import { expect, it } from "vitest";
import { compile } from "../../src/compile.js";
import { describeKernel } from "../lab/kernel.js";
import { dockersOwn, inPolicyLab, planPolicyLab, probeTwice, startPolicyLab } from "../lab/policylab.js";

describeKernel("IPv6 paths (policy lab, packets)", () => {
  it("published open and a host block: every published port is reached over IPv6 (docker-proxy) as over IPv4 (DNAT), from every zone; the host's own services stay as the host block says", async () => {
    const policy = `docker { version 20.10; iptables off; published open; }
zone wan { interface eth0; }
zone lan { interface eth1; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
host { allow lan tcp 22; allow any icmp; }
`;
    await inPolicyLab("open.dw", policy, async ({ plan, lab }) => {
      const lan = plan.ifaces.find((f) => f.name === "eth1")!;
      const wan = plan.ifaces.find((f) => f.name === "eth0")!;
      const got = await probeTwice(lab, plan, [
        ["lan -> 8080", { from: { iface: "eth1" }, family: 4, src: "lan", dst: lan.host4, proto: "tcp", port: 8080 }],
        ["lan -> 8080, IPv6", { from: { iface: "eth1" }, family: 6, src: "lan", dst: lan.host6, proto: "tcp", port: 8080 }],
        ["wan -> 8080", { from: { iface: "eth0" }, family: 4, src: "wan", dst: wan.host4, proto: "tcp", port: 8080 }],
        ["wan -> 8080, IPv6", { from: { iface: "eth0" }, family: 6, src: "wan", dst: wan.host6, proto: "tcp", port: 8080 }],
        ["lan -> ssh, IPv6", { from: { iface: "eth1" }, family: 6, src: "lan", dst: lan.host6, proto: "tcp", port: 22 }],
        ["wan -> ssh, IPv6", { from: { iface: "eth0" }, family: 6, src: "wan", dst: wan.host6, proto: "tcp", port: 22 }],
        ["wan -> ssh", { from: { iface: "eth0" }, family: 4, src: "wan", dst: wan.host4, proto: "tcp", port: 22 }],
      ]);
      expect(got).toEqual([
        "lan -> 8080: open",
        "lan -> 8080, IPv6: open",
        "wan -> 8080: open",
        "wan -> 8080, IPv6: open",
        "lan -> ssh, IPv6: open",
        "wan -> ssh, IPv6: closed",
        "wan -> ssh: closed",
      ]);
    });
  }, 60_000);

  it("--format nft beside Docker's iptables backend, ip6tables off: an internal network's IPv6 is not routed out, nor into it from another network (as the iptables output has it); the other network still reaches the wan", async () => {
    const policy = `docker { version 20.10; iptables on; ip6tables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
network back { bridge br-back; subnet 172.21.0.0/16; subnet fd00:21::/64; internal; }
container web { network app 172.20.0.2, fd00:20::2; publish 8080:80; }
container db { network back 172.21.0.4, fd00:21::4; }
allow lan to web:8080;
`;
    const r = compile(policy, { noRender: true });
    expect(r.ok).toBe(true);
    const plan = planPolicyLab(r.policy!);
    const lab = await startPolicyLab(plan);
    try {
      // dockerd's own IPv4 rules (with ip6tables off it writes none for IPv6), then dockwall's nft file.
      expect(lab.host.restore(4, compile(dockersOwn(policy, r.policy!), { format: "iptables" }).output!).stderr).toBe("");
      const nft = compile(policy, { format: "nft" });
      expect(nft.ok).toBe(true);
      const loaded = lab.host.run(["nft", "-f", "-"], nft.output!);
      expect(loaded.stderr).toBe("");
      const got = await probeTwice(lab, plan, [
        ["db (internal) -> wan, IPv6", { from: { container: "db" }, family: 6, src: "fd00:21::4", dst: "wan", proto: "tcp", port: 7000 }],
        ["web (app) -> db (internal), IPv6", { from: { container: "web" }, family: 6, src: "fd00:20::2", dst: "fd00:21::4", proto: "tcp", port: 5432 }],
        ["web (app) -> wan, IPv6", { from: { container: "web" }, family: 6, src: "fd00:20::2", dst: "wan", proto: "tcp", port: 7000 }],
      ]);
      expect(got).toEqual(["db (internal) -> wan, IPv6: closed", "web (app) -> db (internal), IPv6: closed", "web (app) -> wan, IPv6: open"]);
    } finally {
      await lab.stop();
    }
  }, 60_000);
});
