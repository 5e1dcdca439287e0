// Docker 29's nftables firewall backend ("firewall-backend": "nftables"): the table
// `ip docker-bridges` / `ip6 docker-bridges` that dockerd 29.7.2 writes for a Plan, as
// `nft list ruleset` prints it (docker-layouts README, "v29-nftables"; moby
// daemon/libnetwork/drivers/bridge/internal/nftabler). dockerd keeps each chain's rules in
// numbered groups (ct and internal drops, ICC, ports, final drop) and appends within a group;
// nft lists maps, then chains, in the order they were created: the base chains at daemon start,
// then each network's four chains, each step's names in sorted order (Go's templates sort them).
import { bindAddress, byName, publishingNetwork } from "../model/derive.js";
import type { Policy } from "../model/types.js";
import { layoutFor } from "./layouts.js";
import { makePlan, type ContainerPlan, type NetPlan, type Plan, type PortPlan } from "./plan.js";
import type { Family } from "../model/values.js";
import type { NftPart } from "../live/nftdiff.js";

const COUNTER = "counter packets 0 bytes 0";
const MAPS = ["filter-forward-in-jumps", "filter-forward-out-jumps", "nat-postrouting-in-jumps", "nat-postrouting-out-jumps"] as const;

interface Chain {
  name: string;
  /** `type … hook … priority …; policy accept;` for a base chain. */
  base?: string;
  rules: string[];
}

/** Both tables dockerd 29.7.2 writes for the policy: `ip`, then `ip6` unless ip6tables is off (then dockerd makes no ip6 table). */
export function dockerBridgesTables(p: Policy): string {
  return dockerBridgesList(p).map(tableText).join("");
}

/** The same, a table at a time, as maps and chains. */
export function dockerBridgesList(p: Policy): DockerTable[] {
  const layout = layoutFor(p.docker.version?.value);
  if (!layout) throw new Error("Docker 29's nftables tables: no Docker layout for this version");
  crossFamilyProxy(p);
  const out = [dockerTable(makePlan(p, 4, layout))];
  if (p.docker.ip6tables ?? layout.ip6tablesDefault) out.push(dockerTable(makePlan(p, 6, layout)));
  return out;
}

/**
 * A binding on a host address of one family to a container with only the other (docker-proxy
 * maps it): dockerd still writes the per-port accept in the container's family, a binding the
 * Plan of that family does not hold.
 */
function crossFamilyProxy(p: Policy): void {
  if (!p.docker.userlandProxy) return;
  const nets = byName(p.networks);
  for (const c of p.containers) {
    const n = publishingNetwork(c, nets);
    if (!n) continue;
    const addrs = c.endpoints.find((e) => e.network.name === n.name)?.addresses ?? [];
    if (addrs.some((a) => a.value.family === 6) || !addrs.some((a) => a.value.family === 4)) continue;
    for (const pub of c.publishes) {
      const host = bindAddress(p, pub, n);
      if (host?.family === 6) {
        throw new Error(`Docker 29's nftables tables: container ${c.name} publishes on an IPv6 host address but has no IPv6 address on ${n.name}; dockerd maps that through docker-proxy to its IPv4 address and writes an accept dockwall does not reproduce`);
      }
    }
  }
}

/** The table `ip docker-bridges` (family 4) or `ip6 docker-bridges` (family 6), as `nft list ruleset` prints it. */
export function dockerBridges(plan: Plan): string {
  return tableText(dockerTable(plan));
}

