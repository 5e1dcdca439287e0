// Bad inputs and the exact diagnostics `dockwall check` prints for them (file name "p.dw").
// A table test: the checker's and parser's wording is part of the interface.
import { readFileSync } from "node:fs";

/** Docker's facts of docker-corpus/publish-tcp (web on docker0, 8080:80), and the same with a container object that lacks its State. */
const publishTcp = readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8");
/** publish-tcp's web on a dual-stack network too, with a higher gateway priority on the default bridge (IPv4 only): Docker 29.4.1+ splits its bindings by family. */
const gwPriority = (() => {
  const f = JSON.parse(publishTcp) as { networks: Record<string, unknown>[]; containers: Record<string, any>[] };
  f.networks.push({ Name: "zeta", Id: "e".repeat(64), Created: "2026-01-01T00:00:00Z", Driver: "bridge", EnableIPv6: true, Internal: false, Options: {}, IPAM: { Driver: "default", Options: {}, Config: [{ Subnet: "10.50.0.0/24" }, { Subnet: "fd00:50::/64" }] } });
  const nets = f.containers[0]!.NetworkSettings.Networks;
  nets.bridge.GwPriority = 10;
  nets.zeta = { IPAddress: "10.50.0.2", GlobalIPv6Address: "fd00:50::2" };
  return JSON.stringify(f);
})();
/** publish-tcp's web on an IPv6-only network (Docker 28+) too. */
const ipv6Only = (() => {
  const f = JSON.parse(publishTcp) as { networks: Record<string, unknown>[]; containers: Record<string, any>[] };
  f.networks.push({ Name: "six", Id: "6".repeat(64), Created: "2026-01-01T00:00:00Z", Driver: "bridge", EnableIPv4: false, EnableIPv6: true, Internal: false, Options: {}, IPAM: { Driver: "default", Options: {}, Config: [{ Subnet: "fd00:66::/64" }] } });
  f.containers[0]!.NetworkSettings.Networks.six = { IPAddress: "", GlobalIPv6Address: "fd00:66::2" };
  return JSON.stringify(f);
})();
const withoutState = (() => {
  const f = JSON.parse(publishTcp) as { containers: Record<string, unknown>[] };
  delete f.containers[0]!.State;
  return JSON.stringify(f);
})();

/** Docker's facts of a corpus scenario, changed: a setting that changes Docker's rules in a way dockwall does not reproduce. */
type Facts = { networks: Record<string, any>[]; containers: Record<string, any>[]; info?: unknown };
function changed(scenario: string, change: (f: Facts) => void): string {
  const f = JSON.parse(readFileSync(new URL(`../facts/corpus/${scenario}/state.json`, import.meta.url), "utf8")) as Facts;
  change(f);
  return JSON.stringify(f);
}
/** docker-corpus/publish-tcp with a macvlan network 'lan' (parent eth1) that web is on too. */
const onMacvlan = changed("publish-tcp", (f) => {
  const lan = { ...structuredClone(f.networks[0]!), Name: "lan", Id: "5a".repeat(32), Driver: "macvlan", Options: { parent: "eth1" }, Containers: {} };
  f.networks.push(lan);
  f.containers[0]!.NetworkSettings.Networks.lan = { NetworkID: lan.Id, IPAddress: "192.168.1.50", IPPrefixLen: 24 };
});
/** docker-corpus/publish-tcp's web, moved to the host's network as dockerd 20.10 shows it (docker run --network host -p 9100:9100). */
const onHostNetwork = changed("publish-tcp", (f) => {
  const web = f.containers[0]!;
  web.HostConfig.NetworkMode = "host";
  web.HostConfig.PortBindings = { "9100/tcp": [{ HostIp: "", HostPort: "9100" }] };
  web.Config.ExposedPorts = { "9100/tcp": {} };
  web.NetworkSettings.Ports = {};
  web.NetworkSettings.Networks = { host: { NetworkID: f.networks.find((n) => n.Name === "host")!.Id, IPAddress: "" } };
});

export interface Case {
  name: string;
  input: string;
  /** stderr, exactly. */
  expected: string;
  /** exit code: 2 for errors, 0 for warnings only. */
  exit: 0 | 2;
  /** Docker's facts (JSON, as 'dockwall facts' writes them): checked with --facts host.json. */
  facts?: string;
}

export const cases: Case[] = [
  {
    name: "a '*' in a zone's interface (iptables and nftables match the character itself)",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth*; }
`,
    exit: 0,
    expected: `p.dw:2:25: warning: '*' in interface name 'eth*' is the character itself, not a wildcard: the zone matches only an interface called exactly that
2 | zone lan { interface eth*; }
  |                         ^
  = help: for every interface whose name starts with 'eth', write eth+
`,
  },
  {
    name: "subnet typo from a hand-written ferm config",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.17.0.0./16; }
`,
    exit: 2,
    expected: `p.dw:2:47: error: stray '.' in IPv4 address '172.17.0.0.'
2 | network app { bridge br-app; subnet 172.17.0.0./16; }
  |                                               ^
  = help: an IPv4 address has four numbers: remove this '.'
`,
  },
  {
    name: "missing semicolon",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1 }
`,
    exit: 2,
    expected: `p.dw:2:26: error: expected ';' but found '}'
2 | zone lan { interface eth1 }
  |                          ^
  = help: end the statement with ';'
`,
  },
  {
    name: "unclosed block",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1;
`,
    exit: 2,
    expected: `p.dw:2:27: error: expected '}' but found end of file
2 | zone lan { interface eth1;
  |                           ^
  = help: close the block with '}'
`,
  },
  {
    name: "unknown statement",
    input: `docker { version 20.10; userland-proxy off; published open; }
zonee lan { interface eth1; }
`,
    exit: 2,
    expected: `p.dw:2:1: error: expected a statement (docker, zone, network, container, allow, forward, host) but found 'zonee'
2 | zonee lan { interface eth1; }
  | ^^^^^
  = help: did you mean 'zone'?
`,
  },
  {
    name: "non-ASCII character",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; from 192.168.1.0/24; } # ok
zone wan { interface eth0’; }
`,
    exit: 2,
    expected: `p.dw:3:26: error: unexpected character '’'
3 | zone wan { interface eth0’; }
  |                          ^
  = help: names and values are plain ASCII; check for a pasted typographic character
`,
  },
  {
    name: "control bytes in the policy are shown escaped, in the source line and in the message",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1\x1b[2J\x07; }
`,
    exit: 2,
    expected: `p.dw:2:26: error: unexpected character '\\x1b'
2 | zone lan { interface eth1\\x1b[2J\\x07; }
  |                          ^^^^
p.dw:2:30: error: unexpected character '\\x07'
2 | zone lan { interface eth1\\x1b[2J\\x07; }
  |                                 ^^^^
`,
  },
  {
    name: "unknown network, with suggestion",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.0/16; }
container web { network ap 172.20.0.2; }
`,
    exit: 2,
    expected: `p.dw:3:25: error: unknown network 'ap'
3 | container web { network ap 172.20.0.2; }
  |                         ^^
  = help: did you mean 'app'?
p.dw:2:9: note: 'app' is declared here
2 | network app { bridge br-app; subnet 172.20.0.0/16; }
  |         ^^^
`,
  },
  {
    name: "unknown zone in allow",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lna to web:8080;
`,
    exit: 2,
    expected: `p.dw:4:7: error: unknown zone 'lna'
4 | allow lna to web:8080;
  |       ^^^
  = help: did you mean 'lan'?
p.dw:2:6: note: 'lan' is declared here
2 | zone lan { interface eth1; }
  |      ^^^
`,
  },
  {
    name: "a container no policy line declares, compiled without Docker's facts: add --docker",
    input: `docker { version 20.10; userland-proxy off; }
zone lan { interface eth1; }
allow lan to web:8080;
`,
    exit: 2,
    expected: `p.dw:3:14: error: unknown container 'web'
3 | allow lan to web:8080;
  |              ^^^
  = help: the containers dockerd runs come with --docker (or --facts FILE); without them, declare it: container web { network NET ADDR; publish …; }
`,
  },
  {
    name: "unknown container in allow",
    input: `docker { version 20.10; userland-proxy off; published open; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow any to wbe:8080;
`,
    exit: 2,
    expected: `p.dw:3:14: error: unknown container 'wbe'
3 | allow any to wbe:8080;
  |              ^^^
  = help: did you mean 'web'?
p.dw:2:11: note: 'web' is declared here
2 | container web { network bridge 172.17.0.2; publish 8080:80; }
  |           ^^^
`,
  },
  {
    name: "duplicate container",
    input: `docker { version 20.10; userland-proxy off; published open; }
container web { network bridge 172.17.0.2; }
container web { network bridge 172.17.0.3; }
`,
    exit: 2,
    expected: `p.dw:3:11: error: container 'web' is declared twice
3 | container web { network bridge 172.17.0.3; }
  |           ^^^
  = help: rename one of them or merge the two blocks
p.dw:2:11: note: first declared here
2 | container web { network bridge 172.17.0.2; }
  |           ^^^
`,
  },
  {
    name: "duplicate zone",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; }
