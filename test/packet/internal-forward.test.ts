// An internal network stays internal when a `forward` names a zone on its bridge (a review found
// `forward lan to bridges;` with `zone bridges { interface br-back; }` opened the internal
// network's containers to the lan: the forward's ACCEPT in DOCKER-USER came before Docker's
// isolation). In the policy lab, with real packets, IPv4 and IPv6: nothing in from the lan to the
// internal network, nothing out of it to the wan, while the same forwards still route the lan to
// the wan and the allowed published port stays open.
import { expect, it } from "vitest";
import { compile } from "../../src/compile.js";
import { dockersOwn, inPolicyLab, planPolicyLab, probeTwice, startPolicyLab, type LabProbe } from "../lab/policylab.js";
import { describeKernel } from "../lab/kernel.js";

const POLICY = `docker { version 29.7; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
zone bridges { interface br-back; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
network back { bridge br-back; subnet 172.22.0.0/16; subnet fd00:22::/64; internal; }
container web { network app 172.20.0.10, fd00:20::10; network back 172.22.0.10, fd00:22::10; publish 8080:80; }
container db { network back 172.22.0.20, fd00:22::20; }
allow lan to web:8080;
forward lan to bridges, wan;
forward bridges to wan;
`;

describeKernel("forward and an internal network (policy lab, packets)", () => {
  it("nothing routed into the internal network from the lan, nor out of it to the wan; lan to wan and the allowed port are (IPv4 and IPv6)", async () => {
    await inPolicyLab("internal.dw", POLICY, async ({ plan, lab }) => {
      const lan = plan.ifaces.find((f) => f.name === "eth1")!;
      const wan = plan.ifaces.find((f) => f.name === "eth0")!;
      const probes: [string, LabProbe][] = [
        ["lan -> db (internal)", { from: { iface: "eth1" }, family: 4, src: lan.nbr4, dst: "172.22.0.20", proto: "tcp", port: 5432 }],
        ["lan -> db (internal), IPv6", { from: { iface: "eth1" }, family: 6, src: lan.nbr6, dst: "fd00:22::20", proto: "tcp", port: 5432 }],
        ["lan -> web on the internal network", { from: { iface: "eth1" }, family: 4, src: lan.nbr4, dst: "172.22.0.10", proto: "tcp", port: 80 }],
        ["db (internal) -> wan", { from: { container: "db" }, family: 4, src: "172.22.0.20", dst: wan.nbr4, proto: "tcp", port: 7000 }],
        ["db (internal) -> wan, IPv6", { from: { container: "db" }, family: 6, src: "fd00:22::20", dst: wan.nbr6, proto: "tcp", port: 7000 }],
        ["lan -> wan", { from: { iface: "eth1" }, family: 4, src: lan.nbr4, dst: wan.nbr4, proto: "tcp", port: 7000 }],
        ["lan -> wan, IPv6", { from: { iface: "eth1" }, family: 6, src: lan.nbr6, dst: wan.nbr6, proto: "tcp", port: 7000 }],
        ["lan -> web:8080 (allowed)", { from: { iface: "eth1" }, family: 4, src: lan.nbr4, dst: lan.host4, proto: "tcp", port: 8080 }],
      ];
      // (IPv6 between two neighbours is answered from the second try on: the host learns the far neighbour on the first.)
      await lab.probe(probes.map(([, p]) => p), 2000);
      const got = await lab.probe(probes.map(([, p]) => p), 800);
      expect(probes.map(([what], i) => `${what}: ${got[i]!.open ? "open" : "closed"}`)).toEqual([
        "lan -> db (internal): closed",
        "lan -> db (internal), IPv6: closed",
        "lan -> web on the internal network: closed",
        "db (internal) -> wan: closed",
        "db (internal) -> wan, IPv6: closed",
        "lan -> wan: open",
        "lan -> wan, IPv6: open",
        "lan -> web:8080 (allowed): open",
      ]);
    });
  }, 60_000);

  it("`forward any to wan` does not let an internal network dockwall does not know yet out (iptables on, Docker's rules for it in place; IPv6, where dockerd 20.10 writes none), and still routes the lan", async () => {
    // The world, and dockerd's rules, know network int; dockwall's policy does not (made after the compile).
    const world = `docker { version 20.10; iptables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
network int { bridge br-0123456789ab; subnet 172.30.0.0/16; subnet fd00:30::/64; internal; }
container db { network int 172.30.0.2, fd00:30::2; }
`;
    const policy = `docker { version 20.10; iptables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
forward any to wan;
`;
    const r = compile(world, { noRender: true });
    expect(r.ok).toBe(true);
    const plan = planPolicyLab(r.policy!);
    const lab = await startPolicyLab(plan);
    try {
      expect(lab.host.restore(4, compile(dockersOwn(world, r.policy!), { format: "iptables" }).output!).stderr).toBe("");
      expect(lab.host.restore(4, compile(policy, { format: "iptables" }).output!, { noflush: true }).stderr).toBe("");
      // IPv6: dockerd 20.10 (ip6tables off) writes no rules; the file's, and the jump its header says to add.
      expect(lab.host.restore(6, compile(policy, { format: "ip6tables" }).output!, { noflush: true }).stderr).toBe("");
      expect(lab.host.run(["ip6tables", "-I", "FORWARD", "-j", "DOCKER-USER"]).stderr).toBe("");
      const got = await probeTwice(lab, plan, [
        ["db (internal, not known) -> wan", { from: { container: "db" }, family: 4, src: "172.30.0.2", dst: "wan", proto: "tcp", port: 7000 }],
        ["db (internal, not known) -> wan, IPv6", { from: { container: "db" }, family: 6, src: "fd00:30::2", dst: "wan", proto: "tcp", port: 7000 }],
        ["lan -> wan", { from: { iface: "eth1" }, family: 4, src: "lan", dst: "wan", proto: "tcp", port: 7000 }],
        ["lan -> wan, IPv6", { from: { iface: "eth1" }, family: 6, src: "lan", dst: "wan", proto: "tcp", port: 7000 }],
      ]);
      expect(got).toEqual(["db (internal, not known) -> wan: closed", "db (internal, not known) -> wan, IPv6: closed", "lan -> wan: open", "lan -> wan, IPv6: open"]);
    } finally {
      await lab.stop();
    }
  }, 60_000);

  it("ip6tables off (dockwall's IPv6 DOCKER-USER stands for Docker's rules): another network's container does not reach an internal one over IPv6, and still reaches the wan", async () => {
    const policy = `docker { version 20.10; iptables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
network back { bridge br-back; subnet 172.22.0.0/16; subnet fd00:22::/64; internal; }
container web { network app 172.20.0.10, fd00:20::10; publish 8080:80; }
container db { network back 172.22.0.20, fd00:22::20; publish 5432:5432; }
allow lan to web:8080;
`;
    await inPolicyLab("standin.dw", policy, async ({ plan, lab }) => {
      // As dockerd 20.10 with ip6tables off leaves it: no IPv6 rules of its own; the jump the file's header says to add.
      expect(lab.host.run(["ip6tables", "-F", "FORWARD"]).stderr).toBe("");
      expect(lab.host.run(["ip6tables", "-I", "FORWARD", "-j", "DOCKER-USER"]).stderr).toBe("");
      const got = await probeTwice(lab, plan, [
        ["web (app) -> db (internal), IPv6", { from: { container: "web" }, family: 6, src: "fd00:20::10", dst: "fd00:22::20", proto: "tcp", port: 5432 }],
        ["web (app) -> wan, IPv6", { from: { container: "web" }, family: 6, src: "fd00:20::10", dst: "wan", proto: "tcp", port: 7000 }],
      ]);
      expect(got).toEqual(["web (app) -> db (internal), IPv6: closed", "web (app) -> wan, IPv6: open"]);
    });
  }, 60_000);
});
