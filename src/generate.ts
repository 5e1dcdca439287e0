// Model → rule sets, one per family: Docker's chains for the chosen layout (when dockwall
// writes them, `iptables off`) plus dockwall's own chains.
import { makePlan, type Plan } from "./docker/plan.js";
import { dockerFilterChains, dockerTables } from "./docker/engine.js";
import { layoutFor } from "./docker/layouts.js";
import { IPSET } from "./docker/layouts/v28-ipset.js";
import { make, TableBuilder, type ChainPolicy, type FirstJump, type Rule, type Ruleset, type Table } from "./ir/ruleset.js";
import type { Policy } from "./model/types.js";
import type { Family } from "./model/values.js";
import { ownedChains, PROXY_CHAIN } from "./policy/owned.js";

export interface Generated {
  /** One rule set per family asked for. */
  rulesets: Partial<Record<Family, Ruleset>>;
  /** Shell commands that must run before each family's rules load (Docker 28.0.0's ipsets). */
  setup: Record<Family, string[]>;
  /** For ferm in `iptables on` mode: Docker's chains to keep (@preserve). */
  preserve: Partial<Record<Family, Partial<Record<string, string[]>>>>;
}


/** Whether dockerd writes rules for this family: IPv4 always, IPv6 with ip6tables (the layout's default unless the policy says). */
export function dockerWrites(p: Policy, family: Family): boolean {
  return family === 4 || (p.docker.ip6tables ?? layoutFor(p.docker.version?.value)?.ip6tablesDefault ?? true);
}

/** Generates the families asked for (an iptables-restore file needs only one). */
/** With "iptables": true, what dockerd itself writes for the policy's networks and containers in this family (dockwall reproduces it rule for rule): the rules a coexisting policy's chains meet. */
export function dockersOwn(p: Policy, family: Family): Generated {
  return generate({ ...p, docker: { ...p.docker, iptables: false, published: "open" }, host: undefined, forwards: [] }, [family]);
}

/**
 * `standIn` (iptables on): in a family dockerd writes no rules for, dockwall's DOCKER-USER accepts
 * what Docker's rules would (none: everything) and FORWARD's policy is DROP. Not for the --format
 * nft file, whose table can only drop and which sets no policy of iptables'.
 */
export function generate(p: Policy, families: readonly Family[] = [4, 6], opts: { standIn?: boolean } = {}): Generated {
  const out: Generated["rulesets"] = {};
  const preserve: Generated["preserve"] = {};
  const layout = layoutFor(p.docker.version?.value);
  if (!layout) throw new Error("generate: no layout for this version (compile() checks this first)");
  const setup: Record<Family, string[]> = { 4: [], 6: [] };
  for (const family of families) {
    const plan = makePlan(p, family, layout);
    out[family] = p.docker.iptables ? coexisting(p, plan, preserve, opts.standIn ?? true) : full(p, plan);
    if (layout.forward === "ipset" && !p.docker.iptables && dockerWrites(p, family)) {
      setup[family] = ipsetSetup(plan);
      out[family]!.ipsets = dockerIpsets(plan);
    }
  }
  return { rulesets: out, preserve, setup };
}

/**
 * generate(), each family's rule set made when it is first asked for. For the --format nft file
 * with `iptables off`, which writes Docker's tables from the plan (docker/nft29.ts) and
 * dockwall's own chains: Docker's chains as iptables rules, thousands at 2,000 containers, are
 * then made only for what asks for them (apply's lockout guard, explain), not for each of
 * watch's reconciles.
 */
export function generateLazily(p: Policy, families: readonly Family[], opts: { standIn?: boolean } = {}): Generated {
  const out: Generated = { rulesets: {}, preserve: {}, setup: { 4: [], 6: [] } };
  for (const family of families) {
    let made: Generated | undefined;
    const make = () => (made ??= generate(p, [family], opts));
    // A family's rule set, its ferm @preserve list and its setup commands: each made with the others when first asked for.
    Object.defineProperty(out.rulesets, family, { enumerable: true, get: () => make().rulesets[family] });
    Object.defineProperty(out.preserve, family, { enumerable: true, get: () => make().preserve[family] });
    Object.defineProperty(out.setup, family, { enumerable: true, get: () => make().setup[family] });
  }
  return out;
}

