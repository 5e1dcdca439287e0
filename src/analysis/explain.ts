// `dockwall explain`: what becomes of one packet, and why — the verdict, where it ends, each
// rule on its way that changed or decided it (with where that rule came from: a policy
// statement, Docker's layout for a network or container, one of dockwall's own rules, another
// tool's chain), and for a packet dropped on its way to a published port or a host service, the
// allow that admits it (proven: the policy with it compiled and the packet evaluated again).
// The contract (names, JSON fields): ../shared/spec/analysis.md. Pure: the rules, the policy and
// the host's addresses come from the caller.
import type { Span } from "../diagnostics.js";
import { ruleKey, statementOf, type Rule, type Ruleset, type Table } from "../ir/ruleset.js";
import { dnatOf } from "../ir/match.js";
import { bindAddress, bindings, byName, gatewayOf, isLoopback, publishingNetwork } from "../model/derive.js";
import type { Container, Network, Policy } from "../model/types.js";
import { cidrContains, formatCidr, formatIp, specContains, type Family, type Ip } from "../model/values.js";
import { MARK, PROXY_CHAIN } from "../policy/owned.js";
import { ruleText } from "../targets/iptables.js";
import { parseSave } from "../live/save.js";
import { eachSourcePort, evaluate, localnetOf, type Packet, type PortTest, type Step, type Verdict } from "./evaluate.js";
import { evaluateNft, nftSourcePorts, type NftRuleset, type NftStep } from "./nfteval.js";
import { PortList } from "../ir/match.js";
import { NFT_TABLE } from "../targets/nft.js";
import type { PacketSpec } from "./packet.js";

export type OriginJson =
  | { kind: "policy"; file: string; line: number; column: number; text: string }
  | { kind: "docker"; release: string; object: { type: "network" | "container" | "daemon"; name: string } }
  | { kind: "dockwall"; why: string }
  | { kind: "other"; chain: string };

export interface RuleJson {
  table: string;
  chain: string;
  /** 1-based position in the chain; 0: the chain's policy. */
  position: number;
  rule: string;
  origin: OriginJson;
}

export interface ExplainResult {
  packet: string;
  family: Family;
  verdict: "accept" | "drop" | "reject" | "unknown";
  /** `proxy`: the host port is docker-proxy's, which relays the connection on to that container (userland-proxy on). */
  delivered: null | { to: "host" | "container" | "forward"; name?: string; address: string; port?: number; proxy?: string };
  /** Where it was going when it was dropped (text only says it). */
  headed?: { to: "host" | "container" | "forward"; name?: string; address: string; port?: number; proxy?: string };
  decided_by: null | { table: string; chain: string; rule: string; origin: OriginJson };
  path: RuleJson[];
  unknown: string[];
  suggestion: string | null;
  /** The packet gets through, but the connection's replies are dropped (by `decided_by`): it does not connect. */
  reply_dropped?: true;
  /** With reply_dropped: not dropped but taken out of conntrack (`decided_by` is the NOTRACK), so not translated back. */
  reply_untracked?: true;
  /**
   * With reply_dropped: the first reply gets through, the ones after it are dropped: the connection's own packets are not
   * tracked (NOTRACK), and conntrack takes those for a new connection (NEW).
   */
  reply_loose?: true;
  /**
   * With reply_dropped: the replies (the UDP reply; with reply_loose, the replies after the first) are not dropped but DNATed
   * elsewhere (by `decided_by`), away from the connection's client: the connection's own packets are not tracked.
   */
  reply_dnat?: true;
  /** The packet and its replies get through, but the connection's later packets from its side (its ACK, its data) are dropped (by `decided_by`): it does not connect. */
  later_dropped?: true;
  /** Dropped by Linux itself, not by a rule (decided_by is null): why (the host's connection from 127.0.0.1 routed out where route_localnet is off, or from ::1 out and back). */
  dropped_by_kernel?: string;
  /** The deciding rule's policy statement (for the text's caret). */
  decidingSpan?: Span;
}