zone lan { interface eth2; }
`,
    exit: 2,
    expected: `p.dw:3:6: error: zone 'lan' is declared twice
3 | zone lan { interface eth2; }
  |      ^^^
  = help: rename one of them or merge the two blocks
p.dw:2:6: note: first declared here
2 | zone lan { interface eth1; }
  |      ^^^
`,
  },
  {
    name: "two containers with one address",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.2; }
container b { network bridge 172.17.0.2; }
`,
    exit: 2,
    expected: `p.dw:3:30: error: containers 'a' and 'b' both have 172.17.0.2 on network 'bridge'
3 | container b { network bridge 172.17.0.2; }
  |                              ^^^^^^^^^^
  = help: give 'b' another address, e.g. 172.17.0.3
p.dw:2:30: note: 'a' has it here
2 | container a { network bridge 172.17.0.2; }
  |                              ^^^^^^^^^^
`,
  },
  {
    name: "host port published twice",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.2; publish 8080:80; }
container b { network bridge 172.17.0.3; publish 8080:8080; }
`,
    exit: 2,
    expected: `p.dw:3:50: error: host port 0.0.0.0:8080/tcp is already published by 'a'
3 | container b { network bridge 172.17.0.3; publish 8080:8080; }
  |                                                  ^^^^^^^^^
  = help: Docker would refuse to start 'b' (port is already allocated); publish on another host port
p.dw:2:50: note: published here
2 | container a { network bridge 172.17.0.2; publish 8080:80; }
  |                                                  ^^^^^^^
`,
  },
  {
    name: "host port range overlapping",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.2; publish 8000-8002:8000-8002; }
container b { network bridge 172.17.0.3; publish 127.0.0.1:8001:80; }
`,
    exit: 2,
    expected: `p.dw:3:50: error: host port 127.0.0.1:8001/tcp is already published by 'a'
3 | container b { network bridge 172.17.0.3; publish 127.0.0.1:8001:80; }
  |                                                  ^^^^^^^^^^^^^^^^^
  = help: Docker would refuse to start 'b' (port is already allocated); publish on another host port
p.dw:2:50: note: published here
2 | container a { network bridge 172.17.0.2; publish 8000-8002:8000-8002; }
  |                                                  ^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "address outside subnet",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.18.0.2; }
`,
    exit: 2,
    expected: `p.dw:2:30: error: 172.18.0.2 is outside network 'bridge''s subnet 172.17.0.0/16
2 | container a { network bridge 172.18.0.2; }
  |                              ^^^^^^^^^^
  = help: choose an address inside 172.17.0.0/16
`,
  },
  {
    name: "network address",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.0/16; }
container a { network app 172.20.0.0; }
`,
    exit: 2,
    expected: `p.dw:3:27: error: 172.20.0.0 is the network address of 172.20.0.0/16; no container can have it
3 | container a { network app 172.20.0.0; }
  |                           ^^^^^^^^^^
  = help: choose a host address, e.g. 172.20.0.2
`,
  },
  {
    name: "broadcast address",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.0/16; }
container a { network app 172.20.255.255; }
`,
    exit: 2,
    expected: `p.dw:3:27: error: 172.20.255.255 is the broadcast address of 172.20.0.0/16; no container can have it
3 | container a { network app 172.20.255.255; }
  |                           ^^^^^^^^^^^^^^
  = help: choose a host address, e.g. 172.20.0.2
`,
  },
  {
    name: "gateway address",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.1; }
`,
    exit: 2,
    expected: `p.dw:2:30: error: 172.17.0.1 is the gateway of network 'bridge' (the bridge's own address)
2 | container a { network bridge 172.17.0.1; }
  |                              ^^^^^^^^^^
  = help: choose another address, e.g. 172.17.0.2
`,
  },
  {
    name: "overlapping subnets",
    input: `docker { version 20.10; userland-proxy off; published open; }
network a { bridge br-a; subnet 172.20.0.0/16; }
network b { bridge br-b; subnet 172.20.128.0/17; }
`,
    exit: 2,
    expected: `p.dw:3:33: error: subnet 172.20.128.0/17 of network 'b' overlaps 172.20.0.0/16 of network 'a'
3 | network b { bridge br-b; subnet 172.20.128.0/17; }
  |                                 ^^^^^^^^^^^^^^^
  = help: Docker refuses overlapping networks; pick a subnet that does not overlap
p.dw:2:33: note: 'a''s subnet
2 | network a { bridge br-a; subnet 172.20.0.0/16; }
  |                                 ^^^^^^^^^^^^^
`,
  },
  {
    name: "overlapping the default bridge",
    input: `docker { version 20.10; userland-proxy off; published open; }
network a { bridge br-a; subnet 172.17.0.0/24; }
`,
    exit: 2,
    expected: `p.dw:2:33: error: subnet 172.17.0.0/24 of network 'a' overlaps 172.17.0.0/16 of network 'bridge'
2 | network a { bridge br-a; subnet 172.17.0.0/24; }
  |                                 ^^^^^^^^^^^^^
  = help: the default bridge uses 172.17.0.0/16; pick another subnet, or move the default bridge with 'bip' in the docker block
`,
  },
  {
    name: "port out of range",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.2; publish 70000:80; }
`,
    exit: 2,
    expected: `p.dw:2:50: error: port 70000 is out of range
2 | container a { network bridge 172.17.0.2; publish 70000:80; }
  |                                                  ^^^^^
  = help: a port is a number from 1 to 65535
`,
  },
  {
    name: "port zero in host allow",
    input: `docker { version 20.10; userland-proxy off; published open; }
host { allow any tcp 0; }
`,
    exit: 2,
    expected: `p.dw:2:22: error: port 0 is out of range
2 | host { allow any tcp 0; }
  |                      ^
  = help: a port is a number from 1 to 65535
`,
  },
  {
    name: "ranges of unequal length",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.2; publish 8000-8002:80-81; }
`,
    exit: 2,
    expected: `p.dw:2:50: error: host ports 8000-8002 (3) and container ports 80-81 (2) are ranges of different length
2 | container a { network bridge 172.17.0.2; publish 8000-8002:80-81; }
  |                                                  ^^^^^^^^^^^^^^^
  = help: give both sides the same number of ports, e.g. 8000-8002:80-82
`,
  },
  {
    name: "interface name too long",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface enp0s31f6-vlan100; }
`,
    exit: 2,
    expected: `p.dw:2:37: error: interface name 'enp0s31f6-vlan100' is 17 characters long; Linux allows at most 15
2 | zone lan { interface enp0s31f6-vlan100; }
  |                                     ^^
`,
  },
  {
    name: "interface name with slash",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br/app; subnet 172.20.0.0/16; }
`,
    exit: 2,
    expected: `p.dw:2:24: error: interface name 'br/app' contains '/', which Linux does not allow
2 | network app { bridge br/app; subnet 172.20.0.0/16; }
  |                        ^
`,
  },
  {
    name: "interface name with colon",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth0:1; }
`,
    exit: 2,
    expected: `p.dw:2:26: error: interface name 'eth0:1' contains ':', which Linux does not allow
2 | zone lan { interface eth0:1; }
  |                          ^
`,
  },
  {
    name: "unknown option",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.0/16; masq off; }
`,
    exit: 2,
    expected: `p.dw:2:52: error: unknown option 'masq' in network 'app'
2 | network app { bridge br-app; subnet 172.20.0.0/16; masq off; }
  |                                                    ^^^^
  = help: did you mean 'masquerade'?
