// A network made without --ipv6 may still hold an IPv6 subnet in its IPAM config (`docker network
// create --subnet 10.70.0.0/24 --subnet fd00:70::/64`, or a compose file's ipam without
// enable_ipv6: dockerd 20.10 accepts both, with EnableIPv6 false). libnetwork then gives its
// endpoints no IPv6 address and its bridge no IPv6 gateway, and Docker writes no IPv6 rules for
// it (a review): the network is IPv4-only to dockwall too.
import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { compile } from "../../src/compile.js";

type Facts = { networks: Record<string, any>[]; containers: Record<string, any>[] };
const corpus = (): Facts => JSON.parse(readFileSync(new URL("./corpus/user-net-fixed/state.json", import.meta.url), "utf8")) as Facts;

const POLICY = `docker { version 20.10; iptables off; ip6tables on; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
allow lan to web;
`;

function withIpv6Subnet(enable: boolean): Facts {
  const f = corpus();
  const app = f.networks.find((n) => n.Name === "app")!;
  app.EnableIPv6 = enable;
  app.IPAM.Config.push({ Subnet: "fd00:70::/64", Gateway: "fd00:70::1" });
  return f;
}

const v6 = (f: Facts) => compile(POLICY, { format: "ip6tables", facts: { raw: f as never, source: "host.json" } });

test("EnableIPv6 false: its IPv6 subnet is none of dockwall's rules, as it is none of Docker's", () => {
  const off = v6(withIpv6Subnet(false));
  expect(off.ok, off.diagnostics.map((d) => d.message).join("; ")).toBe(true);
  expect(off.output!).not.toContain("fd00:70::");
  // With IPv6 enabled on it, the same subnet is the network's (the rules Docker writes for it).
  const on = v6(withIpv6Subnet(true));
  expect(on.ok).toBe(true);
  expect(on.output!).toContain("fd00:70::/64");
});

// Docker 28+: a network without IPv4 (EnableIPv4 false, `docker network create --ipv4=false`), its containers with IPv6
// addresses alone. dockwall does not reproduce Docker's rules for it: refused as such (the check cases have the message);
// under watch the network and its endpoints are left out, and the rest applied.
test("EnableIPv4 false: refused at the network; under watch it alone is left out", () => {
  const f = corpus();
  f.networks.push({ Name: "six", Id: "6".repeat(64), Created: "2026-01-01T00:00:00Z", Driver: "bridge", EnableIPv4: false, EnableIPv6: true, Internal: false, Options: {}, IPAM: { Driver: "default", Options: {}, Config: [{ Subnet: "fd00:66::/64" }] } });
  const web = f.containers.find((c) => c.Name === "/web")!;
  web.NetworkSettings.Networks.six = { IPAddress: "", GlobalIPv6Address: "fd00:66::2" };
  const strict = compile(POLICY, { format: "iptables", facts: { raw: f as never, source: "host.json" } });
  expect(strict.diagnostics.filter((d) => d.severity === "error").map((d) => d.code)).toEqual(["ipv6-only"]);
  const watch = compile(POLICY, { format: "iptables", facts: { raw: f as never, source: "host.json" }, factsErrors: "warn" });
  expect(watch.ok).toBe(true);
  expect(watch.output!).toMatch(/-j DNAT --to-destination 172\.\d+\.\d+\.\d+:80/);
  expect(watch.output!).not.toMatch(/fd00:66/);
});