/** The same table, as maps and chains. */
export function dockerTable(plan: Plan): DockerTable {
  const v = plan.version;
  if (v.major !== 29 || v.minor !== 7) {
    throw new Error(`Docker 29's nftables tables are reproduced as dockerd 29.7 writes them, not ${v.major}.${v.minor ?? "x"}`);
  }
  const family = plan.family;
  const ip = family === 4 ? "ip" : "ip6";
  const hairpin = !plan.userlandProxy;
  const nets = plan.networks.filter((n) => n.subnet[family]);
  for (const n of nets) checkName(n.bridge);

  const dnat = new Rules("nat-prerouting-and-output");
  const raw = new Rules("raw-PREROUTING");
  const chains: Chain[] = [
    { name: "filter-FORWARD", base: "type filter hook forward priority filter; policy accept;", rules: ["oifname vmap @filter-forward-in-jumps", "iifname vmap @filter-forward-out-jumps"] },
    {
      name: "nat-OUTPUT",
      base: "type nat hook output priority -100; policy accept;",
      rules: [`${hairpin ? "" : family === 4 ? "ip daddr != 127.0.0.0/8 " : "ip6 daddr != ::1 "}fib daddr type local ${COUNTER} jump nat-prerouting-and-output`],
    },
    { name: "nat-POSTROUTING", base: "type nat hook postrouting priority srcnat; policy accept;", rules: ["iifname vmap @nat-postrouting-out-jumps", "oifname vmap @nat-postrouting-in-jumps"] },
    { name: "nat-PREROUTING", base: "type nat hook prerouting priority dstnat; policy accept;", rules: [`fib daddr type local ${COUNTER} jump nat-prerouting-and-output`] },
    { name: "nat-prerouting-and-output", rules: dnat.rules },
    { name: "raw-PREROUTING", base: "type filter hook prerouting priority raw; policy accept;", rules: raw.rules },
  ];

  // Per network, at its creation: the rules of filter-forward-in__BR by group.
  const fwdIn = new Map<string, { first: string[]; icc: string[]; ports: Rules; final: string[] }>();
  const postIn = new Map<string, Rules>();
  for (const n of nets) {
    const br = n.bridge;
    const q = quote(br);
    const ct = `ct state established,related ${COUNTER} accept`;
    const verdict = n.icc ? "accept" : "drop";
    const inGroups = { first: [ct], icc: [] as string[], ports: new Rules(`filter-forward-in__${br}`), final: [] as string[] };
    const out = [ct];
    const natIn = new Rules(`nat-postrouting-in__${br}`);
    const natOut: string[] = [];
    if (n.internal) {
      inGroups.first.push(`iifname != ${q} ${COUNTER} drop comment "INTERNAL NETWORK INGRESS"`);
      out.push(`oifname != ${q} ${COUNTER} drop comment "INTERNAL NETWORK EGRESS"`);
      inGroups.icc.push(`${COUNTER} ${verdict} comment "ICC"`);
    } else {
      inGroups.icc.push(`iifname ${q} ${COUNTER} ${verdict} comment "ICC"`);
      out.push(`${COUNTER} accept comment "OUTGOING"`);
      inGroups.final.push(`${COUNTER} drop comment "UNPUBLISHED PORT DROP"`);
      if (n.masquerade) natOut.push(`oifname != ${q} ${ip} saddr ${n.subnet[family]} ${COUNTER} masquerade comment "MASQUERADE"`);
      if (hairpin) natIn.add(`fib saddr type local ${COUNTER} masquerade comment "MASQUERADE FROM HOST"`);
    }
    fwdIn.set(br, inGroups);
    postIn.set(br, natIn);
    chains.push(
      { name: `filter-forward-in__${br}`, rules: [] },
      { name: `filter-forward-out__${br}`, rules: out },
      { name: `nat-postrouting-in__${br}`, rules: natIn.rules },
      { name: `nat-postrouting-out__${br}`, rules: natOut },
    );
  }

  // Containers as they start: the direct-access drop per endpoint, then the port bindings.
  for (const c of plan.containers) {
    const lines = containerLines(c, family, hairpin);
    c.endpoints.forEach((e, i) => {
      if (!fwdIn.has(e.bridge)) throw new Error(`Docker 29's nftables tables: ${e.ip} is on bridge ${e.bridge}, which has no IPv${family} subnet`);
      raw.add(lines.direct[i]!);
    });
    c.ports.forEach((p, i) => publish(p, lines.ports[i]!));
  }

  function publish(p: PortPlan, lines: PortLines): void {
    const n: NetPlan = p.network;
    if (n.internal) return; // dockerd writes no port rules for an internal network
    const br = n.bridge;
    const groups = fwdIn.get(br);
    if (!groups) throw new Error(`Docker 29's nftables tables: ${p.comment} is on bridge ${br}, which has no IPv${family} subnet`);
    if (p.hostPort === 0) throw new Error(`Docker 29's nftables tables: ${p.comment} has no host port (dockerd picks one)`);
    // Bindings of several host ports to one container port share the accept (dockerd ignores the duplicate).
    groups.ports.addOnce(lines.accept);
    dnat.add(lines.dnat);
    if (lines.masquerade) postIn.get(br)!.add(lines.masquerade);
    if (lines.loopback) raw.add(lines.loopback);
  }

  for (const n of nets) {
    const g = fwdIn.get(n.bridge)!;
    chains.find((c) => c.name === `filter-forward-in__${n.bridge}`)!.rules.push(...g.first, ...g.icc, ...g.ports.rules, ...g.final);
  }

  // nft lists a map's elements by key, compared as a little-endian number: longer names last.
  const bridges = nets.map((n) => n.bridge).sort(ifnameOrder);
  const maps = MAPS.map((m) => {
    const chain = m.replace("-jumps", "__");
    return { name: m, type: "ifname : verdict", elements: bridges.map((br) => `${quote(br)} : jump ${chain}${br}`) };
  });
  return { family: ip, maps, chains };
}

/** One of Docker's tables as dockerd 29.7 makes it: its maps, then its chains, each in nft's order. */
export interface DockerTable {
  family: "ip" | "ip6";
  maps: { name: string; type: string; elements: string[] }[];
  chains: Chain[];
}

