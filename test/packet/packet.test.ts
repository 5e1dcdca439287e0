// Real packets: a dockerd with "iptables": false runs in a host namespace between a "wan"
// and a "lan" neighbour (test/lab). We load dockwall's compiled rules and check with real
// connections that what the policy allows is open — and that the container sees the real
// client address — and that everything else is closed: the DNAT path, docker-proxy, routing
// straight to a container address, and the 127.0.0.1-publish leak.
import { afterAll, beforeAll, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { dockerVersion } from "../../src/facts/engine.js";
import { ADDR, describeDocker, startLab, type Lab, type LabContainer, type LabSpec, type ProbeFrom, type Proto } from "../lab/dockerlab.js";

function rules(policy: string, format: "iptables" | "ip6tables"): string {
  const r = compile(policy, { format });
  if (!r.ok) throw new Error(formatDiagnostics(r.diagnostics, "policy.dw", policy));
  return r.output!;
}

/** One lab for the tests of a describe block: started before them, stopped after. */
function useLab(spec: LabSpec): () => Lab {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await startLab(spec);
  });
  afterAll(async () => {
    await lab?.stop();
  });
  return () => lab!;
}

type Expect = [from: ProbeFrom, addr: string, port: number, proto: Proto, want: "open" | "closed", client?: string];

/** Probes every line in parallel and compares the whole matrix at once (one readable diff). */
async function matrix(lab: Lab, lines: Expect[]): Promise<void> {
  const got = await Promise.all(
    lines.map(async ([from, addr, port, proto, , client]) => {
      const r = await lab.probe(from, addr, port, proto, { retries: 1 });
      const seen = r.open && client !== undefined ? ` client ${r.clientAddr}` : "";
      return `${from} -> ${addr}:${port}/${proto}: ${r.open ? "open" : "closed"}${seen}`;
    }),
  );
  const want = lines.map(([from, addr, port, proto, w, client]) => `${from} -> ${addr}:${port}/${proto}: ${w}${w === "open" && client ? ` client ${client}` : ""}`);
  expect(got).toEqual(want);
}

const containers: LabContainer[] = [
  { name: "web", ip: "172.17.0.2", publish: ["8080:80", "8443:443"], listen: ["tcp:80", "tcp:443"] },
  { name: "dns", ip: "172.17.0.3", publish: ["5353:53/udp"], listen: ["udp:53"] },
  { name: "secret", ip: "172.17.0.4", publish: ["9090:90"], listen: ["tcp:90"] },
  { name: "local", ip: "172.17.0.5", publish: ["127.0.0.1:9000:9000"], listen: ["tcp:9000"] },
];

const declarations = `
container web    { network bridge 172.17.0.2; publish 8080:80; publish 8443:443; }
container dns    { network bridge 172.17.0.3; publish 5353:53/udp; }
container secret { network bridge 172.17.0.4; publish 9090:90; }
container local  { network bridge 172.17.0.5; publish 127.0.0.1:9000:9000; }
`;

