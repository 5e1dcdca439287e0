// `forward` over IPv6 with real packets: with `iptables off` dockwall owns FORWARD, and it owns
// it in both families. Whatever the layout writes for IPv6 (Docker 20.10–26.1 with ip6tables
// off write none; 28 and 29 leave FORWARD ACCEPT without an IPv6 network), a policy that says
// `forward lan to wan;` lets lan out to wan and nothing else through, over IPv4 and IPv6 alike,
// while the containers' own IPv6 traffic still follows Docker's rules.
import { afterAll, beforeAll, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { ADDR, describeDocker, startLab, type Lab, type ProbeFrom, type Proto } from "../lab/dockerlab.js";

function rules(policy: string, format: "iptables" | "ip6tables"): string {
  const r = compile(policy, { format });
  if (!r.ok) throw new Error(formatDiagnostics(r.diagnostics, "policy.dw", policy));
  return r.output!;
}

type Expect = [from: ProbeFrom, addr: string, port: number, proto: Proto, want: "open" | "closed"];

async function matrix(lab: Lab, lines: Expect[]): Promise<void> {
  const got = await Promise.all(
    lines.map(async ([from, addr, port, proto]) => {
      const r = await lab.probe(from, addr, port, proto, { retries: 1 });
      return `${from} -> ${addr}:${port}/${proto}: ${r.open ? "open" : "closed"}`;
    }),
  );
  expect(got).toEqual(lines.map(([from, addr, port, proto, w]) => `${from} -> ${addr}:${port}/${proto}: ${w}`));
}

/** lan may open connections out to wan; wan may open none to lan; in both families. */
const routed: Expect[] = [
  ["lan", ADDR.wan, ADDR.egressTcp, "tcp", "open"],
  ["lan", ADDR.wan6, ADDR.egressTcp, "tcp", "open"],
  ["lan", ADDR.wan6, ADDR.egressUdp, "udp", "open"],
  ["wan", ADDR.lan, ADDR.egressTcp, "tcp", "closed"],
  ["wan", ADDR.lan6, ADDR.egressTcp, "tcp", "closed"],
  ["wan", ADDR.lan6, ADDR.egressUdp, "udp", "closed"],
];

describeDocker("packets: forward over IPv6 (dockwall owns FORWARD in both families)", () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await startLab({ userlandProxy: false, ipv6: true, containers: [{ name: "web", ip: "172.17.0.2", publish: ["8080:80"], listen: ["tcp:80"] }] });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  const zones = `
zone wan { interface eth0; }
zone lan { interface eth1; }
forward lan to wan;
`;
  const web = (l: Lab) => `container web { network bridge 172.17.0.2, ${l.containers.web!.ip6}; publish 8080:80; }\n`;
  const dualStack = "network bridge { bridge docker0; subnet 172.17.0.0/16; subnet 2001:db8:1::/64; }\n";

  test("with no rules at all the host routes everything (so the tests below are not vacuous)", async () => {
    lab!.reset();
    await matrix(lab!, [
      ["wan", ADDR.lan6, ADDR.egressTcp, "tcp", "open"],
      ["wan", ADDR.lan, ADDR.egressTcp, "tcp", "open"],
    ]);
  });

  // Docker 20.10 – 26.1 with ip6tables off (their default) write no IPv6 rules at all; 28 and 29
  // write IPv6 FORWARD with policy ACCEPT when no network has an IPv6 subnet.
  for (const [what, docker] of [
    ["20.10, ip6tables off, no IPv6 network", "docker { version 20.10; iptables off; userland-proxy off; }"],
    ["26.1, ip6tables off, no IPv6 network", "docker { version 26.1; iptables off; userland-proxy off; }"],
    ["28.5, ip6tables on, no IPv6 network", "docker { version 28.5; iptables off; userland-proxy off; }"],
    ["29.7, ip6tables on, no IPv6 network", "docker { version 29.7; iptables off; userland-proxy off; }"],
  ] as const) {
    test(`Docker ${what}: forward lan to wan holds over IPv6 as over IPv4`, async () => {
      const p = `${docker}\n${zones}`;
      lab!.reset();
      lab!.load(rules(p, "iptables"), rules(p, "ip6tables"));
      await matrix(lab!, routed);
    });
  }

  for (const [what, docker] of [
    ["28.5, ip6tables on", "docker { version 28.5; iptables off; ip6tables on; userland-proxy off; }"],
    ["20.10, ip6tables off", "docker { version 20.10; iptables off; ip6tables off; userland-proxy off; }"],
  ] as const) {
    test(`Docker ${what}, an IPv6 network: forward holds, the containers' own IPv6 traffic still goes out, nothing routes in to them`, async () => {
      const p = `${docker}\n${dualStack}${zones}${web(lab!)}allow lan to web:8080;\n`;
      lab!.reset();
      lab!.load(rules(p, "iptables"), rules(p, "ip6tables"));
      const web6 = lab!.containers.web!.ip6!;
      await matrix(lab!, [
        ...routed,
        ["ctr:web", ADDR.wan6, ADDR.egressTcp, "tcp", "open"],
        ["ctr:web", ADDR.wan, ADDR.egressTcp, "tcp", "open"],
        ["wan", web6, 80, "tcp", "closed"], // routing straight to the container's IPv6 address
        ["lan", web6, 80, "tcp", "closed"], // allowed only on the published port, not directly
      ]);
    });
  }
});
