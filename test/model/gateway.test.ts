// The network a container on several networks publishes on (its gateway network), as libnetwork
// picks it (sandbox.go, epHeap.Less): not an internal network; a dual-stack network (an IPv4 and an
// IPv6 gateway) before one with a single family; then the name that sorts first. A review (real
// dockerd 20.10.24): web2 on `side` (IPv4 only) and `zeta` (dual-stack) had its default routes, and
// its port mappings, on zeta; dockwall wrote the DNAT to side's address and none over IPv6.
import { expect, test } from "vitest";
import { compile } from "../../src/compile.js";

const policy = (extra = "") => `docker { version 20.10; iptables off; ip6tables on; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network side { bridge br-side; subnet 10.30.0.0/24; }
network zeta { bridge br-zeta; subnet 10.50.0.0/24; subnet fd00:50::/64; }
container web2 { network side 10.30.0.2; network zeta 10.50.0.2, fd00:50::2; publish 8080:80; ${extra}}
allow lan to web2;
`;
const dnat = (text: string, format: "iptables" | "ip6tables") => compile(text, { format }).output!.split("\n").filter((l) => l.includes("-j DNAT"));

test("a dual-stack network before an IPv4-only one whose name sorts first", () => {
  expect(dnat(policy(), "iptables")).toEqual(["-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.50.0.2:80"]);
  expect(dnat(policy(), "ip6tables")).toEqual(["-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:50::2]:80"]);
});

test("`gateway NETWORK;` still names it", () => {
  expect(dnat(policy("gateway side; "), "iptables")).toEqual(["-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.30.0.2:80"]);
});

test("two networks of one kind: the name that sorts first", () => {
  const text = policy().replace("subnet fd00:50::/64; ", "");
  expect(dnat(text.replace(", fd00:50::2", ""), "iptables")).toEqual(["-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.30.0.2:80"]);
});

test("a network with an IPv6 subnet where the container has no IPv6 address is not dual-stack to it (a review: Docker's network without --ipv6 keeps an IPv6 subnet in IPAM, and its endpoints no IPv6 gateway)", () => {
  const text = policy().replace("network zeta 10.50.0.2, fd00:50::2;", "network zeta 10.50.0.2;");
  expect(dnat(text, "iptables")).toEqual(["-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.30.0.2:80"]);
});