describeDocker("packets, userland-proxy off", () => {
  const labOf = useLab({ userlandProxy: false, containers });

  const policy = `
docker { version 20.10; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; }
${declarations}
allow lan to web:8080;                              # an allow by zone
allow wan from 198.51.100.0/25 to web:8443;         # narrowed by source: the wan client is inside
allow wan from 198.51.100.128/25 to web:8080;       # narrowed by source: the wan client is outside
allow any to dns:5353/udp;                          # a udp port
`;

  test("iptables off: allowed ports open with the real client address, the rest closed on every path", async () => {
    const lab = labOf();
    lab.reset();
    lab.load(rules(policy, "iptables"));
    await matrix(lab, [
      ["lan", ADDR.hostLan, 8080, "tcp", "open", ADDR.lan],
      ["lan", ADDR.hostWan, 8080, "tcp", "open", ADDR.lan],
      ["wan", ADDR.hostWan, 8080, "tcp", "closed"],
      ["wan", ADDR.hostWan, 8443, "tcp", "open", ADDR.wan],
      ["lan", ADDR.hostLan, 8443, "tcp", "closed"],
      ["wan", ADDR.hostWan, 9090, "tcp", "closed"], // published, no allow
      ["lan", ADDR.hostLan, 9090, "tcp", "closed"],
      ["wan", ADDR.hostWan, 5353, "udp", "open", ADDR.wan],
      ["lan", ADDR.hostLan, 5353, "udp", "open", ADDR.lan],
      ["lan", "172.17.0.2", 80, "tcp", "closed"], // routing straight to the container
      ["wan", "172.17.0.2", 443, "tcp", "closed"],
      ["wan", "172.17.0.4", 90, "tcp", "closed"],
      ["lan", "127.0.0.1", 9000, "tcp", "closed"], // the 127.0.0.1-publish leak
      ["host", "127.0.0.1", 9000, "tcp", "open"], // host-only publish works for the host
      ["host", ADDR.hostLan, 9090, "tcp", "open"], // the host itself follows Docker's rules
      ["ctr:web", ADDR.hostLan, 9090, "tcp", "open"], // so do containers
      ["ctr:web", ADDR.wan, ADDR.egressTcp, "tcp", "open"], // and they reach out
    ]);
  });

  test("--docker-version auto asks this real dockerd (Engine API on its socket)", async () => {
    const lab = labOf();
    expect(await dockerVersion({ DOCKER_HOST: lab.dockerHost })).toMatch(/^20\.10\.\d+$/);
  });

  test("published open: Docker's exact behaviour, direct routing included", async () => {
    const lab = labOf();
    lab.reset();
    lab.load(rules(policy.replace("userland-proxy off;", "userland-proxy off; published open;"), "iptables"));
    await matrix(lab, [
      ["wan", ADDR.hostWan, 9090, "tcp", "open", ADDR.wan],
      ["wan", "172.17.0.4", 90, "tcp", "open", ADDR.wan],
      ["lan", "127.0.0.1", 9000, "tcp", "open", ADDR.lan],
    ]);
  });

  test("iptables on: on top of Docker's own chains, only DOCKER-USER changes, and it holds", async () => {
    const lab = labOf();
    const on = policy.replace("iptables off;", "iptables on;");
    const dockers = rules(policy.replace("userland-proxy off;", "userland-proxy off; published open;"), "iptables");
    lab.reset();
    lab.load(dockers); // what dockerd writes (proven rule for rule by the parity tests)
    lab.loadNoflush(rules(on, "iptables"));
    await matrix(lab, [
      ["lan", ADDR.hostLan, 8080, "tcp", "open", ADDR.lan],
      ["wan", ADDR.hostWan, 8080, "tcp", "closed"],
      ["wan", ADDR.hostWan, 8443, "tcp", "open", ADDR.wan],
      ["wan", ADDR.hostWan, 9090, "tcp", "closed"],
      ["wan", "172.17.0.2", 443, "tcp", "closed"],
      ["lan", "127.0.0.1", 9000, "tcp", "closed"],
      ["wan", ADDR.hostWan, 5353, "udp", "open", ADDR.wan],
    ]);
  });
});

describeDocker("packets, userland-proxy on (docker-proxy listens on 0.0.0.0 and ::)", () => {
  const labOf = useLab({ userlandProxy: true, linkIpv6: true, containers });

  const policy = `
docker { version 20.10; iptables off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
${declarations}
allow lan to web:8080;
allow any to dns:5353/udp;
`;

  test("the proxy runs (so the tests below are not vacuous)", () => {
    const lab = labOf();
    expect(lab.proxies().join("\n")).toContain("-host-ip :: -host-port 8080");
  });

  test("allowed ports open on the DNAT path and through the proxy; closed ones closed on both", async () => {
    const lab = labOf();
    lab.reset();
    lab.load(rules(policy, "iptables"), rules(policy, "ip6tables"));
    await matrix(lab, [
      ["lan", ADDR.hostLan, 8080, "tcp", "open", ADDR.lan], // DNAT keeps the client address
      ["wan", ADDR.hostWan, 8080, "tcp", "closed"],
      ["lan", ADDR.hostLan6, 8080, "tcp", "open"], // docker-proxy on ::, allowed
      ["wan", ADDR.hostWan6, 8080, "tcp", "closed"], // docker-proxy on ::, not allowed
      ["wan", ADDR.hostWan6, 9090, "tcp", "closed"],
      ["lan", ADDR.hostLan6, 9090, "tcp", "closed"],
      ["wan", ADDR.hostWan6, 5353, "udp", "open"],
      ["wan", "172.17.0.2", 80, "tcp", "closed"],
      ["lan", "127.0.0.1", 9000, "tcp", "closed"],
      ["host", "127.0.0.1", 9000, "tcp", "open"],
    ]);
  });

  test("a host block: INPUT DROP, the host's services by zone, published ports still as allowed", async () => {
    const lab = labOf();
    await lab.serveOnHost(22, "sshd");
    await lab.serveOnHost(2222, "other");
    const withHost = `${policy}\nhost { allow lan tcp 22; }\n`;
    lab.reset();
    lab.load(rules(withHost, "iptables"), rules(withHost, "ip6tables"));
    await matrix(lab, [
      ["lan", ADDR.hostLan, 22, "tcp", "open", ADDR.lan],
      ["lan", ADDR.hostLan6, 22, "tcp", "open", ADDR.lan6],
      ["wan", ADDR.hostWan, 22, "tcp", "closed"],
      ["lan", ADDR.hostLan, 2222, "tcp", "closed"],
      ["host", "127.0.0.1", 2222, "tcp", "open"],
      ["lan", ADDR.hostLan, 8080, "tcp", "open", ADDR.lan],
      ["lan", ADDR.hostLan6, 8080, "tcp", "open"],
      ["wan", ADDR.hostWan6, 8080, "tcp", "closed"],
      ["wan", ADDR.hostWan, 5353, "udp", "open", ADDR.wan],
    ]);
  });

  test("with no rules at all, docker-proxy leaves every published port open (why dockwall guards it)", async () => {
    const lab = labOf();
    lab.reset();
    await matrix(lab, [
      ["wan", ADDR.hostWan, 9090, "tcp", "open"],
      ["wan", ADDR.hostWan6, 9090, "tcp", "open"],
    ]);
  });
});

