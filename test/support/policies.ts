// Every policy the project ships or tests: examples, golden cases, parity fixtures.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

export const root = new URL("../../", import.meta.url).pathname;

export interface PolicyFile {
  name: string;
  text: string;
}

export function allPolicies(): PolicyFile[] {
  const out: PolicyFile[] = [];
  const add = (path: string) => out.push({ name: relative(root, path), text: readFileSync(path, "utf8") });
  for (const f of readdirSync(join(root, "examples")).filter((f) => f.endsWith(".dw")).sort()) add(join(root, "examples", f));
  for (const d of readdirSync(join(root, "test/golden")).sort()) {
    const p = join(root, "test/golden", d, "policy.dw");
    if (existsSync(p)) add(p);
  }
  for (const group of parityGroups()) {
    for (const d of readdirSync(join(root, "test/parity", group)).sort()) {
      const dir = join(root, "test/parity", group, d);
      if (!skipped(dir)) add(join(dir, "policy.dw"));
    }
  }
  return out;
}

/** The folders of test/parity (one per capture source or Docker layout). */
/** The folders of iptables captures (v29-nftables holds nftables ones: test/parity/nft29.test.ts). */
export function parityGroups(): string[] {
  return readdirSync(join(root, "test/parity"), { withFileTypes: true }).filter((d) => d.isDirectory() && d.name !== "v29-nftables").map((d) => d.name).sort();
}

/** A parity fixture whose notes.md starts with "skip: REASON" describes what the language cannot express. */
export function skipped(dir: string): string | undefined {
  const notes = join(dir, "notes.md");
  return existsSync(notes) ? /^skip:\s*(.*)/.exec(readFileSync(notes, "utf8"))?.[1] : undefined;
}

/** Docker 28.0.0 keys FORWARD on ipsets that dockerd creates: a rule set that names them loads only once they exist. */
export function ipsetCommands(text: string): string[][] {
  const sets = [...new Set([...text.matchAll(/--match-set (\S+) /g)].map((m) => m[1]!))];
  return sets.map((s) => ["ipset", "create", s, "hash:net", "family", s.endsWith("v6") ? "inet6" : "inet", "-exist"]);
}

/**
 * iptables on, no host block, a dual-stack network and an IPv4-only one: what docker-proxy on ::
 * takes over IPv6 (a link-local source, a container without IPv6) must be guarded (a review found
 * it open from the wan, in every output format). test/analysis/matrix*.test.ts.
 */
/**
 * An internal network beside two others, docker-proxy on (a review): solo has no IPv6 address, so
 * Docker DNATs nothing to it over IPv6 and docker-proxy on :: takes the connection; the internal
 * network's containers reached solo:9000 that way (`allow any` holds them too). test/analysis/matrix*.test.ts.
 */
export const INTERNAL_PROXY_POLICY = `docker { version 28; iptables off; ip6tables on; userland-proxy on; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network front { bridge br-front; subnet 172.20.0.0/16; subnet fd00:20::/64; }
network back  { bridge br-back;  subnet 172.21.0.0/16; subnet fd00:21::/64; internal; }
container web  { network front 172.20.0.10, fd00:20::10; network back 172.21.0.10, fd00:21::10; publish 8080:80; }
container db   { network back 172.21.0.20, fd00:21::20; publish 5432:5432; }
container solo { network bridge 172.17.0.5; publish 9000:9000; }
allow lan to web:8080;
allow any to solo:9000;
host { allow lan tcp 22; allow any icmp; }
`;

/**
 * A zone on a Docker network's bridge (a review): an allow from it changes nothing (the network's
 * containers follow Docker's rules: check warns), the host block's rules for it hold. The matrix
 * gave it neighbour rows, held against the allow: 27 mismatches that dockwall's own rules made.
 */
export const BRIDGE_ZONE_POLICY = `docker { version 28; iptables off; ip6tables on; userland-proxy off; }
zone wan { interface eth0; }
zone ctr { interface br-front; }
network front { bridge br-front; subnet 172.20.0.0/16; subnet fd00:20::/64; }
container a { network front 172.20.0.10, fd00:20::10; publish 8080:80; }
container b { network front 172.20.0.11, fd00:20::11; publish 8081:80; }
container c { network front 172.20.0.12, fd00:20::12; }
allow ctr from 172.20.0.11 to a:8080;
host { allow ctr from 172.20.0.10, fd00:20::10 tcp 22; }
`;

export const PROXY6_POLICY = `docker { version 29.7; iptables on; ip6tables on; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
network quiet { bridge br-quiet; subnet 172.21.0.0/16; }
container web { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; publish 8443:443; }
container q { network quiet 172.21.0.2; publish 7000:7000; }
allow lan to web:8080;
allow wan from 203.0.113.0/24 to web:8443;
`;

/** A host block and the same policy without it (a review: taking it out over the DROP it set left the host accepting nothing). */
export const HOST_BLOCK_HEAD = `docker { version 28; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
`;
export const HOST_BLOCK_OLD = `${HOST_BLOCK_HEAD}host { allow lan tcp 22; }\n`;

/** The world of Docker 29's captured nftables tables (test/analysis/fixtures/nft/usernet-ipv6-portmap-noproxy.nft): bridge1, c1 at .2 publishing 8080:80. */
export const CAPTURED_NFT29_POLICY = `docker { version 29; iptables on; ip6tables on; userland-proxy off; firewall-backend nftables; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24, fd00:1::/64; }
network bridge1 { bridge bridge1; subnet 192.0.2.0/24; subnet 2001:db8:1::/64; }
container c1 { network bridge1 192.0.2.2, 2001:db8:1::2; publish 8080:80; }
allow lan to c1:8080;
host { allow lan tcp 22; allow wan tcp 2222; }
`;