`,
  },
  {
    name: "unknown docker option",
    input: `docker { version 20.10; userland_proxy off; published open; }
`,
    exit: 2,
    expected: `p.dw:1:25: error: unknown option 'userland_proxy' in the docker block
1 | docker { version 20.10; userland_proxy off; published open; }
  |                         ^^^^^^^^^^^^^^
  = help: did you mean 'userland-proxy'?
`,
  },
  {
    name: "second docker block",
    input: `docker { version 20.10; userland-proxy off; published open; }
docker { icc off; }
`,
    exit: 2,
    expected: `p.dw:2:1: error: a second docker block
2 | docker { icc off; }
  | ^^^^^^
  = help: put all daemon settings in one docker block
p.dw:1:1: note: the first docker block
1 | docker { version 20.10; userland-proxy off; published open; }
  | ^^^^^^
`,
  },
  {
    name: "bad switch value",
    input: `docker { version 20.10; iptables maybe; published open; userland-proxy off; }
`,
    exit: 2,
    expected: `p.dw:1:34: error: expected on or off, not 'maybe'
1 | docker { version 20.10; iptables maybe; published open; userland-proxy off; }
  |                                  ^^^^^
  = help: write on/off (yes/no also work)
`,
  },
  {
    name: "bad published value",
    input: `docker { version 20.10; published shut; userland-proxy off; }
`,
    exit: 2,
    expected: `p.dw:1:35: error: expected open or closed, not 'shut'
1 | docker { version 20.10; published shut; userland-proxy off; }
  |                                   ^^^^
  = help: published open keeps Docker's behaviour; published closed (the default) needs an allow
`,
  },
  {
    name: "allow names an unpublished port",
    input: `docker { version 20.10; userland-proxy off; published open; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow any to web:80;
`,
    exit: 2,
    expected: `p.dw:3:14: error: container 'web' does not publish port 80
3 | allow any to web:80;
  |              ^^^^^^
  = help: allow names host ports; 'web' publishes 8080/tcp
p.dw:2:11: note: 'web' is declared here
2 | container web { network bridge 172.17.0.2; publish 8080:80; }
  |           ^^^
`,
  },
  {
    name: "allow names the wrong protocol",
    input: `docker { version 20.10; userland-proxy off; published open; }
container dns { network bridge 172.17.0.2; publish 5353:53/udp; }
allow any to dns:5353/tcp;
`,
    exit: 2,
    expected: `p.dw:3:14: error: container 'dns' does not publish port 5353/tcp
3 | allow any to dns:5353/tcp;
  |              ^^^^^^^^^^^^
  = help: 'dns' publishes 5353/udp: write dns:5353/udp
p.dw:2:11: note: 'dns' is declared here
2 | container dns { network bridge 172.17.0.2; publish 5353:53/udp; }
  |           ^^^
`,
  },
  {
    name: "IPv6 address on an IPv4-only network",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.2, fd00::2; }
`,
    exit: 2,
    expected: `p.dw:2:42: error: fd00::2 is an IPv6 address but network 'bridge' has no IPv6 subnet
2 | container a { network bridge 172.17.0.2, fd00::2; }
  |                                          ^^^^^^^
  = help: add an IPv6 subnet to network 'bridge' (subnet fd00:…/64;)
`,
  },
  {
    name: "IPv6 source for an IPv4-only zone",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; from 192.168.1.0/24; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan from fd00::/8 to web:8080;
`,
    exit: 2,
    expected: `p.dw:4:16: error: IPv6 source in a rule for zone 'lan', whose sources are all IPv4
4 | allow lan from fd00::/8 to web:8080;
  |                ^^^^^^^^
  = help: this rule can never match; use an IPv4 source or another zone
p.dw:2:6: note: zone 'lan' is declared here
2 | zone lan { interface eth1; from 192.168.1.0/24; }
  |      ^^^
`,
  },
  {
    name: "IPv6 source for zones that are all IPv4",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; from 192.168.1.0/24; }
zone office { from 10.0.0.0/8; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan, office from 10.1.1.1, fd00::/8 to web:8080;
`,
    exit: 2,
    expected: `p.dw:5:34: error: IPv6 source in a rule for zones 'lan' and 'office', whose sources are all IPv4
5 | allow lan, office from 10.1.1.1, fd00::/8 to web:8080;
  |                                  ^^^^^^^^
  = help: this rule can never match; use an IPv4 source or another zone
p.dw:2:6: note: zone 'lan' is declared here
2 | zone lan { interface eth1; from 192.168.1.0/24; }
  |      ^^^
p.dw:3:6: note: zone 'office' is declared here
3 | zone office { from 10.0.0.0/8; }
  |      ^^^^^^
`,
  },
  {
    name: "mixed-family range",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone z { from 10.0.0.1-fd00::1; }
`,
    exit: 2,
    expected: `p.dw:2:15: error: range '10.0.0.1-fd00::1' mixes IPv4 and IPv6
2 | zone z { from 10.0.0.1-fd00::1; }
  |               ^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "forward to an unknown zone",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; }
forward lan to wna;
`,
    exit: 2,
    expected: `p.dw:3:16: error: unknown zone 'wna'
3 | forward lan to wna;
  |                ^^^
  = help: declared zones: 'any', 'lan'
`,
  },
  {
    name: "host rule with an unknown zone",
    input: `docker { version 20.10; userland-proxy off; published open; }
host { allow admn tcp 22; }
`,
    exit: 2,
    expected: `p.dw:2:14: error: unknown zone 'admn'
2 | host { allow admn tcp 22; }
  |              ^^^^
  = help: declared zones: 'any'
`,
  },
  {
    name: "forward to a zone without interface",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; }
zone admin { from 203.0.113.7; }
forward lan to admin;
`,
    exit: 2,
    expected: `p.dw:4:16: error: 'forward … to admin' needs a zone with an interface to send through
4 | forward lan to admin;
  |                ^^^^^
  = help: add 'interface NAME;' to zone 'admin'
p.dw:3:6: note: zone 'admin' is declared here
3 | zone admin { from 203.0.113.7; }
  |      ^^^^^
`,
  },
  {
    name: "forward through a zone whose wildcard interface also takes Docker's bridges",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; }
zone bridges { interface br+; }
forward lan to bridges;
`,
    exit: 2,
    expected: `p.dw:4:16: error: 'forward' through zone 'bridges', whose interface 'br+' also matches Docker's bridges (br-…): it would route to and from Docker's networks ahead of Docker's own rules (an internal network, or one dockwall does not know yet)
4 | forward lan to bridges;
  |                ^^^^^^^
  = help: name the host's own interfaces in zone 'bridges' (e.g. 'interface br0;'); containers are reached with 'allow', not 'forward'
p.dw:3:26: note: 'br+' is here
3 | zone bridges { interface br+; }
  |                          ^^^
`,
  },
  {
    name: "network without subnet",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; }
`,
    exit: 2,
    expected: `p.dw:2:9: error: network 'app' has no subnet
2 | network app { bridge br-app; }
  |         ^^^
  = help: add its address range, e.g. subnet 172.20.0.0/16;
`,
  },
  {
    name: "subnet with host bits",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.1/16; }
`,
    exit: 2,
    expected: `p.dw:2:37: error: subnet 172.20.0.1/16 has host bits set
2 | network app { bridge br-app; subnet 172.20.0.1/16; }
  |                                     ^^^^^^^^^^^^^
  = help: did you mean 172.20.0.0/16?
`,
  },
  {
    name: "option given twice",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; bridge br-x; subnet 172.20.0.0/16; }
`,
    exit: 2,
    expected: `p.dw:2:30: error: 'bridge' is given twice in network 'app'
2 | network app { bridge br-app; bridge br-x; subnet 172.20.0.0/16; }
  |                              ^^^^^^
  = help: keep one of them
p.dw:2:15: note: first given here
2 | network app { bridge br-app; bridge br-x; subnet 172.20.0.0/16; }
  |               ^^^^^^
`,
  },
  {
    name: "bad publish spec",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.2; publish 8080; }
`,
    exit: 2,
    expected: `p.dw:2:50: error: '8080' is not a publish spec