// Docker 28+: gateway priorities (`docker network connect --gw-priority N`, EndpointSettings.GwPriority), and a
// default route per family (moby: libnetwork Endpoint.Less, getGatewayEndpoint; per family from 29.4.1, PR #52328).
// Where Docker's IPv4 and IPv6 choices are not the one network dockwall publishes on, the facts are refused.
const network = (name: string, id: string, subnets: string[]) => ({ Name: name, Id: id.padEnd(64, "0"), Created: "2026-01-01T00:00:00Z", Driver: "bridge", EnableIPv6: subnets.some((s) => s.includes(":")), Internal: false, Options: {}, IPAM: { Driver: "default", Options: {}, Config: subnets.map((s) => ({ Subnet: s })) } });
const endpoint = (v4: string, v6: string, prio?: number) => ({ IPAddress: v4, GlobalIPv6Address: v6, ...(prio === undefined ? {} : { GwPriority: prio }) });
const facts = (side?: number, zeta?: number) => ({
  networks: [network("side", "a1", ["10.30.0.0/24"]), network("zeta", "b2", ["10.50.0.0/24", "fd00:50::/64"])],
  containers: [
    {
      Id: "c".repeat(64),
      Name: "/web2",
      State: { Running: true, StartedAt: "2026-01-01T00:00:00Z" },
      Config: { Labels: {} },
      HostConfig: { NetworkMode: "side" },
      NetworkSettings: { Networks: { side: endpoint("10.30.0.2", "", side), zeta: endpoint("10.50.0.2", "fd00:50::2", zeta) }, Ports: { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8080" }, { HostIp: "::", HostPort: "8080" }] } },
    },
  ],
});
const live = (version: string) => `docker { version ${version}; iptables off; ip6tables on; userland-proxy off; }\nzone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }\nallow lan to web2;\n`;
const withFacts = (version: string, side?: number, zeta?: number, factsErrors?: "warn") => compile(live(version), { format: "iptables", facts: { raw: facts(side, zeta) as never, source: "state.json" }, ...(factsErrors ? { factsErrors } : {}) });

test("gateway priorities: the highest publishes, as Docker 28+ routes; equal ones change nothing", () => {
  // zeta (dual-stack) with the higher priority: both families there, as without priorities.
  for (const [v, side, zeta] of [["29.7", 0, 5], ["28.5", 0, 5], ["29.7", 3, 3], ["29.7", undefined, undefined]] as const) {
    const r = withFacts(v, side, zeta);
    expect(r.diagnostics.filter((d) => d.severity === "error"), `${v} ${side} ${zeta}`).toEqual([]);
    expect(r.output!.split("\n").filter((l) => l.includes("-j DNAT"))).toEqual(["-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.50.0.2:80"]);
  }
});

test("gateway priorities Docker splits by family (29.4.1+), or that Docker 28 passes over for a dual-stack network: refused at the container; under watch, the container alone is left out", () => {
  // side (IPv4 only) above zeta: 29.7 publishes IPv4 on side and IPv6 on zeta; dockwall would publish both on side.
  const r = withFacts("29.7", 10, 0);
  expect(r.ok).toBe(false);
  expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => [d.code, d.message])).toEqual([
    ["gateway-priority", "container 'web2' has gateway priorities (side 10, zeta 0): Docker 29.7 sets its published ports up where its default routes are, its IPv4 bindings on network 'side' and its IPv6 bindings on network 'zeta', and dockwall publishes a container on one network ('side')"],
  ]);
  // 28.x: the first network with both gateways takes both families, whatever the priorities (moby's FIXME until 29.4.1).
  const r28 = withFacts("28.5", 10, 0);
  expect(r28.diagnostics.filter((d) => d.severity === "error").map((d) => d.message)).toEqual([
    "container 'web2' has gateway priorities (side 10, zeta 0): Docker 28.5 sets its published ports up where its default routes are, them on network 'zeta', and dockwall publishes a container on one network ('side')",
  ]);
  const w = withFacts("29.7", 10, 0, "warn");
  expect(w.ok).toBe(true);
  expect(w.diagnostics.find((d) => d.code === "gateway-priority")?.severity).toBe("warning");
  expect(w.output!).not.toMatch(/-j DNAT|10\.30\.0\.2|10\.50\.0\.2/);
});

// Gateway priorities came with Docker 28: facts that have them are from a dockerd of 28 or later, whatever the policy says its
// version is. Compiled for 27, the priority chose the network silently (Docker 27 has no priorities to order by).
test("gateway priorities in facts for a Docker before 28: refused, naming the version the policy says", () => {
  for (const v of ["27.5", "20.10"]) {
    const r = withFacts(v, 0, 5);
    expect(r.ok, v).toBe(false);
    expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => [d.code, d.message, d.help])).toEqual([
      [
        "gateway-priority",
        `container 'web2' has gateway priorities (side 0, zeta 5), which came with Docker 28: these facts are not from the Docker ${v} the policy is compiled for`,
        "set the policy's 'docker { version …; }' to the running dockerd's (docker version --format '{{.Server.Version}}'), or compile with --docker-version auto",
      ],
    ]);
  }
  // (Without priorities, as before.)
  expect(withFacts("27.5").diagnostics.filter((d) => d.severity === "error")).toEqual([]);
});

test("gateway priorities between two dual-stack networks: the higher one publishes, though the other's name sorts first", () => {
  const raw = facts(0, 5);
  raw.networks[0] = network("side", "a1", ["10.30.0.0/24", "fd00:30::/64"]);
  raw.containers[0]!.NetworkSettings.Networks.side = endpoint("10.30.0.2", "fd00:30::2", 0);
  for (const format of ["iptables", "ip6tables"] as const) {
    const r = compile(live("29.7"), { format, facts: { raw: raw as never, source: "state.json" } });
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(r.output!.split("\n").filter((l) => l.includes("-j DNAT"))).toEqual([format === "iptables" ? "-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.50.0.2:80" : "-A DOCKER ! -s fe80::/10 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:50::2]:80"]);
  }
});