export interface ExplainContext {
  /** The rules walked: compiled, or the kernel's (live). */
  rulesets: Partial<Record<Family, Ruleset>>;
  /** The policy compiled with Docker's facts: zones, networks, containers, and where rules came from. */
  policy?: Policy;
  file?: string;
  text?: string;
  /** live: the policy's compiled rules, to name where each loaded rule came from. */
  compiled?: Partial<Record<Family, Ruleset>>;
  /** live, or compiled with "iptables": true: the rules dockerd writes for these networks and containers (a loaded rule that equals one is Docker's). */
  docker?: Partial<Record<Family, Ruleset>>;
  /** The Docker release whose layout the rules follow ("20.10"). */
  release?: string;
  /** live: the host's addresses and routes from the kernel; compiled: worked out from the policy. */
  host?: { addresses: string[]; routes: { dst: string; dev: string }[]; localnet?: string[] };
  /** The policy's text with a statement added, compiled with the same facts: the rules of that family (for the suggestion's proof). */
  recompile?: (text: string, family: Family) => Ruleset | undefined;
  /**
   * live, on a host that filters through nftables tables too: the whole ruleset (`nft -j list
   * ruleset`, iptables-nft's tables included), walked by the nftables evaluator; and what
   * dockwall's own table holds, rule text by the compiled rule it comes from (origins).
   */
  nft?: { ruleset: NftRuleset; ours?: Map<number, Rule>; texts?: Map<string, string> };
}

export class ExplainError extends Error {
  constructor(
    message: string,
    readonly help?: string,
  ) {
    super(message);
  }
}

const ANY_SPORT = 40000;

function lineOf(text: string | undefined, span: Span): string {
  return (text?.split(/\r\n?|\n/)[span.line - 1] ?? "").trim();
}

/** The endpoint (network, address) of a container in this family. */
function endpointOf(c: Container, family: Family, network?: string): { net: string; ip: Ip } | undefined {
  for (const e of c.endpoints) {
    if (network && e.network.name !== network) continue;
    const a = e.addresses.find((x) => x.value.family === family);
    if (a) return { net: e.network.name, ip: a.value };
  }
  return undefined;
}

/** ` (GATEWAY)`: the host's address on a network, as a hint. */
function gatewayHint(n: Network | undefined, family: Family): string {
  const g = n ? gatewayOf(n, family) : undefined;
  return g ? ` (${formatIp(g)})` : "";
}

function containerAt(p: Policy | undefined, addr: string, family: Family): Container | undefined {
  return p?.containers.find((c) => c.endpoints.some((e) => e.addresses.some((a) => a.value.family === family && formatIp(a.value) === addr)));
}