2 | container a { network bridge 172.17.0.2; publish 8080; }
  |                                                  ^^^^
  = help: write [HOSTADDR:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 8080:80 or 127.0.0.1:9000:9000/tcp
`,
  },
  {
    name: "bad protocol",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.2; publish 8080:80/tpc; }
`,
    exit: 2,
    expected: `p.dw:2:58: error: unknown protocol 'tpc'
2 | container a { network bridge 172.17.0.2; publish 8080:80/tpc; }
  |                                                          ^^^
  = help: use /tcp or /udp
`,
  },
  {
    name: "icmp with ports",
    input: `docker { version 20.10; userland-proxy off; published open; }
host { allow any icmp 8; }
`,
    exit: 2,
    expected: `p.dw:2:23: error: icmp has no ports
2 | host { allow any icmp 8; }
  |                       ^
  = help: write: allow ZONE icmp;
`,
  },
  {
    name: "container on no network",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { publish 8080:80; }
`,
    exit: 2,
    expected: `p.dw:2:11: error: container 'a' is on no network
2 | container a { publish 8080:80; }
  |           ^
  = help: add the network and the address Docker gives it, e.g. network bridge 172.17.0.2;
`,
  },
  {
    name: "every value error is reported",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridge 172.17.0.300; publish 99999:80; }
network app { bridge br-app; subnet 10.0.0.0/33; masq off; }
`,
    exit: 2,
    expected: `p.dw:2:39: error: '300' in IPv4 address '172.17.0.300': each part must be 0 to 255
2 | container a { network bridge 172.17.0.300; publish 99999:80; }
  |                                       ^^^
p.dw:2:52: error: port 99999 is out of range
2 | container a { network bridge 172.17.0.300; publish 99999:80; }
  |                                                    ^^^^^
  = help: a port is a number from 1 to 65535
p.dw:3:46: error: prefix length '33' must be a number from 0 to 32
3 | network app { bridge br-app; subnet 10.0.0.0/33; masq off; }
  |                                              ^^
p.dw:3:50: error: unknown option 'masq' in network 'app'
3 | network app { bridge br-app; subnet 10.0.0.0/33; masq off; }
  |                                                  ^^^^
  = help: did you mean 'masquerade'?
`,
  },
  {
    name: "every check error is reported",
    input: `docker { version 20.10; userland-proxy off; published open; }
container a { network bridg 172.17.0.2; }
container b { network bridge 172.17.0.2; publish 8080:80; }
allow lan to b:80;
`,
    exit: 2,
    expected: `p.dw:2:23: error: unknown network 'bridg'
2 | container a { network bridg 172.17.0.2; }
  |                       ^^^^^
  = help: did you mean 'bridge'?
p.dw:4:7: error: unknown zone 'lan'
4 | allow lan to b:80;
  |       ^^^
  = help: declared zones: 'any'
p.dw:4:14: error: container 'b' does not publish port 80
4 | allow lan to b:80;
  |              ^^^^
  = help: allow names host ports; 'b' publishes 8080/tcp
p.dw:3:11: note: 'b' is declared here
3 | container b { network bridge 172.17.0.2; publish 8080:80; }
  |           ^
`,
  },
  {
    name: "unsupported version",
    input: `docker { version 19.03; userland-proxy off; published open; }
`,
    exit: 2,
    expected: `p.dw:1:18: error: Docker 19.03 is not supported
1 | docker { version 19.03; userland-proxy off; published open; }
  |                  ^^^^^
  = help: dockwall knows the chain layouts of dockerd 20.10 – 26.1, 27.0 – 27.5, 28.0.0, 28.0.1 – 28.5, 29.0 – 29.7
`,
  },
  {
    name: "a source with host bits set: the network it means, or the one host?",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; from 192.168.1.7/24; }
host { allow lan from 192.168.1.9/30 tcp 22; }
`,
    exit: 0,
    expected: `p.dw:2:33: warning: 192.168.1.7/24 has host bits set; it is read as the network 192.168.1.0/24
2 | zone lan { interface eth1; from 192.168.1.7/24; }
  |                                 ^^^^^^^^^^^^^^
  = help: write 192.168.1.0/24 for the whole network, or 192.168.1.7 (192.168.1.7/32) for the one host
p.dw:3:23: warning: 192.168.1.9/30 has host bits set; it is read as the network 192.168.1.8/30
3 | host { allow lan from 192.168.1.9/30 tcp 22; }
  |                       ^^^^^^^^^^^^^^
  = help: write 192.168.1.8/30 for the whole network, or 192.168.1.9 (192.168.1.9/32) for the one host
`,
  },
  {
    // A fuzzer's policy: the host block lets in tcp 8080 and a container publishes it on the host's address; Docker holds
    // the port (docker-proxy, or its own socket) and DNATs what comes to it to the container.
    name: "a port of the host block that a container publishes too: a warning at the host's port, once per range, pointing at the publish",
    input: `docker { version 23.0; userland-proxy off; published open; }
zone wan { interface eth2; }
network aa { bridge br-aa; subnet 172.21.0.0/16; }
container cache { network aa 172.21.0.12; publish 10.200.0.1:8080:80; }
container web { network bridge 172.17.0.2; publish 8443:443, 9000-9001:9000-9001/udp; }
host { allow wan tcp 22, 8080; allow wan udp 9001-9010; allow wan tcp 443, 9000; }
`,
    exit: 0,
    expected: `p.dw:6:26: warning: tcp 8080 is the host's own in the host block, and container 'cache' publishes it on 10.200.0.1: Docker holds that port there (docker-proxy, or dockerd's own socket), so no service of the host's can listen on it there, and what comes to it there goes to the container
6 | host { allow wan tcp 22, 8080; allow wan udp 9001-9010; allow wan tcp 443, 9000; }
  |                          ^^^^
  = help: publish 'cache' on another host port, or give the host's service another port
p.dw:4:51: note: published here
4 | container cache { network aa 172.21.0.12; publish 10.200.0.1:8080:80; }
  |                                                   ^^^^^^^^^^^^^^^^^^
p.dw:6:46: warning: udp 9001 is the host's own in the host block, and container 'web' publishes it on every address of the host: Docker holds that port (docker-proxy, or dockerd's own socket), so no service of the host's can listen on it, and what comes to it goes to the container
6 | host { allow wan tcp 22, 8080; allow wan udp 9001-9010; allow wan tcp 443, 9000; }
  |                                              ^^^^^^^^^
  = help: publish 'web' on another host port, or give the host's service another port