/** The table as `nft list ruleset` prints it. */
export function tableText(t: DockerTable): string {
  const blocks = t.maps.map((m) => {
    const lines = [`\ttype ${m.type}`];
    if (m.elements.length) lines.push(`\telements = { ${m.elements.join(",\n\t\t\t     ")} }`);
    return `\tmap ${m.name} {\n${lines.map((l) => `\t${l}`).join("\n")}\n\t}\n`;
  });
  for (const c of t.chains) {
    const lines = c.base ? [c.base, ...c.rules] : c.rules;
    // (Joined once: thousands of rules in a chain, each not made into a line of its own first.)
    blocks.push(`\tchain ${c.name} {\n${lines.length ? `\t\t${lines.join("\n\t\t")}\n` : ""}\t}\n`);
  }
  return `table ${t.family} docker-bridges {\n${blocks.join("\n")}}\n`;
}

/**
 * The table as live/nftdiff.ts's parseNftList reads that text, without the text (watch compares
 * it with what is loaded at each reconcile: 8,000 rules at 2,000 containers): each map's
 * elements sorted, a base chain's hook line its header. test/targets/nft-state.test.ts holds
 * the tables of whole files to parseNftList of their text.
 */
export function tableParts(t: DockerTable): NftPart[] {
  const table = `${t.family} docker-bridges`;
  const parts: NftPart[] = t.maps.map((m) => ({ table, kind: "map", name: m.name, header: [`type ${m.type}`], lines: [...m.elements].sort(), handles: [] }));
  for (const c of t.chains) parts.push({ table, kind: "chain", name: c.name, header: c.base ? [c.base] : [], lines: c.rules, handles: [] });
  return parts;
}

/** The rules of one binding, in the chains they go to. */
interface PortLines {
  accept: string;
  dnat: string;
  masquerade?: string;
  loopback?: string;
}

/**
 * A container's rules as text: the direct-access drop of each endpoint, and each binding's.
 * Made once per container plan (a plan made again only when the container or its networks
 * changed: docker/plan.ts), for the family and hairpin mode it was made for.
 */
function containerLines(c: ContainerPlan, family: Family, hairpin: boolean): { direct: string[]; ports: PortLines[] } {
  const mode = `${family}${hairpin}`;
  const was = written.get(c);
  if (was?.mode === mode) return was.lines;
  const ip = family === 4 ? "ip" : "ip6";
  const lines = {
    direct: c.endpoints.map((e) => `${ip} daddr ${e.ip} iifname != ${quote(e.bridge)} ${COUNTER} drop comment "DROP DIRECT ACCESS"`),
    ports: c.ports.map((p): PortLines => {
      const br = p.network.bridge;
      const to = family === 4 ? `${p.containerIp}:${p.containerPort}` : `[${p.containerIp}]:${p.containerPort}`;
      const matches = [hairpin ? "" : `iifname != ${quote(br)} `, family === 6 ? "ip6 saddr != fe80::/10 " : "", p.hostIp ? `${ip} daddr ${p.hostIp} ` : ""].join("");
      const out: PortLines = {
        accept: `${ip} daddr ${p.containerIp} ${p.proto} dport ${p.containerPort} ${COUNTER} accept`,
        dnat: `${matches}${p.proto} dport ${p.hostPort} ${COUNTER} dnat to ${to} comment "DNAT"`,
      };
      if (hairpin) out.masquerade = `${ip} saddr ${p.containerIp} ${ip} daddr ${p.containerIp} ${p.proto} dport ${p.containerPort} ${COUNTER} masquerade comment "MASQ TO OWN PORT"`;
      if (family === 4 && p.loopback) out.loopback = `iifname != "lo" ip daddr ${p.hostIp} ${p.proto} dport ${p.hostPort} ${COUNTER} drop comment "DROP REMOTE LOOPBACK"`;
      return out;
    }),
  };
  written.set(c, { mode, lines });
  return lines;
}

const written = new WeakMap<ContainerPlan, { mode: string; lines: { direct: string[]; ports: PortLines[] } }>();

/** A chain's rules (or a group of them) as dockerd adds them, with the set of what it holds (thousands of rules, each looked up). */
class Rules {
  readonly rules: string[] = [];
  private readonly held = new Set<string>();
  constructor(private readonly chain: string) {}

  /** dockerd refuses to add a rule a group already holds (its transaction fails). */
  add(rule: string): void {
    if (this.held.has(rule)) throw new Error(`Docker 29's nftables tables: dockerd would add the rule '${rule}' to ${this.chain} twice, and fails`);
    this.held.add(rule);
    this.rules.push(rule);
  }

  /** Bindings of several host ports to one container port share the accept (dockerd ignores the duplicate). */
  addOnce(rule: string): void {
    if (!this.held.has(rule)) this.held.add(rule), this.rules.push(rule);
  }
}

function quote(ifname: string): string {
  return `"${ifname}"`;
}

/** A bridge name nft takes inside a chain name (an identifier) and prints as written. */
function checkName(br: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(br)) throw new Error(`Docker 29's nftables tables: bridge name '${br}' does not fit in an nft chain name as dockerd writes it`);
}

/** nft's order of ifname keys: the 16-byte name as a little-endian number. */
function ifnameOrder(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = a.length - 1; i >= 0; i--) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d) return d;
  }
  return 0;
}