describeDocker("packets, a Docker 29 layout hosted by a dockerd with \"iptables\": false", () => {
  // dockerd 20.10 with iptables off writes no rules, so it can host the rules of any layout.
  const labOf = useLab({ userlandProxy: false, containers });

  const policy = `
docker { version 29.7; iptables off; ip6tables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; }
${declarations}
allow lan to web:8080;
allow wan from 198.51.100.0/25 to web:8443;
allow any to dns:5353/udp;
`;

  test("allow, closed ports, direct routing and the loopback leak hold in the 29 layout", async () => {
    const lab = labOf();
    const v4 = rules(policy, "iptables");
    expect(v4).toContain(":DOCKER-INTERNAL - [0:0]"); // really the 29 layout
    lab.reset();
    lab.load(v4);
    await matrix(lab, [
      ["lan", ADDR.hostLan, 8080, "tcp", "open", ADDR.lan],
      ["wan", ADDR.hostWan, 8080, "tcp", "closed"],
      ["wan", ADDR.hostWan, 8443, "tcp", "open", ADDR.wan],
      ["lan", ADDR.hostLan, 8443, "tcp", "closed"],
      ["wan", ADDR.hostWan, 9090, "tcp", "closed"],
      ["wan", ADDR.hostWan, 5353, "udp", "open", ADDR.wan],
      ["lan", "172.17.0.2", 80, "tcp", "closed"],
      ["wan", "172.17.0.4", 90, "tcp", "closed"],
      ["lan", "127.0.0.1", 9000, "tcp", "closed"],
      ["host", "127.0.0.1", 9000, "tcp", "open"],
      ["ctr:web", ADDR.wan, ADDR.egressTcp, "tcp", "open"],
    ]);
  });

  test("published open in the 29 layout: Docker's own raw-table drops still stop direct routing", async () => {
    const lab = labOf();
    lab.reset();
    lab.load(rules(policy.replace("userland-proxy off;", "userland-proxy off; published open;"), "iptables"));
    await matrix(lab, [
      ["wan", ADDR.hostWan, 9090, "tcp", "open", ADDR.wan],
      ["wan", "172.17.0.4", 90, "tcp", "closed"],
      ["lan", "127.0.0.1", 9000, "tcp", "closed"],
    ]);
  });
});

describeDocker("packets over IPv6 (Docker 28 layout, ip6tables on)", () => {
  const labOf = useLab({
      userlandProxy: false,
      ipv6: true,
      containers: [
        { name: "web", ip: "172.17.0.2", publish: ["8080:80", "8443:443"], listen: ["tcp:80", "tcp:443"] },
        { name: "dns", ip: "172.17.0.3", publish: ["5353:53/udp"], listen: ["udp:53"] },
      ],
    });

  const policyFor = (lab: Lab): string => `
docker { version 28.5; iptables off; ip6tables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24, 2001:db8:77::/64; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet 2001:db8:1::/64; }
container web { network bridge 172.17.0.2, ${lab.containers.web!.ip6}; publish 8080:80; publish 8443:443; }
container dns { network bridge 172.17.0.3, ${lab.containers.dns!.ip6}; publish 5353:53/udp; }
allow lan to web:8080;
allow any to dns:5353/udp;
`;

  test("published ports reach containers over IPv6 with the client's address; closed ones stay closed", async () => {
    const lab = labOf();
    const p = policyFor(lab);
    lab.reset();
    lab.load(rules(p, "iptables"), rules(p, "ip6tables"));
    const web6 = lab.containers.web!.ip6!;
    await matrix(lab, [
      ["lan", ADDR.hostLan6, 8080, "tcp", "open", ADDR.lan6],
      ["lan", ADDR.hostLan, 8080, "tcp", "open", ADDR.lan],
      ["wan", ADDR.hostWan6, 8080, "tcp", "closed"],
      ["lan", ADDR.hostLan6, 8443, "tcp", "closed"],
      ["wan", ADDR.hostWan6, 5353, "udp", "open", ADDR.wan6],
      ["lan", web6, 80, "tcp", "closed"], // routing straight to the container's IPv6 address
      ["wan", web6, 443, "tcp", "closed"],
    ]);
  });
});