p.dw:5:62: note: published here
5 | container web { network bridge 172.17.0.2; publish 8443:443, 9000-9001:9000-9001/udp; }
  |                                                              ^^^^^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "an allow repeated (same zones, sources and target): a warning at the second, pointing at the first",
    input: `docker { version 20.10; userland-proxy off; }
zone lan { interface eth1; }
container web { network bridge 172.17.0.2; publish 8080:80, 8443:443; }
allow lan to web:8080, web:8443;
allow lan to web:8080;
`,
    exit: 0,
    expected: `p.dw:5:14: warning: 'allow lan to web:8080' repeats an earlier allow (same zones, sources and target); its rule is written once
5 | allow lan to web:8080;
  |              ^^^^^^^^
  = help: remove this one
p.dw:4:14: note: first allowed here
4 | allow lan to web:8080, web:8443;
  |              ^^^^^^^^
`,
  },
  {
    name: "an allow that another covers entirely (a narrowing that does not narrow; one port of all): a warning at it, pointing at the other",
    input: `docker { version 20.10; userland-proxy off; }
zone wan { interface eth0; }
container web { network bridge 172.17.0.2; publish 8080:80, 8443:443; }
allow wan to web;
allow wan from 203.0.113.0/24 to web:8443;
`,
    exit: 0,
    expected: `p.dw:5:1: warning: everything this allow lets in, the allow on line 4 already does (every source, on every port it names)
5 | allow wan from 203.0.113.0/24 to web:8443;
  | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: remove it, or narrow the other allow if this one was meant to be the only way in
p.dw:4:1: note: covered by this allow
4 | allow wan to web;
  | ^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "the narrower allow first, the two naming the same ports (a review: no warning, though one with the lines swapped): the narrower is named, whichever comes first",
    input: `docker { version 20.10; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
container web { network bridge 172.17.0.2; publish 8080:80, 8443:443, 9090:90; }
allow wan from 203.0.113.0/24 to web:8443;
allow wan to web:8443;
allow wan to web:9090;
allow any to web:9090;
allow lan to web:8080;
allow lan, wan to web:8080;
`,
    exit: 0,
    expected: `p.dw:5:1: warning: everything this allow lets in, the allow on line 6 already does (every source, on every port it names)
5 | allow wan from 203.0.113.0/24 to web:8443;
  | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: remove it, or narrow the other allow if this one was meant to be the only way in
p.dw:6:1: note: covered by this allow
6 | allow wan to web:8443;
  | ^^^^^^^^^^^^^^^^^^^^^^
p.dw:7:1: warning: everything this allow lets in, the allow on line 8 already does (every source, on every port it names)
7 | allow wan to web:9090;
  | ^^^^^^^^^^^^^^^^^^^^^^
  = help: remove it, or narrow the other allow if this one was meant to be the only way in
p.dw:8:1: note: covered by this allow
8 | allow any to web:9090;
  | ^^^^^^^^^^^^^^^^^^^^^^
p.dw:9:1: warning: everything this allow lets in, the allow on line 10 already does (every source, on every port it names)
9 | allow lan to web:8080;
  | ^^^^^^^^^^^^^^^^^^^^^^
  = help: remove it, or narrow the other allow if this one was meant to be the only way in
p.dw:10:1: note: covered by this allow
10 | allow lan, wan to web:8080;
   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "two allows that let in the same (other words, or the same words): the later one is named, once; an exact repeat is duplicate-allow's only",
    input: `docker { version 20.10; userland-proxy off; }
zone wan { interface eth0; }
zone uplink { interface eth0; }
container web { network bridge 172.17.0.2; publish 8080:80, 8443:443; }
allow wan to web:8443;
allow uplink to web:8443;
allow wan to web:8080;
allow wan to web:8080;
`,
    exit: 0,
    expected: `p.dw:8:14: warning: 'allow wan to web:8080' repeats an earlier allow (same zones, sources and target); its rule is written once
8 | allow wan to web:8080;
  |              ^^^^^^^^
  = help: remove this one
p.dw:7:14: note: first allowed here
7 | allow wan to web:8080;
  |              ^^^^^^^^
p.dw:6:1: warning: everything this allow lets in, the allow on line 5 already does (every source, on every port it names)
6 | allow uplink to web:8443;
  | ^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: remove it, or narrow the other allow if this one was meant to be the only way in
p.dw:5:1: note: covered by this allow
5 | allow wan to web:8443;
  | ^^^^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "a wildcard's interfaces are more than the one a zone names (a review: eth+ was stood in for by eth0, uplink's, and its allow called covered though it alone lets eth1 in); the ones it does cover are named, first or not",
    input: `docker { version 20.10; userland-proxy off; }
zone uplink { interface eth0; }
zone any_eth { interface eth+; }
container web { network bridge 172.17.0.2; publish 8080:80, 9090:90; }
allow uplink to web:8080;
allow any_eth to web:8080;
allow any_eth to web:9090;
allow uplink to web:9090;
`,
    exit: 0,
    expected: `p.dw:5:1: warning: everything this allow lets in, the allow on line 6 already does (every source, on every port it names)
5 | allow uplink to web:8080;
  | ^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: remove it, or narrow the other allow if this one was meant to be the only way in
p.dw:6:1: note: covered by this allow
6 | allow any_eth to web:8080;
  | ^^^^^^^^^^^^^^^^^^^^^^^^^^
p.dw:8:1: warning: everything this allow lets in, the allow on line 7 already does (every source, on every port it names)
8 | allow uplink to web:9090;
  | ^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: remove it, or narrow the other allow if this one was meant to be the only way in
p.dw:7:1: note: covered by this allow
7 | allow any_eth to web:9090;
  | ^^^^^^^^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "an interface no zone names is one no wildcard takes either (dwnone0 is dw+'s): an allow from a zone of any interface is not covered by one of dw+ and eth0 (the other way round, it is)",
    input: `docker { version 20.10; userland-proxy off; }
zone admin { from 203.0.113.7; }
zone known { interface eth0, dw+; from 203.0.113.7; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow known to web:8080;
allow admin to web:8080;
`,
    exit: 0,
    expected: `p.dw:5:1: warning: everything this allow lets in, the allow on line 6 already does (every source, on every port it names)
5 | allow known to web:8080;
  | ^^^^^^^^^^^^^^^^^^^^^^^^
  = help: remove it, or narrow the other allow if this one was meant to be the only way in
p.dw:6:1: note: covered by this allow
6 | allow admin to web:8080;
  | ^^^^^^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "a wildcard's own interfaces are not all a longer one's (eth0+ does not take eth1, which eth+ does)",
    input: `docker { version 20.10; userland-proxy off; }
zone all_eth { interface eth+; }
zone eth0x { interface eth0+; }
container web { network bridge 172.17.0.2; publish 9090:90; }
allow eth0x to web:9090;
allow all_eth to web:9090;
`,
    exit: 0,
    expected: `p.dw:5:1: warning: everything this allow lets in, the allow on line 6 already does (every source, on every port it names)
5 | allow eth0x to web:9090;
  | ^^^^^^^^^^^^^^^^^^^^^^^^
  = help: remove it, or narrow the other allow if this one was meant to be the only way in
p.dw:6:1: note: covered by this allow
6 | allow all_eth to web:9090;
  | ^^^^^^^^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "allows that only overlap (another zone's interface; a port the other does not name): no warning",
    input: `docker { version 20.10; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
zone admin { from 203.0.113.7; }
container web { network bridge 172.17.0.2; publish 8080:80, 8443:443; }
allow wan to web:8443;
allow admin to web;
allow lan to web:8080;
`,
    exit: 0,
    expected: ``,
  },
  {
    name: "an allow from a zone on a Docker network's bridge (a review): its containers follow Docker's rules, so the allow lets none in and keeps none out; the host block's rules do apply to them",
    input: `docker { version 28; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone ctr { interface br-front; }
network front { bridge br-front; subnet 172.20.0.0/16; }
container a { network front 172.20.0.10; publish 8080:80; }
allow ctr from 172.20.0.11 to a:8080;
allow wan to a:8080;
host { allow ctr from 172.20.0.10 tcp 22; }
`,
    exit: 0,
    expected: `p.dw:6:7: warning: zone 'ctr' is on br-front, network front's bridge: front's containers reach published ports as Docker's own rules let them, whatever an allow says, so this allow lets none in and keeps none out
6 | allow ctr from 172.20.0.11 to a:8080;
  |       ^^^
  = help: to keep containers from each other, put them on separate networks (or set 'icc off' on the network); a 'host' block's rules for zone 'ctr' do apply to them
p.dw:3:22: note: br-front is here
3 | zone ctr { interface br-front; }
  |                      ^^^^^^^^
`,
  },
  {
    name: "an allow from a zone whose wildcard takes Docker networks' bridges (a review: br-+ went unwarned)",
    input: `docker { version 28; iptables off; userland-proxy off; }
zone ctr2 { interface br-+; }
network aaa { bridge br-aaa; subnet 10.31.0.0/24; }
network zeta { bridge br-zeta; subnet 10.50.0.0/24; }
container c2 { network aaa 10.31.0.4; publish 8082:80; }
allow ctr2 from 10.31.0.3 to c2;
`,
    exit: 0,
    expected: `p.dw:6:7: warning: zone 'ctr2' is on br-+, which takes the bridges of networks aaa, zeta: the containers of networks aaa, zeta reach published ports as Docker's own rules let them, whatever an allow says, so this allow lets none in and keeps none out
6 | allow ctr2 from 10.31.0.3 to c2;
  |       ^^^^
  = help: to keep containers from each other, put them on separate networks (or set 'icc off' on the network); a 'host' block's rules for zone 'ctr2' do apply to them
p.dw:2:23: note: br-+ is here
2 | zone ctr2 { interface br-+; }
  |                       ^^^^
`,
  },
  {
    name: "gateway naming an internal network beside a normal one (a review: Docker published on the normal one, dockwall on none, and the wan reached the port)",
    input: `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; }
network aaa { bridge br-aaa; subnet 10.31.0.0/24; }
network mint { bridge br-mint; subnet 10.60.0.0/24; internal; }
container c4 { network aaa 10.31.0.2; network mint 10.60.0.2; gateway mint; publish 8084:80; }
allow lan to c4;
`,
    exit: 2,
    expected: `p.dw:5:71: error: network 'mint' is internal: Docker never publishes on it, nor routes a container out through it
5 | container c4 { network aaa 10.31.0.2; network mint 10.60.0.2; gateway mint; publish 8084:80; }
  |                                                                       ^^^^
  = help: remove the gateway line (Docker publishes on network 'aaa'), or name one of the container's other networks
`,
  },
  {
    name: "a release newer than any dockwall knows: which release's chains are written",
    input: `docker { version 29.8; userland-proxy off; published open; }
`,
    exit: 0,
    expected: `p.dw:1:18: warning: Docker 29.8 is newer than the newest release dockwall knows (29.7.2); reproducing 29.7.2's chains
1 | docker { version 29.8; userland-proxy off; published open; }
  |                  ^^^^
  = help: check the release with 'dockerd --version'; if this dockerd writes other chains than 29.7.2, a newer dockwall may know them
`,
  },
  {
    name: "a Docker major that never existed (21, 22)",
    input: `docker { version 21; userland-proxy off; published open; }
`,
    exit: 2,
    expected: `p.dw:1:18: error: there was no Docker 21: after 20.10 came 23.0
1 | docker { version 21; userland-proxy off; published open; }
  |                  ^^
  = help: write the release this host runs ('dockerd --version' tells), e.g. version 20.10; or version 23.0;
`,
  },
  {
    name: "published port that no allow names",
    input: `docker { version 20.10; userland-proxy off; }
container web { network bridge 172.17.0.2; publish 8080:80; }
`,
    exit: 0,
    expected: `p.dw:2:52: warning: no allow names web:8080/tcp, so it is unreachable from outside the host (published closed)
2 | container web { network bridge 172.17.0.2; publish 8080:80; }
  |                                                    ^^^^^^^
  = help: add e.g. 'allow ZONE to web:8080;' (ZONE: any, or a zone you declare), or set 'published open;' in the docker block for Docker's behaviour
`,
  },
  {
    name: "published port that no allow names, in a policy whose zones have other names than lan",
    input: `docker { version 20.10; userland-proxy off; }
zone office { interface eth1; }
container web { network bridge 172.17.0.2; publish 8080:80; }
`,
    exit: 0,
    expected: `p.dw:3:52: warning: no allow names web:8080/tcp, so it is unreachable from outside the host (published closed)
3 | container web { network bridge 172.17.0.2; publish 8080:80; }
  |                                                    ^^^^^^^
  = help: add e.g. 'allow office to web:8080;', or set 'published open;' in the docker block for Docker's behaviour
`,
  },
  {
    name: "iptables off with userland-proxy on",
    input: `docker { version 20.10; iptables off; published open; }
`,
    exit: 0,
    expected: `p.dw:1:25: warning: with iptables off and userland-proxy on, dockerd still runs docker-proxy on 0.0.0.0 and :: for every published port
1 | docker { version 20.10; iptables off; published open; }
  |                         ^^^^^^^^
  = help: dockwall guards that path in INPUT too (chain DOCKWALL-PROXY), so 'allow' and 'published' hold for it; but a proxied connection reaches the container from the bridge's address, not the client's. For real client addresses set "userland-proxy": false in daemon.json and 'userland-proxy off;' here. Without a host block, a port that a new container publishes answers everyone through docker-proxy until 'dockwall watch' has added its rules (measured: from 70-80 ms to 390-460 ms after 'docker run' began); a host block closes that window (INPUT's policy is DROP)
`,
  },
  {
    name: "ip6tables off and userland-proxy off, IPv6 networks and allows: no published port is reached over IPv6 (a review: verify reported every IPv6 allow as closed for good)",
    input: `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
container web { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; }
allow lan to web:8080;
`,
    exit: 0,
    expected: `p.dw:1:39: warning: with ip6tables off and userland-proxy off, no published port is reachable over IPv6: Docker writes no IPv6 DNAT, and no docker-proxy relays it
1 | docker { version 20.10; iptables off; userland-proxy off; }
  |                                       ^^^^^^^^^^^^^^
  = help: the allows hold for IPv4 only (matrix and verify count no IPv6 path for them). To publish over IPv6 too, set "ip6tables": true in daemon.json and 'ip6tables on;' here, or turn userland-proxy on
`,
  },
  {
    name: "iptables off with userland-proxy on, and a host block",
    input: `docker { version 20.10; iptables off; published open; }
host { allow any tcp 22; }
`,
    exit: 0,
    expected: `p.dw:1:25: warning: with iptables off and userland-proxy on, dockerd still runs docker-proxy on 0.0.0.0 and :: for every published port
1 | docker { version 20.10; iptables off; published open; }
  |                         ^^^^^^^^
  = help: dockwall guards that path in INPUT too (chain DOCKWALL-PROXY), so 'allow' and 'published' hold for it; but a proxied connection reaches the container from the bridge's address, not the client's. For real client addresses set "userland-proxy": false in daemon.json and 'userland-proxy off;' here
`,
  },
  {
    name: "no version",
    input: `docker { userland-proxy off; }
`,
    exit: 0,
    expected: `p.dw:1:1: warning: no Docker version given; assuming the newest supported (29.7.2)
1 | docker { userland-proxy off; }
  | ^^^^^^
  = help: write the dockerd release this host runs, e.g. docker { version 20.10; } ('dockerd --version' tells)
`,
  },
  {
    name: "allow from a source outside the zone's own sources",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; from 192.168.1.0/24; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan from 10.0.0.0/8 to web:8080;
`,
    exit: 2,
    expected: `p.dw:4:16: error: source 10.0.0.0/8 is outside zone 'lan' (from 192.168.1.0/24): this rule can never match
4 | allow lan from 10.0.0.0/8 to web:8080;
  |                ^^^^^^^^^^
  = help: a rule's 'from' narrows its zone (a packet must be in both): write a source inside 192.168.1.0/24, or name a zone that holds 10.0.0.0/8
p.dw:2:33: note: zone 'lan' holds only these sources
2 | zone lan { interface eth1; from 192.168.1.0/24; }
  |                                 ^^^^^^^^^^^^^^
`,
  },
  {
    name: "host allow from a source outside the zone's sources (one of two sources)",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; from 192.168.1.0/24, 192.168.5.1-192.168.5.9; }
host { allow lan from 192.168.1.7, 10.0.0.1 tcp 22; }
`,
    exit: 2,
    expected: `p.dw:3:36: error: source 10.0.0.1 is outside zone 'lan' (from 192.168.1.0/24, 192.168.5.1-192.168.5.9): this rule can never match
3 | host { allow lan from 192.168.1.7, 10.0.0.1 tcp 22; }
  |                                    ^^^^^^^^
  = help: a rule's 'from' narrows its zone (a packet must be in both): write a source inside 192.168.1.0/24, 192.168.5.1-192.168.5.9, or name a zone that holds 10.0.0.1
p.dw:2:33: note: zone 'lan' holds only these sources
2 | zone lan { interface eth1; from 192.168.1.0/24, 192.168.5.1-192.168.5.9; }
  |                                 ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "forward from sources outside both zones",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
zone dmz { interface eth2; from 192.168.2.0/24; }
forward lan, dmz from 192.168.0.0/16, 172.16.0.0/12 to wan;
`,
    exit: 2,
    expected: `p.dw:5:39: error: source 172.16.0.0/12 is outside zones 'lan' (from 192.168.1.0/24) and 'dmz' (from 192.168.2.0/24): this rule can never match
5 | forward lan, dmz from 192.168.0.0/16, 172.16.0.0/12 to wan;
  |                                       ^^^^^^^^^^^^^
  = help: a rule's 'from' narrows its zones (a packet must be in both): write a source inside one zone's sources, or name a zone that holds 172.16.0.0/12
p.dw:3:33: note: zone 'lan' holds only these sources
3 | zone lan { interface eth1; from 192.168.1.0/24; }
  |                                 ^^^^^^^^^^^^^^
p.dw:4:33: note: zone 'dmz' holds only these sources
4 | zone dmz { interface eth2; from 192.168.2.0/24; }
  |                                 ^^^^^^^^^^^^^^
`,
  },
  {
    name: "allow to a port published only on 127.0.0.1",
    input: `docker { version 20.10; userland-proxy off; }
zone lan { interface eth1; }
container api { network bridge 172.17.0.2; publish 127.0.0.1:9000:9000; }
allow lan to api:9000;
`,
    exit: 0,
    expected: `p.dw:4:14: warning: api:9000 is published only on 127.0.0.1: no connection from outside the host can reach it, so this allow opens nothing
4 | allow lan to api:9000;
  |              ^^^^^^^^
  = help: a port published on a loopback address is for the host itself (dockwall also closes the routing leak to it); publish it on an address the clients reach (e.g. 'publish 9000:9000;'), or remove this allow
p.dw:3:52: note: published here
3 | container api { network bridge 172.17.0.2; publish 127.0.0.1:9000:9000; }
  |                                                    ^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "an empty policy",
    input: ``,
    exit: 2,
    expected: `p.dw:1:1: error: the policy has no statements (it is empty, or only comments)
1 | 
  | ^
  = help: compiled, an empty policy would flush every table and leave the host open; write what this host runs, starting with e.g. docker { version 20.10; } (or run 'dockwall init --docker' for a starter policy; 'man dockwall.dw' has a whole example)
`,
  },
  {
    name: "a policy of comments only",
    input: `# firewall for web1
# TODO: write the rules
`,
    exit: 2,
    expected: `p.dw:1:1: error: the policy has no statements (it is empty, or only comments)
1 | # firewall for web1
  | ^
  = help: compiled, an empty policy would flush every table and leave the host open; write what this host runs, starting with e.g. docker { version 20.10; } (or run 'dockwall init --docker' for a starter policy; 'man dockwall.dw' has a whole example)
`,
  },
  {
    name: "allow to a port published only on 127.0.0.1, with published open (Docker's leak stays open): no warning",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; }
container api { network bridge 172.17.0.2; publish 127.0.0.1:9000:9000; }
allow lan to api:9000;
`,
    exit: 0,
    expected: ``,
  },
  {
    name: "a setting with two values",
    input: `docker { version 20.10 21; userland-proxy off; published open; }
`,
    exit: 2,
    expected: `p.dw:1:18: error: 'version' expects MAJOR[.MINOR[.PATCH]] or auto
1 | docker { version 20.10 21; userland-proxy off; published open; }
  |                  ^^^^^^^^
  = help: write: version MAJOR[.MINOR[.PATCH]] or auto;
`,
  },
  {
    name: "a zone name that starts with a digit",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone 1lan { interface eth1; }
`,
    exit: 2,
    expected: `p.dw:2:6: error: '1lan' is not a valid zone name
2 | zone 1lan { interface eth1; }
  |      ^^^^
  = help: a name starts with a letter or '_' and has only letters, digits, '_', '-' and '.'
`,
  },
  {
    name: "gateway names a network the container is not on",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.0/16; }
network db { bridge br-db; subnet 172.21.0.0/16; }
container web { network app 172.20.0.2; gateway db; publish 8080:80; }
`,
    exit: 2,
    expected: `p.dw:4:49: error: container 'web' is not on network 'db'
4 | container web { network app 172.20.0.2; gateway db; publish 8080:80; }
  |                                                 ^^
  = help: add 'network db ADDRESS;' to the container, or name one of its networks
`,
  },
  {
    name: "two networks on one bridge",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.0/16; }
network db { bridge br-app; subnet 172.21.0.0/16; }
`,
    exit: 2,
    expected: `p.dw:3:21: error: bridge 'br-app' is used by two networks
3 | network db { bridge br-app; subnet 172.21.0.0/16; }
  |                     ^^^^^^
  = help: each Docker network has its own bridge interface
p.dw:2:22: note: first used here
2 | network app { bridge br-app; subnet 172.20.0.0/16; }
  |                      ^^^^^^
`,
  },
  {
    name: "a container joins a network twice",
    input: `docker { version 20.10; userland-proxy off; published open; }
container web { network bridge 172.17.0.2; network bridge 172.17.0.3; }
`,
    exit: 2,
    expected: `p.dw:2:52: error: container 'web' joins network 'bridge' twice
2 | container web { network bridge 172.17.0.2; network bridge 172.17.0.3; }
  |                                                    ^^^^^^
p.dw:2:25: note: first joined here
2 | container web { network bridge 172.17.0.2; network bridge 172.17.0.3; }
  |                         ^^^^^^
`,
  },
  {
    name: "two IPv4 subnets on one network",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet 172.21.0.0/16; }
`,
    exit: 2,
    expected: `p.dw:2:59: error: network 'app' has two IPv4 subnets
2 | network app { bridge br-app; subnet 172.20.0.0/16; subnet 172.21.0.0/16; }
  |                                                           ^^^^^^^^^^^^^
  = help: a network has one IPv4 and at most one IPv6 subnet
p.dw:2:37: note: the first IPv4 subnet
2 | network app { bridge br-app; subnet 172.20.0.0/16; subnet 172.21.0.0/16; }
  |                                     ^^^^^^^^^^^^^
`,
  },
  {
    name: "only internal networks, yet publishes",
    input: `docker { version 20.10; userland-proxy off; published open; }
network back { bridge br-back; subnet 172.22.0.0/16; internal; }
container db { network back 172.22.0.2; publish 5432:5432; }
`,
    exit: 0,
    expected: `p.dw:3:49: warning: 'db' is only on internal networks, so Docker publishes none of its ports
3 | container db { network back 172.22.0.2; publish 5432:5432; }
  |                                                 ^^^^^^^^^
  = help: connect it to a non-internal network to publish ports, or remove the publish lines
`,
  },
  {
    name: "an IPv6 address only, on a dual-stack network",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.0/16; subnet fd00:20::/64; }