/** The packet as the evaluator takes it: its interface, its source, the host's addresses and routes. */
function packetOf(ctx: ExplainContext, spec: PacketSpec): Packet {
  const p = ctx.policy;
  const family = spec.family;
  let src: string;
  let iface = spec.in;
  let bridged = false;
  const nets = byName(p?.networks ?? []);
  if (spec.src.kind === "host") {
    src = "";
    iface = "lo";
  } else if (spec.src.kind === "container") {
    if (!p) throw new ExplainError("container: sources need the policy and Docker's facts");
    const { name, network } = spec.src;
    const c = p.containers.find((x) => x.name === name);
    if (!c) throw new ExplainError(`no container '${name}' runs (or is declared)`, `the containers: ${p.containers.map((x) => x.name).join(", ") || "none"}`);
    const ends = c.endpoints.filter((e) => !network || e.network.name === network);
    if (!network && ends.length > 1) throw new ExplainError(`container '${name}' is on ${ends.length} networks`, `say which: ${ends.map((e) => `container:${name}@${e.network.name}`).join(", ")}`);
    const ep = endpointOf(c, family, network);
    if (!ep) throw new ExplainError(`container '${name}' has no IPv${family} address${network ? ` on network '${network}'` : ""}`);
    src = formatIp(ep.ip);
    // Its own loopback: the packet never leaves the container (a review: explain said the host took it).
    if (isLoopback(spec.dst)) {
      throw new ExplainError(`${formatIp(spec.dst)} is the loopback of container '${name}' itself: the packet never leaves the container, and no rule of the host's sees it`, `for the host, use its address on the container's network${gatewayHint(nets.get(ep.net), family)}`);
    }
    const n = nets.get(ep.net);
    iface = n?.bridge.value ?? iface;
    bridged = !!n && n.subnets.some((s) => s.value.family === family && cidrContains(s.value, spec.dst));
  } else {
    src = formatIp(spec.src.ip);
    if (!iface) {
      const ip = spec.src.ip;
      const zones = (p?.zones ?? []).filter((z) => !z.builtin);
      const holding = zones.filter((z) => z.sources.some((s) => specContains(s.value, ip)));
      const ifs = (zs: typeof zones) => [...new Set(zs.flatMap((z) => z.interfaces.map((i) => i.value)))];
      const candidates = holding.length ? ifs(holding) : ifs(zones);
      if (candidates.length === 1 && !candidates[0]!.endsWith("+")) iface = candidates[0];
      else
        throw new ExplainError(
          `which interface does the packet from ${src} arrive on?`,
          candidates.length ? `add 'in IFACE' to the packet (${candidates.join(", ")}${holding.length ? `: the interfaces of zone ${holding.map((z) => z.name).join(", ")}, whose 'from' holds ${src}` : ""})` : "add 'in IFACE' to the packet (the policy's zones name no interface)",
        );
    }
  }
  const dst = formatIp(spec.dst);
  let local: string[];
  let routes: { dst: string; dev: string }[];
  if (ctx.host) {
    local = ctx.host.addresses;
    routes = ctx.host.routes;
  } else {
    // Compiled rules: the destination is the host's own address unless it is a Docker network's (or loopback: isLocal knows).
    const networks = p?.networks ?? [];
    const inDocker = networks.some((n) => n.subnets.some((s) => s.value.family === family && cidrContains(s.value, spec.dst)));
    local = [...(inDocker ? [] : [dst]), ...networks.flatMap((n) => (gatewayOf(n, family) ? [formatIp(gatewayOf(n, family)!)] : []))];
    routes = networks.flatMap((n) => n.subnets.filter((s) => s.value.family === family).map((s) => ({ dst: formatCidr(s.value), dev: n.bridge.value })));
  }
  // A Docker network's address that is the host's own (its gateway on the bridge) is not bridged: it is delivered to the host (a review).
  if (bridged && local.includes(dst)) bridged = false;
  const pk: Packet = { family, in: iface!, src, dst, proto: spec.proto, sport: spec.src.port ?? ANY_SPORT, dport: spec.dport, icmpType: spec.icmpType, state: spec.state, local, routes, bridged };
  if (spec.src.kind === "host") {
    // The host's own packet leaves from the address the kernel picks: the destination itself when it is the host's, the bridge's toward a container; else not known.
    pk.fromHost = true;
    const localnet = localnetOf(p, ctx.host?.localnet);
    if (localnet && family === 4) pk.localnet = localnet;
    const loop = family === 4 ? spec.dst.value >> 24n === 127n : spec.dst.value === 1n;
    const net = (p?.networks ?? []).find((n) => n.subnets.some((x) => x.value.family === family && cidrContains(x.value, spec.dst)));
    const gw = net ? gatewayOf(net, family) : undefined;
    if (loop) pk.src = family === 4 ? "127.0.0.1" : "::1";
    else if (local.includes(dst)) pk.src = dst;
    else if (gw) pk.src = formatIp(gw);
    else {
      pk.src = family === 4 ? "0.0.0.0" : "::";
      pk.srcUnknown = true;
    }
  }
  return pk;
}

/** Docker's own chains, and what dockerd writes into built-in ones. */
function isDockersChain(chain: string): boolean {
  return chain.startsWith("DOCKER") && chain !== "DOCKER-USER";
}

/** A rule's canonical spelling (as diff reads rules): a loaded rule and the compiled one it equals spell alike. */
function canonical(table: string, chain: string, r: Rule): string {
  const t = parseSave(`*${table}\n:${chain} - [0:0]\n${ruleText(chain, r)}\nCOMMIT\n`).get(table);
  return `${table} ${chain} ${t?.chains.get(chain)?.rules[0]?.key ?? ruleKey(r)}`;
}

const indexes = new WeakMap<Ruleset, Map<string, Rule>>();
/** The rules of a rule set by their canonical spelling (made once per rule set). */
function indexOf(rs: Ruleset | undefined): Map<string, Rule> | undefined {
  if (!rs) return undefined;
  let m = indexes.get(rs);
  if (!m) {
    m = new Map();
    for (const t of rs.tables) for (const c of t.chains) for (const r of c.rules) {
      const k = canonical(t.name, c.name, r);
      if (!m.has(k)) m.set(k, r);
    }
    indexes.set(rs, m);
  }
  return m;
}