/** DOCKER-USER rules that do something (more than a lone RETURN). */
export function meaningful(rules: readonly Rule[]): boolean {
  return rules.some((r) => r.target !== "RETURN" || r.matches.length > 0 || r.in || r.out || r.src || r.dst);
}

/** `iptables off`: every table and chain, Docker's included. */
function full(p: Policy, plan: Plan): Ruleset {
  const family = plan.family;
  const owned = ownedChains(p, plan);
  let filter: TableBuilder;
  const tables: Table[] = [];
  const user = meaningful(owned.dockerUser);
  if (dockerWrites(p, family)) {
    const docker = dockerTables(plan, plan.layout, plan.version);
    filter = docker.filter;
    const hasUser = filter.chains.has("DOCKER-USER");
    if (hasUser || user) {
      // dockerd 20.10 wrote no IPv6 DOCKER-USER; dockwall adds one only when it has rules for it.
      if (!hasUser) filter.insert("FORWARD", make.jump("DOCKER-USER"));
      filter.chain("DOCKER-USER").rules = owned.dockerUser;
    }
    tables.push(docker.nat.build(), docker.raw.build());
  } else {
    // dockerd writes no rules for this family (IPv6 with ip6tables off), but the host routes it
    // all the same: what Docker lets through is its own bridges' traffic, unfiltered.
    filter = new TableBuilder("filter");
    if (user) filter.append("FORWARD", make.jump("DOCKER-USER"));
    for (const n of plan.networks) {
      const br = n.bridge;
      if (!n.subnet[family]) continue;
      if (n.internal) filter.append("FORWARD", make.jump("ACCEPT", { in: { value: br }, out: { value: br } }));
      else filter.append("FORWARD", make.jump("ACCEPT", { in: { value: br } }), make.jump("ACCEPT", { out: { value: br } }));
    }
    if (user) filter.chain("DOCKER-USER").rules = owned.dockerUser;
  }
  // dockwall owns FORWARD, in both families: policy DROP, whatever dockerd would have left
  // (ACCEPT when ip_forward was already on; IPv6 ACCEPT before 28 with ip6tables off, and from
  // 28 until a network has an IPv6 subnet). Only what Docker's rules and `forward` let through passes.
  filter.setPolicy("FORWARD", "DROP");
  addInput(filter, owned);
  tables.unshift(filter.build());
  return { family, tables: order(tables.filter((t) => !untouched(t))), scope: "full" };
}

function addInput(filter: TableBuilder, owned: ReturnType<typeof ownedChains>): void {
  if (owned.proxy) filter.chain(PROXY_CHAIN).rules = owned.proxy;
  if (owned.input) {
    filter.setPolicy("INPUT", owned.input.policy);
    filter.append("INPUT", ...owned.input.rules);
  } else if (owned.proxy) {
    filter.append("INPUT", make.jump(PROXY_CHAIN));
  }
}