container web { network app fd00:20::2; }
`,
    exit: 2,
    expected: `p.dw:3:25: error: container 'web' has no IPv4 address on network 'app'
3 | container web { network app fd00:20::2; }
  |                         ^^^
  = help: give the address Docker assigns it, e.g. network app 172.20.0.2;
`,
  },
  {
    name: "a host allow without its ports",
    input: `docker { version 20.10; userland-proxy off; published open; }
zone lan { interface eth1; }
host { allow lan tcp; }
`,
    exit: 2,
    expected: `p.dw:3:18: error: 'allow … tcp' needs the ports it opens
3 | host { allow lan tcp; }
  |                  ^^^
  = help: write e.g. allow ZONE tcp 22;
`,
  },
  {
    name: "a compose service without facts",
    input: `docker { version 20.10; userland-proxy off; }
zone lan { interface eth1; }
allow lan to shop/web;
`,
    exit: 2,
    expected: `p.dw:3:14: error: 'shop/web' names a compose service, whose containers only Docker knows
3 | allow lan to shop/web;
  |              ^^^^^^^^
  = help: compile with Docker's facts: --docker (ask the daemon) or --facts FILE (saved with 'dockwall facts')
`,
  },
  {
    name: "allow with no port, to a container that publishes none",
    input: `docker { version 20.10; userland-proxy off; }
