// Rule sets → one nftables file (`nft -f`), for a host whose firewall is nftables. dockwall's
// rules go in a table of its own, `inet dockwall`, that the file replaces as one transaction
// (the table made if missing, deleted, made again), and nothing else: no `flush ruleset`,
// nothing written into iptables-nft's `ip filter`. Its base chains hook forward and input at
// priority filter - 1, just before the iptables chains and Docker 29's own (filter, 0), so
// they see a packet before Docker's rules do, as DOCKER-USER does. With `iptables on` dockerd
// writes its rules (through iptables-nft, or in its nftables backend's tables); with
// `iptables off` the file also holds Docker's tables `ip`/`ip6 docker-bridges` as Docker
// 29.7's nftables backend writes them (src/docker/nft29.ts), and dockwall's table then does
// what FORWARD's policy DROP does in the iptables output: what is neither a Docker network's
// traffic (which Docker's tables decide) nor let through by a `forward` statement is dropped.
//
// nftables decides across tables: a drop anywhere is final, an accept only ends this table's
// chain (the packet goes on to the next base chain, Docker's). So this table can close what
// the policy closes, but it can grant nothing that Docker's own rules drop: a rule that would
// have to (a `forward` statement's ACCEPT in DOCKER-USER) is an error at its statement, never
// left out silently. DOCKER-USER's RETURN (let Docker's rules decide) is `return`.
//
// The decisions are here; templates/nft/table.hbs only lays out the chains.
import type { Problems } from "../diagnostics.js";
import { startOfFile } from "../diagnostics.js";
import { make, statementOf, type Match, type Rule, type Ruleset } from "../ir/ruleset.js";
import { typedMatch } from "../ir/match.js";
import { dockerBridgesList, tableParts, tableText, type DockerTable } from "../docker/nft29.js";
import { parseNftList, type NftPart, type NftState } from "../live/nftdiff.js";
import { layoutFor } from "../docker/layouts.js";
import { makePlan } from "../docker/plan.js";
import { dockerWrites, meaningful } from "../generate.js";
import { ownedChains } from "../policy/owned.js";
import type { Policy } from "../model/types.js";
import type { Family } from "../model/values.js";
import { bits, formatIp, readIp } from "../ir/address.js";
import { PROXY_CHAIN } from "../policy/owned.js";
import { templates } from "./templates.js";

/** dockwall's table, and where its base chains hook in (before iptables-nft's and Docker 29's filter chains, at 0). */
export const NFT_TABLE = "inet dockwall";
export const NFT_PRIORITY = "filter - 1";

class Untranslatable extends Error {
  constructor(
    message: string,
    readonly rule: Rule,
  ) {
    super(message);
  }
}

