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