zone lan { interface eth1; }
container db { network bridge 172.17.0.2; }
allow lan to db;
`,
    exit: 0,
    expected: `p.dw:4:14: warning: container 'db' publishes no port: this allow opens nothing
4 | allow lan to db;
  |              ^^
  = help: add 'publish HOSTPORT:CONTAINERPORT;' to it, or remove this target
`,
  },
  {
    name: "iptables on, rendered for ferm",
    input: `docker { version 20.10; iptables on; userland-proxy off; published open; }
`,
    exit: 0,
    expected: ``,
  },
  {
    name: "facts: gateway priorities that Docker 29.4.1+ splits by family (IPv4 on the default bridge, IPv6 on zeta): refused at the container",
    input: `docker { version 29.7; iptables off; userland-proxy off; }
zone lan { interface eth1; }
allow lan to web;
`,
    facts: gwPriority,
    exit: 2,
    expected: `host.json: container 'web' (b50a5ada9129): error: container 'web' has gateway priorities (bridge 10, zeta 0): Docker 29.7 sets its published ports up where its default routes are, its IPv4 bindings on network 'bridge' and its IPv6 bindings on network 'zeta', and dockwall publishes a container on one network ('bridge')
  = help: give the network it should publish on the highest gateway priority, with an IPv4 and an IPv6 gateway if the container has both (docker network disconnect, then docker network connect --gw-priority N), or leave its priorities at 0