function origin(ctx: ExplainContext, family: Family, table: Table["name"], chain: string, r: Rule | undefined, live: boolean): OriginJson {
  // Rules read back (the kernel's, or Docker's and dockwall's laid together): named by the compiled rule they equal, else by Docker's.
  if (live && r) {
    const key = canonical(table, chain, r);
    const mine = indexOf(ctx.compiled?.[family])?.get(key);
    if (mine) return origin(ctx, family, table, chain, mine, false);
    const dockers = indexOf(ctx.docker?.[family])?.get(key);
    if (!dockers && !isDockersChain(chain)) return { kind: "other", chain };
    // One of the rules dockerd writes for this policy (iptables on): what it writes it for.
    if (dockers?.origin?.kind === "docker" && !owned(chain, dockers)) return { kind: "docker", release: ctx.release ?? "dockerd", object: dockers.origin.object };
  }
  // A built-in chain's policy read from the kernel that is not the one the policy compiles to (INPUT set to ACCEPT by
  // hand where the host block makes it DROP): not the policy's (a review: the host block was named as deciding).
  if (live && !r) {
    const policyOf = (rs: Ruleset | undefined) => rs?.tables.find((t) => t.name === table)?.chains.find((c) => c.name === chain)?.policy;
    const compiled = policyOf(ctx.compiled?.[family]);
    if (compiled !== undefined && compiled !== policyOf(ctx.rulesets[family])) return { kind: "other", chain };
  }
  const said = statementOf(r);
  if (said) return { kind: "policy", file: ctx.file ?? "<policy>", line: said.line, column: said.col, text: lineOf(ctx.text, said) };
  const p = ctx.policy;
  if (!r) {
    // A built-in chain's policy.
    if (chain === "INPUT" && p?.host) return { kind: "policy", file: ctx.file ?? "<policy>", line: p.host.span.line, column: p.host.span.col, text: lineOf(ctx.text, p.host.span) };
    if (chain === "FORWARD" && table === "filter") return { kind: "dockwall", why: "FORWARD's policy: DROP, whatever ip_forward was when dockerd started" };
    return { kind: "dockwall", why: `${table} ${chain}'s policy` };
  }
  if (owned(chain, r)) return { kind: "dockwall", why: r.comment && r.comment !== MARK ? r.comment : whyOwn(r, chain, p) };
  const release = ctx.release ?? "dockerd";
  // What dockerd wrote the rule for, as the rule set was made (docker/engine.ts).
  if (r.origin?.kind === "docker") return { kind: "docker", release, object: r.origin.object };
  // Docker's rules: the container (a DNAT to it, its address) or the network (its bridge) they are for.
  if (r && p) {
    const to = dnatOf(r.targetOptions)?.one?.addr;
    const addr = to ?? (r.dst && !r.dst.neg ? r.dst.value.replace(/\/(32|128)$/, "") : undefined);
    const c = addr ? containerAt(p, addr, family) : undefined;
    if (c) return { kind: "docker", release, object: { type: "container", name: c.name } };
    const n = p.networks.find((x) => x.bridge.value === r.in?.value || x.bridge.value === r.out?.value);
    if (n) return { kind: "docker", release, object: { type: "network", name: n.name } };
  }
  return { kind: "docker", release, object: { type: "daemon", name: "dockerd" } };
}

/** One of dockwall's own rules: in its chains, or marked as its in INPUT. */
function owned(chain: string, r: Rule): boolean {
  return chain === "DOCKER-USER" || chain === PROXY_CHAIN || (chain === "INPUT" && (r.matches.some((m) => m.kind === "comment" && m.text === MARK) || r.target === PROXY_CHAIN));
}

/** Why one of dockwall's rules without a comment of its own is there. */
function whyOwn(r: Rule, chain: string, p: Policy | undefined): string {
  if (r.target === PROXY_CHAIN) return "docker-proxy's ports are guarded first";
  if (r.matches.some((m) => m.kind === "conntrack" && m.state?.value.text === "RELATED,ESTABLISHED")) return "replies and related traffic always pass";
  if (r.in?.value === "lo" && !r.in.neg) return "the host's own traffic (loopback)";
  if (r.in && p?.networks.some((n) => n.bridge.value === r.in!.value)) return chain === PROXY_CHAIN ? "containers reach published ports through docker-proxy as Docker lets them" : "the containers' own traffic follows Docker's rules";
  if (chain === "DOCKER-USER" && r.target === "RETURN" && !r.matches.length && !r.in && !r.out) return "the end of dockwall's rules: on to Docker's";
  return `dockwall's rule in ${chain}`;
}

function ruleJson(ctx: ExplainContext, family: Family, s: Step, live: boolean): RuleJson {
  const chain = ctx.rulesets[family]?.tables.find((t) => t.name === s.table)?.chains.find((c) => c.name === s.chain);
  const text = s.rule ? ruleText(s.chain, s.rule) : `-P ${s.chain} ${chain?.policy ?? "ACCEPT"}`;
  return { table: s.table, chain: s.chain, position: s.index + 1, rule: text, origin: origin(ctx, family, s.table, s.chain, s.rule, live) };
}