/** `iptables on`: only dockwall's chains; Docker's stay as dockerd wrote them. */
function coexisting(p: Policy, plan: Plan, preserve: Generated["preserve"], standIn: boolean): Ruleset {
  const family = plan.family;
  const docker = dockerWrites(p, family);
  // A family dockerd writes no rules for: DOCKER-USER stands for Docker's rules too (policy/owned.ts).
  const owned = ownedChains(p, plan, standIn && !docker, !docker);
  const filter = new TableBuilder("filter");
  // Only the chains we own: drop the built-ins TableBuilder pre-creates, except INPUT with a host block.
  for (const name of ["INPUT", "FORWARD", "OUTPUT"]) filter.chains.delete(name);
  const firstJumps: FirstJump[] = [];
  // dockerd makes DOCKER-USER and jumps to it first in FORWARD; with ip6tables off it writes no
  // IPv6 rules at all, yet routes its networks' IPv6 (global addresses, reachable from outside):
  // dockwall then makes the chain and the jump itself.
  // dockerd before 23 writes ip6tables chains (ip6tables on) but no IPv6 DOCKER-USER and no jump to it (the layouts'
  // v6DockerUser; a random-policy fuzzer found dockwall's IPv6 rules never run, every IPv6 published port open to all):
  // dockwall makes that jump too.
  const dockerJumps = docker && (family === 4 || plan.layout.v6DockerUser(plan.version));
  if (docker || meaningful(owned.dockerUser)) {
    filter.chain("DOCKER-USER").rules = owned.dockerUser;
    firstJumps.push({ table: "filter", chain: "FORWARD", target: "DOCKER-USER", dockerMakes: dockerJumps });
  }
  if (owned.input) {
    filter.chains.set("INPUT", { name: "INPUT", builtin: true, policy: owned.input.policy, rules: [] });
    if (owned.proxy) filter.chain(PROXY_CHAIN).rules = owned.proxy;
    filter.append("INPUT", ...owned.input.rules);
  } else if (owned.proxy && (!docker || family === 6)) {
    // No DNAT in this family (ip6tables off): docker-proxy on :: takes every published port. With Docker's IPv6 rules
    // too: Docker DNATs no link-local source (28+) and nothing to a container without IPv6, and docker-proxy on :: takes
    // those (a review found them open from the wan, in every output format). IPv4 needs no guard: Docker DNATs every
    // source there before it could reach docker-proxy.
    filter.chain(PROXY_CHAIN).rules = owned.proxy;
    firstJumps.push({ table: "filter", chain: "INPUT", target: PROXY_CHAIN });
  }
  // ferm resets every table that exists in the kernel, not only those it is given: keep
  // (@preserve) every chain that is not ours, in every table Docker or the host may use.
  preserve[family] = {
    raw: ["PREROUTING", "OUTPUT"],
    mangle: ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    filter: ["FORWARD", "OUTPUT", ...(docker ? dockerFilterChains(plan.layout) : []), ...(owned.input ? [] : ["INPUT"])],
    nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", ...(docker ? ["DOCKER"] : [])],
  };
  // FORWARD's policy DROP: dockerd leaves it ACCEPT when forwarding was on before it started. Where
  // it writes this family's rules, they accept its networks' traffic; where it writes none,
  // DOCKER-USER does (standIn). The nft file sets no policy of iptables' (its header says so).
  const policies: ChainPolicy[] = docker || standIn ? [{ table: "filter", chain: "FORWARD", policy: "DROP" }] : [];
  const t = filter.build();
  return { family, tables: t.chains.length || policies.length ? [t] : [], scope: "owned", firstJumps, ...(policies.length ? { policies } : {}) };
}

/** dockerd 28.0.0 keeps the subnets of its non-internal bridges in an ipset its FORWARD rules match. */
function ipsetSetup(plan: Plan): string[] {
  const set = IPSET[plan.family];
  return [`ipset -exist create ${set} hash:net family ${plan.family === 4 ? "inet" : "inet6"}`, ...dockerIpsets(plan)[set]!.map((s) => `ipset -exist add ${set} ${s}`)];
}

/** That ipset's members, as the evaluator reads them (Ruleset.ipsets). */
function dockerIpsets(plan: Plan): Record<string, string[]> {
  return { [IPSET[plan.family]]: plan.networks.filter((n) => !n.internal && n.subnet[plan.family]).map((n) => n.subnet[plan.family]!) };
}

/** The ipsets dockerd keeps for the policy's networks (Docker 28.0.0), by family: what its rules match, as loaded once it runs. */
export function dockersIpsets(p: Policy, family: Family): Record<string, string[]> | undefined {
  const layout = layoutFor(p.docker.version?.value);
  return layout?.forward === "ipset" && dockerWrites(p, family) ? dockerIpsets(makePlan(p, family, layout)) : undefined;
}

/** A table with only built-in chains, policy ACCEPT and no rules: nothing to write. */
function untouched(t: Table): boolean {
  return t.chains.every((c) => c.builtin && c.policy === "ACCEPT" && c.rules.length === 0);
}

function order(tables: Table[]): Table[] {
  // iptables-save's order: filter, nat, then raw (as the captures show).
  const rank = { filter: 0, nat: 1, mangle: 2, raw: 3 } as const;
  return tables.sort((a, b) => rank[a.name] - rank[b.name]);
}