`,
  },
  {
    name: "facts: an IPv6-only network (Docker 28+): refused as such, not as a container without an IPv4 address",
    input: `docker { version 28; iptables off; userland-proxy off; }
zone lan { interface eth1; }
allow lan to web;
`,
    facts: ipv6Only,
    exit: 2,
    expected: `host.json: network 'six' (666666666666): error: network 'six' has no IPv4 (EnableIPv4 false, Docker 28+): dockwall does not reproduce Docker's rules for IPv6-only networks
  = help: create network 'six' again with IPv4 too (docker network rm six, then docker network create --ipv6 without --ipv4=false), or run its containers on another network
`,
  },
  {
    name: "facts: a container without its State",
    input: `docker { version 20.10; userland-proxy off; published open; }
`,
    facts: withoutState,
    exit: 2,
    expected: `host.json: container 'web' (b50a5ada9129): error: its State is missing
  = help: give the object as 'docker inspect' prints it
`,
  },
  {
    name: "facts: a container block without network lines (its publish and allows only): the networks are Docker's, as the help of a mismatch says (a review: it was that mismatch)",
    input: `docker { version 20.10; userland-proxy off; }
zone lan { interface eth1; }
container web { publish 8080:80; }
allow lan to web;
`,
    facts: publishTcp,
    exit: 0,
    expected: ``,
  },
  {
    name: "facts: a declared address that is not Docker's",
    input: `docker { version 20.10; userland-proxy off; published open; }
container web { network bridge 172.17.0.9; publish 8080:80; }
`,
    facts: publishTcp,
    exit: 2,
    expected: `p.dw:2:17: error: container 'web' is declared on 'bridge 172.17.0.9', but Docker has it on 'bridge 172.17.0.2'
2 | container web { network bridge 172.17.0.9; publish 8080:80; }
  |                 ^^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: remove or correct the network lines, or leave them out and let the facts give them
host.json: container 'web' (b50a5ada9129): note: what Docker has
`,
  },
  {
    name: "facts: a typo in an allow's target is one warning, not also one about the port it meant",
    input: `docker { version 20.10; userland-proxy off; }
allow any to wbe:8080;
`,
    facts: publishTcp,
    exit: 0,
    expected: `p.dw:2:14: warning: no running container is called 'wbe': this allow takes effect when one runs
2 | allow any to wbe:8080;
  |              ^^^
  = help: did you mean 'web'?
`,
  },
  {
    name: "facts: a declared network Docker does not have, a declared container that does not run",
    input: `docker { version 20.10; userland-proxy off; published open; }
network app { bridge br-app; subnet 172.20.0.0/16; }
container db { network app 172.20.0.2; }
`,
    facts: publishTcp,
    exit: 0,
    expected: `p.dw:2:9: warning: network 'app' is declared, but Docker has no such bridge network; it gets no rules
2 | network app { bridge br-app; subnet 172.20.0.0/16; }
  |         ^^^
  = help: create it (docker network create), or remove it from the policy
p.dw:3:11: warning: container 'db' is declared, but is not running; it gets no rules until it runs
3 | container db { network app 172.20.0.2; }
  |           ^^
  = help: start it, or remove it from the policy
`,
  },
  {
    name: "facts: a network in Docker's routed gateway mode",
    input: `docker { version 28; iptables on; published open; }
`,
    facts: changed("user-net-fixed", (f) => {
      f.networks.find((n) => n.Name === "app")!.Options["com.docker.network.bridge.gateway_mode_ipv4"] = "routed";
    }),
    exit: 2,
    expected: `host.json: network 'app' (6359389cce9c): error: network 'app' has the routed gateway mode for IPv4 (com.docker.network.bridge.gateway_mode_ipv4=routed): Docker then writes no NAT for it (no DNAT, no masquerading, no docker-proxy) and lets the ports its containers publish be reached at the containers' own addresses
  = help: dockwall does not reproduce Docker's routed gateway mode, only its default, nat: create network 'app' again without it (docker network rm app, then docker network create without -o com.docker.network.bridge.gateway_mode_ipv4=routed), and publish with -p the ports its containers serve
`,
  },
  {
    name: "facts: a network that trusts host interfaces",
    input: `docker { version 28; iptables on; published open; }
`,
    facts: changed("user-net-fixed", (f) => {
      f.networks.find((n) => n.Name === "app")!.Options["com.docker.network.bridge.trusted_host_interfaces"] = "eth1";
    }),
    exit: 2,
    expected: `host.json: network 'app' (6359389cce9c): error: network 'app' trusts the host interfaces 'eth1' (com.docker.network.bridge.trusted_host_interfaces): Docker then lets what arrives on them reach the ports its containers publish at the containers' own addresses (routed straight to them, not through the host's port)
  = help: dockwall does not reproduce trusted host interfaces: create network 'app' again without the option (docker network rm app, then docker network create without -o com.docker.network.bridge.trusted_host_interfaces), and publish the ports neighbours there may reach, with an allow for their zone
`,
  },
  {
    name: "facts: a container on a macvlan network",
    input: `docker { version 20.10; iptables on; published open; }
`,
    facts: onMacvlan,
    exit: 2,
    expected: `host.json: container 'web' (b50a5ada9129): error: container 'web' is on macvlan network 'lan': its traffic goes in and out through the host interface eth1 without crossing the host's FORWARD chain, where dockwall filters containers' traffic, so dockwall cannot enforce the policy for it (every port it listens on is open to whoever reaches it)
  = help: run it on a bridge network and publish what it serves (docker network disconnect lan web; docker network connect NETWORK web, or docker run --network NETWORK -p …), or stop it: dockwall refuses Docker's facts while it runs
host.json: network 'lan' (5a5a5a5a5a5a): note: the macvlan network (parent eth1)
`,
  },
  {
    name: "facts: a container on the host's network, and no host block",
    input: `docker { version 20.10; iptables on; published open; }
`,
    facts: onHostNetwork,
    exit: 2,
    expected: `host.json: container 'web' (b50a5ada9129): error: container 'web' runs on the host's network (--network host): its ports (9100/tcp: published or exposed) are sockets of the host's own, and without a host block nothing restricts them: they are open to all
  = help: add a host block that opens them to whom they serve (e.g. host { allow ZONE tcp 9100; } (ZONE: any, or a zone you declare): INPUT's policy is then DROP), or run it on a bridge network and publish its ports (docker run -p …)
`,
  },
  {
    name: "facts: a container on the host's network, with a host block: a warning",
    input: `docker { version 20.10; iptables on; published open; }
zone lan { interface eth1; }
host { allow lan tcp 22; }
`,
    facts: onHostNetwork,
    exit: 0,
    expected: `host.json: container 'web' (b50a5ada9129): warning: container 'web' runs on the host's network (--network host): its ports (9100/tcp: published or exposed) are sockets of the host's own, which the host block governs, not 'allow'
  = help: open them in the host block to whom they serve (allow lan tcp 9100;), or run it on a bridge network and publish its ports (docker run -p …)
p.dw:3:1: note: only what this host block allows reaches them
3 | host { allow lan tcp 22; }
  | ^^^^^^^^^^^^^^^^^^^^^^^^^^
`,
  },
  {
    name: "facts: Docker's nftables firewall backend under iptables on",
    input: `docker { version 29; iptables on; published open; }
`,
    facts: changed("publish-tcp", (f) => {
      f.info = { FirewallBackend: { Driver: "nftables" } };
    }),
    exit: 2,
    expected: `p.dw:1:22: error: Docker's nftables firewall backend has no DOCKER-USER chain: with 'iptables on', dockwall's rules (in DOCKER-USER) would never be reached, and every published port they close would be open
1 | docker { version 29; iptables on; published open; }
  |                      ^^^^^^^^
  = help: write them as nftables instead: dockwall compile --format nft (dockwall's own table, beside Docker's); or run dockerd with its iptables backend ("firewall-backend": "iptables" in /etc/docker/daemon.json, or no "firewall-backend" at all), then restart it
host.json: the daemon: note: its firewall backend is nftables (GET /info's FirewallBackend.Driver; "firewall-backend" in daemon.json)
`,
  },
];