/** Where the packet ends (or was going): the host, a container, or on to another host. */
function destinationOf(ctx: ExplainContext, spec: PacketSpec, v: Verdict): NonNullable<ExplainResult["headed"]> {
  const family = spec.family;
  if (v.dnat) {
    const c = containerAt(ctx.policy, v.dnat.addr, family);
    return { to: c ? "container" : "forward", ...(c ? { name: c.name } : {}), address: v.dnat.addr, ...(v.dnat.port !== undefined ? { port: v.dnat.port } : spec.dport !== undefined ? { port: spec.dport } : {}) };
  }
  const dst = formatIp(spec.dst);
  const port = spec.dport !== undefined ? { port: spec.dport } : {};
  if (v.path === "input") {
    const proxy = ctx.policy?.docker.userlandProxy && spec.proto !== "icmp" && spec.dport !== undefined ? proxiedBy(ctx.policy, spec) : undefined;
    return { to: "host", address: dst, ...port, ...(proxy ? { proxy } : {}) };
  }
  // From the host (OUTPUT): to a container's address, or out.
  const c = containerAt(ctx.policy, dst, family);
  return c ? { to: "container", name: c.name, address: dst, ...port } : { to: "forward", address: dst, ...port };
}

/** The container whose published port docker-proxy holds at this destination (every address, or the one it is bound to). */
function proxiedBy(p: Policy, spec: PacketSpec): string | undefined {
  const nets = byName(p.networks);
  for (const c of p.containers) {
    const n = publishingNetwork(c, nets);
    if (!n) continue;
    for (const pub of c.publishes) {
      const bound = bindAddress(p, pub, n);
      if (bound && (bound.family !== spec.family || (bound.value !== 0n && bound.value !== spec.dst.value))) continue;
      if (bindings(pub).some((b) => b.proto === spec.proto && b.hostPort === spec.dport)) return c.name;
    }
  }
  return undefined;
}

/** The zone a packet's source belongs to, in the policy's words: the zone whose `from` holds it, else the one of its interface, else `any`. */
function zoneOf(p: Policy, spec: PacketSpec, iface: string): string {
  if (spec.src.kind !== "address") return "any";
  const ip = spec.src.ip;
  const zones = p.zones.filter((z) => !z.builtin);
  const byFrom = zones.find((z) => z.sources.some((s) => specContains(s.value, ip)));
  if (byFrom) return byFrom.name;
  const byIf = zones.find((z) => z.sources.length === 0 && z.interfaces.some((i) => i.value === iface));
  return byIf?.name ?? "any";
}

/** The allow that admits a dropped packet bound for a published port or a host service, if adding it to the policy really does. */
function suggest(ctx: ExplainContext, spec: PacketSpec, pk: Packet, v: Verdict, headed: NonNullable<ExplainResult["headed"]>): string | null {
  const p = ctx.policy;
  if (!p || ctx.text === undefined || !ctx.recompile || spec.src.kind === "host") return null;
  const zone = zoneOf(p, spec, pk.in);
  let statement: string;
  let text: string;
  if (headed.to === "container" && v.dnat && spec.dport !== undefined) {
    statement = `allow ${zone} to ${headed.name}:${spec.dport}${spec.proto === "udp" ? "/udp" : ""};`;
    text = `${ctx.text.replace(/\s*$/, "\n")}${statement}\n`;
  } else if (headed.to === "host" && !v.dnat) {
    const what = spec.proto === "icmp" ? "icmp" : `${spec.proto} ${spec.dport}`;
    if (p.host) {
      statement = `allow ${zone} ${what};`;
      // Inside the host block, before its closing brace.
      const lines = ctx.text.split("\n");
      const end = p.host.span;
      const line = lines[end.endLine - 1] ?? "";
      const brace = line.lastIndexOf("}", end.endCol - 1);
      if (brace < 0) return null;
      lines[end.endLine - 1] = `${line.slice(0, brace)}  ${statement}\n${line.slice(brace)}`;
      text = lines.join("\n");
      statement = `host { ${statement} }`;
    } else return null; // no host block: INPUT is the host's own, and dockwall does not drop there
  } else return null;
  const rs = ctx.recompile(text, spec.family);
  if (!rs) return null;
  return evaluate(rs, pk, { replies: true }).verdict === "ACCEPT" ? statement : null;
}