/** An interface name as nft reads it: iptables' trailing `+` is nft's `*`; any other `*` (or `\\`, `"`) is the character itself. */
const q = (s: string) => {
  const wild = s.endsWith("+");
  const name = (wild ? s.slice(0, -1) : s).replace(/[\\"*]/g, (c) => `\\${c}`);
  return `"${name}${wild ? "*" : ""}"`;
};
/** An address or network as nft prints it: a single address without /32 or /128, IPv6 in its shortest form. */
function addr(v: string): string {
  const [a, len] = v.split("/");
  const ip = a ? readIp(a) : undefined;
  if (!ip) return v;
  const text = formatIp(ip);
  return len === undefined || Number(len) === bits(ip.family) ? text : `${text}/${len}`;
}
/** Conntrack states in the order nft prints them. */
const STATE_ORDER = ["invalid", "established", "related", "new", "untracked"];
const ports = (v: string) => v.replace(/:/g, "-");
const portSet = (v: string) => (v.includes(",") ? `{ ${v.split(",").map(ports).join(", ")} }` : ports(v));

/** One match as nftables expressions (family: ip or ip6). */
function matchText(m: Match, r: Rule, ip: "ip" | "ip6"): string[] {
  const out: string[] = [];
  const ne = (n: { neg?: boolean }) => (n.neg ? "!= " : "");
  switch (m.kind) {
    case "tcp":
    case "udp":
      if (m.sport) out.push(`${m.kind} sport ${ne(m.sport)}${ports(m.sport.value.text)}`);
      if (m.dport) out.push(`${m.kind} dport ${ne(m.dport)}${ports(m.dport.value.text)}`);
      if (m.flags) throw new Untranslatable(`-m tcp --tcp-flags`, r);
      break;
    case "multiport":
      if (m.dir !== "dports") throw new Untranslatable(`-m multiport --${m.dir}`, r);
      if (r.proto !== "tcp" && r.proto !== "udp") throw new Untranslatable(`-m multiport without -p tcp or -p udp`, r);
      out.push(`${r.proto} dport ${ne(m.ports)}${portSet(m.ports.value.text)}`);
      break;
    case "conntrack": {
      if (m.state) {
        const v = m.state.value.text;
        const states = m.state.value.states.map((x) => x.toLowerCase());
        const status = states.filter((x) => x === "dnat" || x === "snat");
        const plain = states.filter((x) => ["new", "established", "related", "invalid", "untracked"].includes(x));
        // (A negated list is not `!= a,b` in nft, which compares the whole mask: nothing writes one, so it is refused.)
        if (status.length + plain.length !== states.length || (status.length && plain.length) || status.length > 1 || (m.state.neg && states.length > 1)) throw new Untranslatable(`--ctstate ${v}`, r);
        plain.sort((a, b) => STATE_ORDER.indexOf(a) - STATE_ORDER.indexOf(b));
        out.push(status.length ? `ct status ${ne(m.state)}${status[0]}` : `ct state ${ne(m.state)}${plain.join(",")}`);
      }
      if (m.origDst) out.push(`ct original ${ip} daddr ${ne(m.origDst)}${addr(m.origDst.value)}`);
      if (m.origDstPort) out.push(`ct original proto-dst ${ne(m.origDstPort)}${ports(m.origDstPort.value.text)}`);
      break;
    }
    case "iprange":
      if (m.src) out.push(`${ip} saddr ${ne(m.src)}${m.src.value}`);
      if (m.dst) out.push(`${ip} daddr ${ne(m.dst)}${m.dst.value}`);
      break;
    case "icmp":
      out.push(`icmp type ${ne(m.type)}${m.type.value}`);
      break;
    case "icmp6":
      out.push(`icmpv6 type ${ne(m.type)}${ICMPV6[m.type.value] ?? m.type.value}`);
      break;
    case "comment":
      break;
    case "state":
      throw new Untranslatable(`-m state --state`, r);
    case "addrtype":
      throw new Untranslatable(`-m addrtype --${m.src ? "src-type" : "dst-type"}`, r);
    case "physdev":
      throw new Untranslatable(`-m physdev --physdev-is-bridged`, r);
    case "set":
      throw new Untranslatable(`-m set --match-set`, r);
    case "other":
      // Each option alone, as far as one is known (the first that is not says why).
      for (const o of m.options) {
        const one = typedMatch(m.module, [o]);
        if (one.kind === "other") throw new Untranslatable(`-m ${m.module} --${o.name}`, r);
        out.push(...matchText(one, r, ip));
      }
      break;
  }
  return out;
}

/** ICMPv6 types by the names nftables prints them with (iptables-save prints numbers). */
const ICMPV6: Record<string, string> = { "1": "destination-unreachable", "2": "packet-too-big", "3": "time-exceeded", "4": "parameter-problem", "128": "echo-request", "129": "echo-reply", "133": "nd-router-solicit", "134": "nd-router-advert", "135": "nd-neighbor-solicit", "136": "nd-neighbor-advert" };

const VERDICT: Record<string, string> = { ACCEPT: "accept", DROP: "drop", RETURN: "return" };

/** An nftables rule: its expressions, then its verdict and comment. */
interface NftRule {
  exprs: string[];
  tail: string[];
  /** The compiled rule it translates (where it came from, for explain). */
  from?: Rule;
}
const joined = (r: NftRule) => [...r.exprs, ...r.tail].join(" ");

/** One rule as an nftables rule (its expressions in the order iptables evaluates them). */
function ruleText(r: Rule, ip: "ip" | "ip6", chains: Map<string, string>): NftRule {
  const out: string[] = [];
  if (r.in) out.push(`iifname ${r.in.neg ? "!= " : ""}${q(r.in.value)}`);
  if (r.out) out.push(`oifname ${r.out.neg ? "!= " : ""}${q(r.out.value)}`);
  if (r.src) out.push(`${ip} saddr ${r.src.neg ? "!= " : ""}${addr(r.src.value)}`);
  if (r.dst) out.push(`${ip} daddr ${r.dst.neg ? "!= " : ""}${addr(r.dst.value)}`);
  const matched = r.matches.flatMap((m) => matchText(m, r, ip));
  // -p: implied by a tcp/udp/icmp expression that follows; said once otherwise.
  if (r.proto && r.proto !== "all") {
    const proto = r.proto === "icmpv6" ? "ipv6-icmp" : r.proto;
    const implied = matched.some((e) => e.startsWith(`${proto} `) || (proto === "icmp" && e.startsWith("icmp ")) || (proto === "ipv6-icmp" && e.startsWith("icmpv6 ")));
    if (!implied) out.push(`meta l4proto ${proto}`);
  }
  out.push(...matched);
  const target = VERDICT[r.target] ?? (chains.has(r.target) ? `jump ${chains.get(r.target)}` : undefined);
  if (!target) throw new Untranslatable(`-j ${r.target}`, r);
  const comment = r.matches.find((m) => m.kind === "comment")?.text;
  return { exprs: out, tail: [target, ...(comment ? [`comment "${comment.replace(/"/g, "'")}"`] : [])] };
}

/** A named set of dockwall's table: the keys its elements join (`ip daddr . tcp dport`), their types, the elements. */
interface NftSet {
  name: string;
  type: string;
  elements: string[];
}

/** The expressions a set may stand for, a single value each (an address, a port), and their types. */
const KEYED = /^(ip daddr|ip6 daddr|tcp dport|udp dport|ct original proto-dst) ([0-9a-f.:]+)$/;
const KEY_TYPE: Record<string, (family: "ip" | "ip6") => string> = {
  "ip daddr": () => "ipv4_addr",
  "ip6 daddr": () => "ipv6_addr",
  "tcp dport": () => "inet_service",
  "udp dport": () => "inet_service",
  "ct original proto-dst": () => "inet_service",
};
/** From this many rules alike on, they are one rule and a set (a large host: a container coming or going is then a set element). */
export const SET_FROM = 4;

/** Verdicts that end the chain's walk: among rules that end alike, which one a packet matches makes no difference. */
const TERMINAL = new Set(["accept", "drop", "return"]);

/**
 * A chain's rules, where SET_FROM or more rules differ only in their single addresses and ports
 * (one rule per allowed container port, at a large host), written as one rule that looks the
 * values up in a named set (`ip daddr . tcp dport . ct original proto-dst @docker-user-ip-1`), each
 * set the rules of one statement.
 * Only among consecutive rules with the same final verdict (accept, drop, return): which of them
 * a packet matches makes no difference there, so they may be gathered, and the set's rule stands
 * where the first of its rules stood. A chain without such a group is written as it was.
 */
function withSets(chain: string, rules: NftRule[], origins?: Map<string, Rule>): { rules: string[]; sets: NftSet[] } {
  const sets: NftSet[] = [];
  const out: string[] = [];
  const said = (r: NftRule, text: string) => {
    if (origins && r.from && !origins.has(text)) origins.set(text, r.from);
    out.push(text);
  };
  const shapeOf = (r: NftRule) => {
    const keys = r.exprs.map((e) => KEYED.exec(e)?.[1]);
    // One statement's rules only: the set's rule then comes from that statement (explain --live names it).
    const from = statementOf(r.from);
    return keys.some((k) => k) ? JSON.stringify([r.exprs.map((e, i) => keys[i] ?? e), r.tail, from ? `${from.line}:${from.col}` : ""]) : undefined;
  };
  let i = 0;
  while (i < rules.length) {
    // A block: consecutive rules with one terminal verdict (or one rule).
    const verdict = rules[i]!.tail[0]!;
    let j = i + 1;
    if (TERMINAL.has(verdict)) while (j < rules.length && rules[j]!.tail[0] === verdict) j++;
    const block = rules.slice(i, j);
    i = j;
    const groups = new Map<string, NftRule[]>();
    for (const r of block) {
      const shape = shapeOf(r);
      if (shape !== undefined) groups.set(shape, [...(groups.get(shape) ?? []), r]);
    }
    const big = new Set([...groups.values()].filter((g) => g.length >= SET_FROM));
    for (const r of block) {
      const shape = shapeOf(r);
      const group = shape === undefined ? undefined : groups.get(shape)!;
      if (!group || !big.has(group)) {
        said(r, joined(r));
        continue;
      }
      if (group[0] !== r) continue; // said by its first rule
      const at = r.exprs.map((e) => KEYED.exec(e)?.[1]);
      const keys = at.filter((k): k is string => k !== undefined);
      const name = `${chain}-${sets.length + 1}`;
      const family = keys.includes("ip6 daddr") ? "ip6" : "ip";
      const elements = [...new Set(group.map((g) => g.exprs.flatMap((e) => KEYED.exec(e)?.[2] ?? []).join(" . ")))];
      sets.push({ name, type: keys.map((k) => KEY_TYPE[k]!(family)).join(" . "), elements });
      // The lookup stands where the first of its expressions stood.
      const firstKey = at.findIndex((k) => k !== undefined);
      const exprs = r.exprs.flatMap((e, k) => (k === firstKey ? [`${keys.join(" . ")} @${name}`] : at[k] ? [] : [e]));
      said(r, joined({ exprs, tail: r.tail }));
    }
  }
  return { rules: out, sets };
}

interface ChainView {
  name: string;
  base?: string;
  rules: string[];
}

interface SetView {
  name: string;
  type: string;
  elements: string;
}

/** The chains a family's rule set gives dockwall's table, and its jumps from the base chains. */
function familyChains(rs: Ruleset, family: Family, problems: Problems, p: Policy, said: Set<string>, origins?: Map<string, Rule>): { chains: ChainView[]; sets: NftSet[]; forward?: string; input?: string } {
  const ip = family === 4 ? "ip" : "ip6";
  const names = new Map<string, string>([
    ["FORWARD", `forward-${ip}`],
    ["DOCKER-USER", `docker-user-${ip}`],
    ["INPUT", `input-${ip}`],
    [PROXY_CHAIN, `proxy-${ip}`],
  ]);
  const chains: ChainView[] = [];
  const sets: NftSet[] = [];
  let forward: string | undefined;
  let input: string | undefined;
  for (const t of rs.tables) {
    for (const c of t.chains) {
      const name = names.get(c.name);
      if (t.name !== "filter" || !name) {
        problems.error("nft-format", p.docker.spans["iptables"] ?? p.docker.span ?? startOfFile, `--format nft writes only dockwall's own chains (DOCKER-USER, INPUT), but this policy needs ${t.name} ${c.name} in IPv${family} too`, {
          help: `compile it with --format ferm or --format iptables/ip6tables`,
        });
        continue;
      }
      const translated: NftRule[] = [];
      for (const r of c.rules) {
        try {
          // `-m physdev --physdev-is-bridged -j RETURN` (before `-o br-+ -j DROP`: what a bridge not known yet forwards
          // within itself goes on to Docker's rules) has no nftables spelling. Left out, the drop that follows takes that
          // traffic too: closed until dockwall knows the network, never open (an interface that merely starts with br-
          // cannot be told from a bridge here). For the internal networks it knows (whose bridges no `-i BRIDGE -j RETURN`
          // leaves to Docker's rules), traffic within the bridge is left to them by name: their containers reach each
          // other (a review found them cut off from each other where br_netfilter shows bridged traffic to nftables).
          if (r.matches.some((m) => m.kind === "physdev")) {
            if (c.name !== "DOCKER-USER" || r.target !== "RETURN" || r.matches.length !== 1 || r.src || r.dst || r.in || r.out) throw new Untranslatable(`-m physdev`, r);
            for (const n of p.networks.filter((x) => x.internal && x.subnets.some((s) => s.value.family === family))) {
              const within = make.jump("RETURN", { in: { value: n.bridge.value }, out: { value: n.bridge.value }, comment: `network ${n.name}'s own traffic (internal) follows Docker's rules` });
              translated.push({ ...ruleText(within, ip, names), from: within });
            }
            continue;
          }
          // An accept here is not final in nftables: Docker's own chains still see the packet and may drop it.
          // (Docker 29's nftables backend drops nothing that is not its networks' own: there, what DOCKER-USER accepts goes through.)
          if (p.docker.iptables && backendOf(p) !== "nftables" && c.name === "DOCKER-USER" && r.target === "ACCEPT" && !isEstablished(r)) throw new Untranslatable(`ACCEPT`, r);
          translated.push({ ...ruleText(r, ip, names), from: r });
        } catch (e) {
          if (!(e instanceof Untranslatable)) throw e;
          const at = statementOf(e.rule) ?? p.docker.spans["iptables"] ?? p.docker.span ?? startOfFile;
          // A statement makes rules in both families, and often more than one: said once.
          const key = `${at.line}:${at.col}:${e.message}`;
          if (said.has(key)) continue;
          said.add(key);
          if (e.message === "ACCEPT") {
            problems.error("nft-format", at, `this statement lets traffic through DOCKER-USER, which an nftables table beside Docker's rules cannot do: an accept there only ends dockwall's chain, and Docker's FORWARD rules still drop what they drop`, {
              help: `compile this policy with --format ferm or --format iptables/ip6tables (DOCKER-USER's ACCEPT is final there), or leave this statement out of the nftables host's policy`,
            });
          } else {
            problems.error("nft-format", at, `${e.message} in ${c.name} (IPv${family}) has no nftables spelling in dockwall yet`, { help: `compile this policy with --format ferm or --format iptables/ip6tables` });
          }
        }
      }
      const grouped = withSets(name, translated, origins);
      const rules = grouped.rules;
      sets.push(...grouped.sets);
      // A built-in chain's policy DROP: the end of the family's chain drops (the base chain itself accepts, so that the other family is not touched).
      if (c.builtin && c.policy === "DROP") rules.push(`drop comment "${c.name}'s policy: DROP"`);
      chains.push({ name, rules });
      if (c.name === "FORWARD" || (c.name === "DOCKER-USER" && !forward)) forward = name;
      if (c.name === "INPUT") input = name;
    }
  }
  // No INPUT of dockwall's, but the proxy chain (ip6tables off, docker-proxy on ::): INPUT jumps to it first.
  for (const j of rs.firstJumps ?? []) if (j.table === "filter" && j.chain === "INPUT" && j.target === PROXY_CHAIN && !input) input = names.get(PROXY_CHAIN);
  return { chains, sets, forward, input };
}

function isEstablished(r: Rule): boolean {
  const ct = r.matches.find((m) => m.kind === "conntrack");
  const states = ct?.kind === "conntrack" && ct.state && !ct.state.neg ? ct.state.value.states : [];
  return !r.src && !r.dst && !r.in && !r.out && states.length > 0 && states.every((s) => s === "RELATED" || s === "ESTABLISHED");
}

/** Docker's firewall backend as the policy says it, or the daemon (GET /info); undefined when neither does. */
function backendOf(p: Policy): "iptables" | "nftables" | undefined {
  const d = p.docker;
  return d.firewallBackend?.value ?? (d.backendFact ? (/^nftables\b/.test(d.backendFact.driver) ? "nftables" : "iptables") : undefined);
}

/**
 * `iptables on` beside Docker 29's nftables backend: dockwall's chains of one family, and FORWARD
 * as the policy means it ("Docker sets the FORWARD policy to DROP") — `forward` statements (in
 * DOCKER-USER) let through what they name, a Docker bridge's traffic (every `br-*`, docker0, and
 * those the facts name) goes on to Docker's own rules, the rest is dropped. That backend sets no
 * FORWARD policy at all (and needs forwarding on): without this, the host would route between
 * its other interfaces whatever no `forward` allows. (Beside Docker's iptables backend, iptables'
 * FORWARD policy decides that: the iptables and ferm outputs set it to DROP, this file does not.)
 */
function withForwardDrop(p: Policy, family: Family, rs: Ruleset): Ruleset {
  const layout = layoutFor(p.docker.version?.value);
  // The Docker networks dockwall knows, by their bridges: their traffic is left to Docker's table.
  // Where dockerd writes no table for this family (ip6tables off), an internal network's traffic
  // stays within its bridge, and a network without an address of the family has nothing to route.
  // Nothing else passes, a bridge merely named like Docker's (br-*) neither: a host's br-lan, or a
  // VM's bridge, is not routed without a `forward` (a review found br-vms routed to the wan). A
  // Docker network made after the compile is closed until dockwall knows it (watch does at once).
  const docker = dockerWrites(p, family);
  const networks = layout ? makePlan(p, family, layout).networks : [];
  const forward: Rule[] = [...internalEgress(networks, family, docker), ...(rs.tables.some((t) => t.chains.some((c) => c.name === "DOCKER-USER")) ? [make.jump("DOCKER-USER")] : [])];
  if (!networks.some((n) => n.bridge === "docker0")) forward.push(make.jump("ACCEPT", { in: { value: "docker0" } }), make.jump("ACCEPT", { out: { value: "docker0" } }));
  // (Where dockerd writes no table for the family, the other networks' traffic accepted next does not get into an internal one.)
  if (!docker) {
    for (const n of networks.filter((x) => x.internal && x.subnet[family])) forward.push(make.jump("DROP", { in: { value: n.bridge, neg: true }, out: { value: n.bridge } }), make.jump("DROP", { in: { value: n.bridge }, out: { value: n.bridge, neg: true } }));
  }
  for (const n of networks) {
    if (!docker && !n.subnet[family]) continue;
    if (!docker && n.internal) forward.push(make.jump("ACCEPT", { in: { value: n.bridge }, out: { value: n.bridge } }));
    else forward.push(make.jump("ACCEPT", { in: { value: n.bridge } }), make.jump("ACCEPT", { out: { value: n.bridge } }));
  }
  const tables = rs.tables.map((t) => (t.name === "filter" ? { ...t, chains: [{ name: "FORWARD", builtin: true, policy: "DROP" as const, rules: forward }, ...t.chains] } : t));
  if (!tables.some((t) => t.name === "filter")) tables.unshift({ name: "filter", chains: [{ name: "FORWARD", builtin: true, policy: "DROP", rules: forward }] });
  return { ...rs, tables };
}

/**
 * An internal network's containers reach nothing outside it (`docker network create --internal`).
 * Docker's iptables rules hold that (DOCKER-INTERNAL drops what leaves the bridge); its nftables
 * backend (29.x) does not, where a published port of another network accepts the packet first
 * (its chain for the way in runs before the one for the way out: a container of an internal
 * network reaches another network's published ports through the host's address, as the lab
 * showed with packets). dockwall's table drops what leaves an internal network's bridge for
 * another interface, before anything else, where Docker writes the family's table.
 */
function internalEgress(networks: { name: string; bridge: string; internal: boolean; subnet: Partial<Record<Family, unknown>> }[], family: Family, docker: boolean): Rule[] {
  if (!docker) return [];
  return networks.filter((n) => n.internal && n.subnet[family]).map((n) => make.jump("DROP", { in: { value: n.bridge }, out: { value: n.bridge, neg: true }, comment: `network ${n.name}'s own traffic stays in it (internal)` }));
}

/**
 * `iptables off`: dockwall's own chains of one family (Docker's are in its nftables tables),
 * with FORWARD as the iptables output has it but for Docker's own rules: DOCKER-USER first, then
 * each Docker network's traffic left to Docker's tables (where dockerd writes none, IPv6 with
 * ip6tables off, let through as the iptables output does), then the policy DROP.
 */
function ownRuleset(p: Policy, family: Family): Ruleset | undefined {
  const layout = layoutFor(p.docker.version?.value);
  if (!layout) return undefined;
  const plan = makePlan(p, family, layout);
  const owned = ownedChains(p, plan);
  const docker = dockerWrites(p, family);
  const forward: Rule[] = [...internalEgress(plan.networks, family, docker), ...(meaningful(owned.dockerUser) ? [make.jump("DOCKER-USER")] : [])];
  for (const n of plan.networks) {
    if (!n.subnet[family]) continue;
    if (n.internal && !docker) forward.push(make.jump("ACCEPT", { in: { value: n.bridge }, out: { value: n.bridge } }));
    else forward.push(make.jump("ACCEPT", { in: { value: n.bridge } }), make.jump("ACCEPT", { out: { value: n.bridge } }));
  }
  const chains: Ruleset["tables"][number]["chains"] = [{ name: "FORWARD", builtin: true, policy: "DROP", rules: forward }];
  if (meaningful(owned.dockerUser)) chains.push({ name: "DOCKER-USER", builtin: false, rules: owned.dockerUser });
  if (owned.proxy) chains.push({ name: PROXY_CHAIN, builtin: false, rules: owned.proxy });
  if (owned.input) chains.push({ name: "INPUT", builtin: true, policy: owned.input.policy, rules: owned.input.rules });
  else if (owned.proxy) chains.push({ name: "INPUT", builtin: true, policy: "ACCEPT", rules: [make.jump(PROXY_CHAIN)] });
  return { family, tables: [{ name: "filter", chains }], scope: "owned" };
}

/** Whether a family's rule set was made, without making it (compile.ts: generateLazily). */
function hasFamily(rulesets: Partial<Record<Family, Ruleset>>, f: Family): boolean {
  const d = Object.getOwnPropertyDescriptor(rulesets, f);
  return d !== undefined && (d.get !== undefined || d.value !== undefined);
}

export function renderNft(p: Policy, rulesets: Partial<Record<Family, Ruleset>>, header: string[], problems: Problems, origins?: Map<string, Rule>): string {
  return nftOutput(p, rulesets, header, problems, origins)?.text() ?? "";
}

/**
 * The --format nft file, made in two steps: what it holds, with every problem said (here), and
 * its text or its tables as live/nftdiff.ts reads them (when asked: watch compares the tables
 * with what is loaded, and needs the text only to load the whole file). Undefined when it cannot
 * be written (said in problems).
 */
export function nftOutput(p: Policy, rulesets: Partial<Record<Family, Ruleset>>, header: string[], problems: Problems, origins?: Map<string, Rule>): { text: () => string; state: () => NftState } | undefined {
  let docker: DockerTable[] = [];
  if (!p.docker.iptables) {
    const at = p.docker.version?.span ?? p.docker.span ?? startOfFile;
    const v = p.docker.version?.value;
    if (v && !(v.major === 29 && (v.minor === undefined || v.minor === 7))) {
      problems.error("nft-format", at, `with 'iptables off', --format nft writes Docker's own tables as dockerd 29.7's nftables backend writes them, not Docker ${v.text}'s rules`, {
        help: `compile this policy with --format ferm or --format iptables/ip6tables for Docker ${v.text}; or, to run dockerd 29.7 ("iptables": false) with these tables, say 'version 29.7;'`,
      });
      return undefined;
    }
    try {
      docker = dockerBridgesList(p);
    } catch (e) {
      problems.error("nft-format", at, `with 'iptables off', --format nft cannot write Docker's nftables tables for this policy: ${(e as Error).message.replace(/^Docker 29's nftables tables:? ?/, "")}`, {
        help: `compile this policy with --format ferm or --format iptables/ip6tables`,
      });
      return undefined;
    }
  }
  const chains: ChainView[] = [];
  const sets: NftSet[] = [];
  const forward: string[] = [];
  const input: string[] = [];
  const said = new Set<string>();
  for (const f of [4, 6] as const) {
    // Beside Docker 29's nftables backend (no FORWARD policy of its own), dockwall's table is what stands for FORWARD's policy DROP.
    const rs = p.docker.iptables ? rulesets[f] && (backendOf(p) === "nftables" ? withForwardDrop(p, f, rulesets[f]!) : rulesets[f]) : hasFamily(rulesets, f) ? ownRuleset(p, f) : undefined;
    if (!rs || rs.tables.length === 0) continue;
    const got = familyChains(rs, f, problems, p, said, origins);
    chains.push(...got.chains);
    sets.push(...got.sets);
    const proto = f === 4 ? "ipv4" : "ipv6";
    if (got.forward) forward.push(`meta nfproto ${proto} jump ${got.forward}`);
    if (got.input) input.push(`meta nfproto ${proto} jump ${got.input}`);
  }
  const base: ChainView[] = [];
  if (forward.length) base.push({ name: "forward", base: `type filter hook forward priority ${NFT_PRIORITY}; policy accept;`, rules: forward });
  if (input.length) base.push({ name: "input", base: `type filter hook input priority ${NFT_PRIORITY}; policy accept;`, rules: input });
  const [family, name] = NFT_TABLE.split(" ");
  // A set's elements as nft lists them: one line, comma-separated (nft's own order differs, and the comparisons take them as a set).
  const setViews: SetView[] = sets.map((x) => ({ name: x.name, type: x.type, elements: x.elements.join(", ") }));
  const own = (header: string[], docker: string) => templates.nft({ header, docker, family, name, sets: setViews, chains: [...base, ...chains] });
  return {
    // Each of Docker's tables replaced as dockwall's is (made if missing, deleted, made again), in the same transaction.
    text: () => own(header, docker.map((t) => `table ${t.family} docker-bridges\ndelete table ${t.family} docker-bridges\n${tableText(t)}`).join("")),
    state: () => {
      const mine = parseNftList(own([], ""));
      const parts = new Map<string, NftPart>();
      for (const t of docker) for (const part of tableParts(t)) parts.set(`${part.table}/${part.name}`, part);
      for (const [k, part] of mine.parts) parts.set(k, part);
      return { parts, tables: [...docker.map((t) => `${t.family} docker-bridges`), ...mine.tables], flags: mine.flags };
    },
  };
}

/** Each rule of dockwall's table as nft lists it, and the compiled rule it translates (explain --live names where a loaded rule came from). */
export function nftOrigins(p: Policy, rulesets: Partial<Record<Family, Ruleset>>, problems: Problems): Map<string, Rule> {
  const origins = new Map<string, Rule>();
  renderNft(p, rulesets, [], problems, origins);
  return origins;
}
