// --format nft with `iptables off`, on a real dockerd ("iptables": false, userland-proxy off,
// IPv6 on): the file's Docker tables (as dockerd 29.7's nftables backend writes them) carry the
// containers' networking — DNAT of the published port, masquerading of their own connections,
// over IPv4 and IPv6 — and dockwall's table closes what the policy closes, as the iptables output
// does for the same policy. No iptables rule is loaded at any point.
import { afterAll, beforeAll, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { ADDR, describeDocker, startLab, type Lab, type ProbeFrom, type Proto } from "../lab/dockerlab.js";

type Expect = [from: ProbeFrom, addr: string, port: number, proto: Proto, want: string];

describeDocker("--format nft, iptables off, on a real dockerd: the file carries Docker's networking and the policy", () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await startLab({ userlandProxy: false, ipv6: true, containers: [{ name: "web", ip: "172.17.0.2", publish: ["8080:80"], listen: ["tcp:80"] }] });
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
  });

  const policy = (l: Lab) => `docker { version 29.7; iptables off; ip6tables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet ${ADDR.fixedCidrV6}; }
container web { network bridge 172.17.0.2, ${l.containers.web!.ip6}; publish 8080:80; }
allow lan to web:8080;
host { allow lan tcp 22; }
`;

  async function matrix(l: Lab, lines: Expect[]): Promise<string[]> {
    return Promise.all(
      lines.map(async ([from, addr, port, proto]) => {
        const r = await l.probe(from, addr, port, proto, { retries: 1 });
        return `${from} -> ${addr}:${port}/${proto}: ${r.open ? `open (${r.answeredBy}${r.clientAddr ? ` sees ${r.clientAddr}` : ""})` : "closed"}`;
      }),
    );
  }
  const web6 = (l: Lab) => l.containers.web!.ip6!;
  const lines = (l: Lab): Expect[] => [
    // The published port: DNAT by Docker's table, the client's own address kept; only lan may.
    ["lan", ADDR.hostLan, 8080, "tcp", `open (web sees ${ADDR.lan})`],
    ["lan", ADDR.hostLan6, 8080, "tcp", `open (web sees ${ADDR.lan6})`],
    ["wan", ADDR.hostWan, 8080, "tcp", "closed"],
    ["wan", ADDR.hostWan6, 8080, "tcp", "closed"],
    // Straight to the container's address: closed to everyone outside.
    ["lan", "172.17.0.2", 80, "tcp", "closed"],
    ["wan", web6(l), 80, "tcp", "closed"],
    // The container's own connections out: masqueraded to the host's address on the way.
    ["ctr:web", ADDR.wan, ADDR.egressTcp, "tcp", `open (wan sees ${ADDR.hostWan})`],
    ["ctr:web", ADDR.wan6, ADDR.egressTcp, "tcp", `open (wan sees ${ADDR.hostWan6})`],
    // Nothing else is routed: no forward statement.
    ["lan", ADDR.wan, ADDR.egressTcp, "tcp", "closed"],
  ];

  test("with no rules at all, the wan reaches the container and the lan routes to the wan (so what follows is not vacuous)", async () => {
    lab!.reset();
    lab!.host.run(["nft", "flush", "ruleset"]);
    const got = await matrix(lab!, [["wan", "172.17.0.2", 80, "tcp", ""], ["lan", ADDR.wan, ADDR.egressTcp, "tcp", ""]]);
    expect(got).toEqual([`wan -> 172.17.0.2:80/tcp: open (web sees ${ADDR.wan})`, `lan -> ${ADDR.wan}:${ADDR.egressTcp}/tcp: open (wan sees ${ADDR.lan})`]);
  });

  test("the nft file alone: every probe as the policy says, IPv4 and IPv6; no iptables rule", async () => {
    const r = compile(policy(lab!), { format: "nft" });
    expect(r.ok, formatDiagnostics(r.diagnostics, "policy.dw", policy(lab!))).toBe(true);
    lab!.reset();
    lab!.host.run(["nft", "flush", "ruleset"]);
    expect(lab!.host.run(["nft", "-f", "-"], r.output!).stderr).toBe("");
    const want = lines(lab!);
    expect(await matrix(lab!, want)).toEqual(want.map(([from, addr, port, proto, w]) => `${from} -> ${addr}:${port}/${proto}: ${w}`));
    expect(lab!.save(4).split("\n").filter((l) => l.startsWith("-A"))).toEqual([]);
    expect(lab!.save(6).split("\n").filter((l) => l.startsWith("-A"))).toEqual([]);
  });

  test("the iptables output of the same policy (for Docker 29.7) answers every probe the same way", async () => {
    lab!.host.run(["nft", "flush", "ruleset"]);
    lab!.reset();
    const out = (format: "iptables" | "ip6tables") => compile(policy(lab!), { format }).output!;
    lab!.load(out("iptables"), out("ip6tables"));
    const want = lines(lab!);
    expect(await matrix(lab!, want)).toEqual(want.map(([from, addr, port, proto, w]) => `${from} -> ${addr}:${port}/${proto}: ${w}`));
  });
});