/** Where a rule of an nftables table came from: dockwall's table (by the compiled rule it translates), Docker's (the container or network it serves), another tool's. */
function nftOrigin(ctx: ExplainContext, family: Family, s: NftStep): OriginJson {
  const table = `${s.family} ${s.table}`;
  if (table === NFT_TABLE) {
    const r = s.handle !== undefined ? ctx.nft?.ours?.get(s.handle) : undefined;
    const said = statementOf(r);
    if (said) return { kind: "policy", file: ctx.file ?? "<policy>", line: said.line, column: said.col, text: lineOf(ctx.text, said) };
    // The chain of the compiled rules this one translates (a review: the proxy chain's were called DOCKER-USER's).
    const chain = s.chain.startsWith("input") ? "INPUT" : s.chain.startsWith("proxy") ? PROXY_CHAIN : "DOCKER-USER";
    return { kind: "dockwall", why: r ? (r.comment && r.comment !== MARK ? r.comment : whyOwn(r, chain, ctx.policy)) : s.index === -1 ? `${s.chain}'s policy` : `dockwall's table (${NFT_TABLE})` };
  }
  const dockers = / docker-bridges$/.test(table) || (/^ip6? (filter|nat)$/.test(table) && isDockersChain(s.chain));
  if (!dockers) return { kind: "other", chain: `${table} ${s.chain}` };
  const release = ctx.release ?? "dockerd";
  const p = ctx.policy;
  for (const m of (s.text ?? "").matchAll(/(?:daddr|dnat to) \[?([0-9a-f.:]+?)\]?(?::\d+)?(?= |$)/g)) {
    const c = p ? containerAt(p, m[1]!, family) : undefined;
    if (c) return { kind: "docker", release, object: { type: "container", name: c.name } };
  }
  const bridge = /__(\S+)$/.exec(s.chain)?.[1];
  const n = bridge ? p?.networks.find((x) => x.bridge.value === bridge) : undefined;
  if (n) return { kind: "docker", release, object: { type: "network", name: n.name } };
  return { kind: "docker", release, object: { type: "daemon", name: "dockerd" } };
}

function nftRuleJson(ctx: ExplainContext, family: Family, s: NftStep): RuleJson {
  // The rule as nft lists it, where the listing was read (live); else as the evaluator spells it.
  const listed = s.handle !== undefined ? ctx.nft?.texts?.get(`${s.family} ${s.table} ${s.handle}`) : undefined;
  return { table: `${s.family} ${s.table}`, chain: s.chain, position: s.index + 1, rule: listed ?? s.text ?? "", origin: nftOrigin(ctx, family, s) };
}

/** A TCP or UDP packet given without a source port: any one from 1024 (analysis.md), walked from 40000. */
function anySourcePort(spec: PacketSpec): boolean {
  return spec.proto !== "icmp" && spec.src.port === undefined;
}

/**
 * For a packet given without a source port: the walk from each class of ports from 1024 up that the
 * rules tell apart (a rule's --sport, multiport, a reply's --dport). Where one ends otherwise than
 * the walk from 40000 did, the answer depends on the port the packet does not give: what to say
 * instead of a verdict (a review found `--sport 1024:30000 -j ACCEPT` answered "dropped"); else undefined.
 */
function portDecides(spec: PacketSpec, v: Verdict, walk: (port: number) => { verdict: Verdict; sports: PortTest[] }): string | undefined {
  const outcome = (w: Verdict) => `${w.verdict} ${w.path} ${w.dnat?.addr ?? ""} ${w.dnat?.port ?? ""} ${w.reply ? "reply" : ""}`;
  const said = (w: Verdict) => (w.verdict === "unknown" ? `unknown (${w.why})` : w.reply ? "its replies dropped" : w.verdict === "ACCEPT" ? "accepted" : w.verdict === "DROP" ? "dropped" : "rejected");
  const first = outcome(v);
  const walks = eachSourcePort(ANY_SPORT, 1024, 65535, walk, (w) => outcome(w.verdict) !== first);
  if (!walks) return `the source port, which the packet does not give, decides: its rules tell more than 256 classes of ports apart; give the packet one`;
  const other = walks.find((w) => outcome(w.walked.verdict) !== first);
  if (!other) return undefined;
  const example = `, as in '${spec.text.replace(/^(\S+\s+)(\S+)/, (_m, proto: string, src: string) => `${proto}${spec.src.kind === "address" && src.includes(":") ? `[${src}]` : src}:${other.port}`)}'`;
  return `the source port, which the packet does not give, decides: from port ${ANY_SPORT} it is ${said(v)}, from port ${other.port} ${said(other.walked.verdict)} (a rule tests the source port); give the packet one${example}`;
}

