// --format nft beside Docker 29's nftables backend, as a router (a review of issue 24's work):
// that backend sets no FORWARD policy, and requires IP forwarding on, so a host whose firewall
// is dockwall's table would route between its other interfaces whatever no `forward` statement
// allows. On a real dockerd ("iptables": false; Docker 29's own tables as dockerd 29.7 writes
// them, reproduced, loaded as dockerd would have), then dockwall's table for `iptables on;
// firewall-backend nftables;`: the lan is not routed to the wan; with `forward lan to wan;` it is
// (and not the other way); the published port stays as the policy says. Without dockwall's table
// the lan reaches the wan (so what follows is not vacuous).
import { afterAll, beforeAll, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";

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