/** One packet over the whole nftables ruleset (nfteval.ts): the same answer, in nft's words. */
function explainNft(ctx: ExplainContext, spec: PacketSpec, base: ExplainResult): ExplainResult {
  const family = spec.family;
  const pk = packetOf(ctx, spec);
  const v = evaluateNft(ctx.nft!.ruleset, pk, { trace: true, replies: true });
  const path = (v.steps ?? []).map((s) => nftRuleJson(ctx, family, s));
  if (v.verdict === "unknown") return { ...base, path, unknown: [v.why ?? "the evaluator cannot tell"] };
  if (anySourcePort(spec)) {
    // Each class of source ports the rules compare one with (nftSourcePorts), walked.
    const read = nftSourcePorts(ctx.nft!.ruleset);
    if (read.incomplete) return { ...base, path, unknown: [`the source port, which the packet does not give, is read in a way the evaluator cannot follow (${read.incomplete}): give the packet one`] };
    const lists = read.ranges.map((r) => new PortList(`${r.from}:${r.to}`));
    const split = portDecides(spec, v as unknown as Verdict, (port) => ({ verdict: evaluateNft(ctx.nft!.ruleset, { ...pk, sport: port }, { replies: true }) as unknown as Verdict, sports: lists.map((ports) => ({ ports, hit: ports.has(port) })) }));
    if (split) return { ...base, path, unknown: [split] };
  }
  const ours = v.decided?.handle !== undefined && `${v.decided.family} ${v.decided.table}` === NFT_TABLE ? ctx.nft!.ours?.get(v.decided.handle) : undefined;
  return { ...decided(base, v.verdict, destinationOf(ctx, spec, v as unknown as Verdict), v.decided ? nftRuleJson(ctx, family, v.decided) : undefined, path), ...(v.reply ? { reply_dropped: true } : {}), ...(v.untracked ? { reply_untracked: true } : {}), ...(v.replyLoose ? { reply_loose: true } : {}), ...(v.replyDnat ? { reply_dnat: true } : {}), ...(v.later ? { later_dropped: true } : {}), ...(v.kernel ? { dropped_by_kernel: v.kernel } : {}), decidingSpan: statementOf(ours) };
}

/** The answer for a packet whose walk ended in a verdict: where it was going, and the rule that decided it. */
function decided(base: ExplainResult, v: "ACCEPT" | "DROP" | "REJECT", headed: NonNullable<ExplainResult["headed"]>, decider: RuleJson | undefined, path: RuleJson[]): ExplainResult {
  const verdict = v === "ACCEPT" ? "accept" : v === "DROP" ? "drop" : "reject";
  return {
    ...base,
    verdict,
    delivered: verdict === "accept" ? headed : null,
    headed,
    decided_by: decider ? { table: decider.table, chain: decider.chain, rule: decider.rule, origin: decider.origin } : null,
    path,
  };
}

/** One packet, over the rules of its family. */
export function explain(ctx: ExplainContext, spec: PacketSpec, live = false): ExplainResult {
  const family = spec.family;
  const base: ExplainResult = { packet: spec.text, family, verdict: "unknown", delivered: null, decided_by: null, path: [], unknown: [], suggestion: null };
  if (ctx.nft) return explainNft(ctx, spec, base);
  const rs = ctx.rulesets[family];
  if (!rs) return { ...base, unknown: [`there are no IPv${family} rules to walk`] };
  const pk = packetOf(ctx, spec);
  const v = evaluate(rs, pk, { trace: true, replies: true });
  const path = (v.steps ?? []).map((s) => ruleJson(ctx, family, s, live));
  if (v.verdict === "unknown") return { ...base, path, unknown: [v.why ?? "the evaluator cannot tell"] };
  if (anySourcePort(spec)) {
    const split = portDecides(spec, v, (port) => {
      const sports: PortTest[] = [];
      return { verdict: evaluate(rs, { ...pk, sport: port }, { replies: true, sports }), sports };
    });
    if (split) return { ...base, path, unknown: [split] };
  }
  const headed = destinationOf(ctx, spec, v);
  const decider = v.decided ? ruleJson(ctx, family, { ...v.decided, action: "policy" }, live) : undefined;
  return {
    ...decided(base, v.verdict, headed, decider, path),
    ...(v.reply ? { reply_dropped: true } : {}),
    ...(v.untracked ? { reply_untracked: true } : {}),
    ...(v.replyLoose ? { reply_loose: true } : {}),
    ...(v.replyDnat ? { reply_dnat: true } : {}),
    ...(v.later ? { later_dropped: true } : {}),
    ...(v.kernel ? { dropped_by_kernel: v.kernel } : {}),
    // (No allow admits what Linux itself drops.)
    suggestion: v.verdict === "ACCEPT" || v.reply || v.later || v.kernel ? null : suggest(ctx, spec, pk, v, headed),
    decidingSpan: statementOf(v.decided?.rule) ?? (v.decided?.index === -1 && v.decided.chain === "INPUT" && decider?.origin.kind === "policy" && ctx.policy?.host ? { ...ctx.policy.host.span, endLine: ctx.policy.host.span.line, endCol: ctx.policy.host.span.col + "host".length } : undefined),
  };
}

function describeOrigin(o: OriginJson): string {
  switch (o.kind) {
    case "policy":
      return `${o.file}:${o.line}:${o.column}: ${o.text}`;
    case "docker":
      return `Docker ${o.release}'s rule${o.object.type === "daemon" ? "" : ` for ${o.object.type} ${o.object.name}`}`;
    case "dockwall":
      return `dockwall: ${o.why}`;
    case "other":
      return `another tool's chain ${o.chain}`;
  }
}

function describeWhere(d: NonNullable<ExplainResult["headed"]>): string {
  const at = `${d.address.includes(":") ? `[${d.address}]` : d.address}${d.port !== undefined ? `:${d.port}` : ""}`;
  return d.to === "host" ? `the host itself (${at}${d.proxy ? `: docker-proxy, which relays it to container ${d.proxy}` : ""})` : d.to === "container" ? `container ${d.name} ${at}` : `${at}, routed on`;
}

/** The text a person reads: the verdict and where the packet ends, the path, the deciding rule's origin, the allow that would admit it. */
export function formatExplain(r: ExplainResult, formatPlace: (span: Span, label: string) => string): string {
  const out: string[] = [`${r.packet} (IPv${r.family})`];
  const dnat = r.path.find((s) => s.rule.includes(" -j DNAT "));
  const via = dnat ? ` (DNAT by ${describeOrigin(dnat.origin)})` : "";
  if (r.verdict === "unknown") out.push(`  unknown: ${r.unknown.join("; ")}`);
  else if (r.verdict === "accept") out.push(`  accepted: delivered to ${describeWhere(r.delivered!)}${via}`);
  else if (r.reply_untracked) out.push(`  gets to ${describeWhere(r.headed!)}${via}, but its replies are not tracked (NOTRACK): not translated back, no connection`);
  else if (r.reply_loose) out.push(`  gets to ${describeWhere(r.headed!)}${via} and is answered, but the replies after the first are ${r.reply_dnat ? "DNATed elsewhere" : r.verdict === "drop" ? "dropped" : "rejected"}: the connection's own packets are not tracked (NOTRACK), so conntrack takes them for a new connection${r.reply_dnat ? ", which nat translates" : ""}: no connection`);
  else if (r.reply_dnat) out.push(`  gets to ${describeWhere(r.headed!)}${via}, but its replies are DNATed elsewhere: the connection's own packets are not tracked (NOTRACK), so conntrack takes its reply for a new connection, which nat translates: no connection`);
  else if (r.reply_dropped) out.push(`  gets to ${describeWhere(r.headed!)}${via}, but its replies are ${r.verdict === "drop" ? "dropped" : "rejected"}: no connection`);
  else if (r.later_dropped) out.push(`  gets to ${describeWhere(r.headed!)}${via} and is answered, but its next packets (its ACK, its data) are ${r.verdict === "drop" ? "dropped" : "rejected"}: no connection`);
  else out.push(`  ${r.verdict === "drop" ? "dropped" : "rejected"} on its way to ${describeWhere(r.headed!)}${via}${r.dropped_by_kernel ? `: ${r.dropped_by_kernel}` : ""}`);
  if (r.path.length) {
    out.push("  path:");
    const where = r.path.map((s) => `${s.table} ${s.chain} ${s.position === 0 ? "policy" : `#${s.position}`}`);
    const w = Math.max(...where.map((x) => x.length));
    r.path.forEach((s, i) => out.push(`    ${where[i]!.padEnd(w)}  ${s.rule}`, `    ${" ".repeat(w)}  ↳ ${describeOrigin(s.origin)}`));
  }
  if (r.decided_by) {
    const o = r.decided_by.origin;
    out.push(`  decided by ${r.decided_by.table} ${r.decided_by.chain}${r.reply_loose ? ` (a later reply)` : r.reply_dnat ? ` (the reply, by nat)` : r.reply_dropped ? ` (the reply)` : r.later_dropped ? ` (a later packet)` : ""}: ${describeOrigin(o)}`);
    if (o.kind === "policy" && r.decidingSpan) out.push(...formatPlace(r.decidingSpan, "note: this statement decided").split("\n").map((l) => `    ${l}`));
  }
  if (r.suggestion) out.push(`  to let it in: ${r.suggestion}`);
  return out.join("\n") + "\n";
}
