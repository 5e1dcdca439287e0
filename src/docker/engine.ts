// Replays what dockerd does to iptables, in its order, for one address family: chains at
// daemon start, then each network as it is created (many rules inserted at the top, so
// newer networks end up above older ones), then each container's port bindings. The
// layout (layouts/*.ts) says which rules each step writes and where.
import { make, rule, TableBuilder, type DockerOrigin, type Match, type Rule } from "../ir/ruleset.js";
import { DnatTo } from "../ir/match.js";
import type { Family, Version } from "../model/values.js";
import type { Layout } from "./layout.js";
import { IPSET } from "./layouts/v28-ipset.js";
import type { NetPlan, Plan, PortPlan } from "./plan.js";

export interface DockerTables {
  raw: TableBuilder;
  filter: TableBuilder;
  nat: TableBuilder;
}

/** Docker's own filter chains in this layout (what dockwall leaves alone with `iptables on`). */
export function dockerFilterChains(layout: Layout): string[] {
  return [
    "DOCKER",
    ...(layout.forward === "docker-forward" ? ["DOCKER-BRIDGE", "DOCKER-CT", "DOCKER-FORWARD"] : []),
    ...(layout.isolation ? ["DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"] : []),
    ...(layout.internalChain === "DOCKER-INTERNAL" ? ["DOCKER-INTERNAL"] : []),
  ];
}

const DAEMON: DockerOrigin = { kind: "docker", object: { type: "daemon", name: "dockerd" } };

/**
 * A table that notes on each rule put in it what dockerd was writing it for (its origin), unless
 * the rule says; once dockerd's rules are all written (undefined), nothing: what is added then is
 * dockwall's (generate.ts).
 */
class Stamping extends TableBuilder {
  origin: DockerOrigin | undefined = DAEMON;

  override append(chain: string, ...rules: Rule[]): void {
    super.append(chain, ...this.stamped(rules));
  }

  override insert(chain: string, ...rules: Rule[]): void {
    super.insert(chain, ...this.stamped(rules));
  }

  private stamped(rules: Rule[]): Rule[] {
    if (this.origin) for (const r of rules) r.origin ??= this.origin;
    return rules;
  }
}

class Dockerd {
  readonly raw = new Stamping("raw");
  readonly filter = new Stamping("filter");
  readonly nat = new Stamping("nat");
  private natJumps = false;

  /** What the rules written from now on are for: the daemon, a network, a container. */
  writingFor(origin: DockerOrigin | undefined): void {
    this.raw.origin = this.filter.origin = this.nat.origin = origin;
  }

  // Plain fields, not getters: publish() reads them for every port.
  readonly family: Family;
  readonly v6: boolean;
  readonly hostPrefix: number;

  constructor(
    readonly plan: Plan,
    readonly layout: Layout,
    readonly version: Version,
  ) {
    this.family = plan.family;
    this.v6 = plan.family === 6;
    this.hostPrefix = this.v6 ? 128 : 32;
  }

  /** Whether this family has DOCKER-USER. */
  get dockerUser(): boolean {
    return !this.v6 || this.layout.v6DockerUser(this.version);
  }

  start(): void {
    const { filter, nat, layout } = this;
    filter.chain("DOCKER");
    if (layout.forward === "docker-forward") {
      for (const c of ["DOCKER-BRIDGE", "DOCKER-CT", "DOCKER-FORWARD"]) filter.chain(c);
    }
    if (layout.isolation) {
      filter.chain("DOCKER-ISOLATION-STAGE-1");
      filter.chain("DOCKER-ISOLATION-STAGE-2");
    }
    if (layout.internalChain === "DOCKER-INTERNAL") filter.chain("DOCKER-INTERNAL");
    if (this.dockerUser) filter.chain("DOCKER-USER");
    nat.chain("DOCKER");

    if (layout.forward === "ipset") {
      filter.append(
        "FORWARD",
        make.jump("DOCKER-USER"),
        make.jump("ACCEPT", { matches: [this.ipset(), make.ctstate("RELATED,ESTABLISHED")] }),
        make.jump("DOCKER-ISOLATION-STAGE-1"),
        make.jump("DOCKER", { matches: [this.ipset()] }),
      );
    } else if (layout.forward === "docker-forward") {
      filter.append("FORWARD", make.jump("DOCKER-USER"), make.jump("DOCKER-FORWARD"));
      filter.append("DOCKER-FORWARD", make.jump("DOCKER-CT"), make.jump(layout.isolation ? "DOCKER-ISOLATION-STAGE-1" : "DOCKER-INTERNAL"), make.jump("DOCKER-BRIDGE"));
    }
    if (layout.isolationReturn) {
      filter.append("DOCKER-ISOLATION-STAGE-1", make.jump("RETURN"));
      filter.append("DOCKER-ISOLATION-STAGE-2", make.jump("RETURN"));
    }
    if (this.dockerUser && layout.userReturn(this.version)) filter.append("DOCKER-USER", make.jump("RETURN"));
    if (layout.forward === "inline" && this.dockerUser) filter.insert("FORWARD", make.jump("DOCKER-USER"));
    if (layout.natJumpsAtStart) this.addNatJumps();
  }

  private ipset(): Match {
    return { kind: "set", set: { value: `${IPSET[this.family]} dst` } };
  }

  private addNatJumps(): void {
    if (this.natJumps) return;
    this.natJumps = true;
    const loopback = this.v6 ? "::1/128" : "127.0.0.0/8";
    // The daemon's, whichever network's creation adds them.
    this.nat.append("PREROUTING", make.jump("DOCKER", { matches: [make.addrtype("dst-type", "LOCAL")], origin: DAEMON }));
    this.nat.append("OUTPUT", make.jump("DOCKER", { dst: this.plan.userlandProxy ? { value: loopback, neg: true } : undefined, matches: [make.addrtype("dst-type", "LOCAL")], origin: DAEMON }));
  }

  /** Legacy: the FORWARD jumps are deleted and re-inserted at the top at each network. */
  private reinsertJumps(): void {
    if (this.layout.forward !== "inline") return;
    const isolation = make.jump("DOCKER-ISOLATION-STAGE-1", { origin: DAEMON });
    this.filter.remove("FORWARD", isolation);
    this.filter.insert("FORWARD", isolation);
    if (this.dockerUser) {
      const user = make.jump("DOCKER-USER", { origin: DAEMON });
      this.filter.remove("FORWARD", user);
      this.filter.insert("FORWARD", user);
    }
  }

  /** The chain that holds a network's own accept/drop rules. */
  private get perBridgeChain(): string {
    return this.layout.forward === "docker-forward" ? "DOCKER-FORWARD" : "FORWARD";
  }

  createNetwork(n: NetPlan): void {
    const { filter, nat, layout } = this;
    this.writingFor({ kind: "docker", object: { type: "network", name: n.name } });
    const br = n.bridge;
    const sub = n.subnet[this.family];
    if (n.internal) {
      if (sub) {
        const strict = this.v6 && layout.v6StrictInternal(this.version);
        filter.insert(
          layout.internalChain,
          make.jump("DROP", { src: { value: sub, neg: true }, in: strict ? { value: br, neg: true } : undefined, out: { value: br } }),
          make.jump("DROP", { dst: { value: sub, neg: true }, in: { value: br }, out: strict ? { value: br, neg: true } : undefined }),
        );
        const rule = make.jump(n.icc ? "ACCEPT" : "DROP", { in: { value: br }, out: { value: br } });
        if (layout.forward === "inline" && n.icc) filter.insert("FORWARD", rule);
        else filter.append(this.perBridgeChain, rule);
        this.reinsertJumps();
      }
      return;
    }

    if (layout.isolation && (sub || (this.v6 && layout.v6IsolationForAll))) {
      const stage1 = make.jump("DOCKER-ISOLATION-STAGE-2", { in: { value: br }, out: { value: br, neg: true } });
      if (layout.isolationAppend) filter.append("DOCKER-ISOLATION-STAGE-1", stage1);
      else filter.insert("DOCKER-ISOLATION-STAGE-1", stage1);
      filter.insert("DOCKER-ISOLATION-STAGE-2", make.jump("DROP", { out: { value: br } }));
    }
    if (sub) {
      if (layout.forward === "inline") {
        const forward: Rule[] = [
          make.jump("ACCEPT", { out: { value: br }, matches: [make.ctstate("RELATED,ESTABLISHED")] }),
          make.jump("DOCKER", { out: { value: br } }),
          make.jump("ACCEPT", { in: { value: br }, out: { value: br, neg: true } }),
        ];
        if (n.icc) forward.push(make.jump("ACCEPT", { in: { value: br }, out: { value: br } }));
        else filter.append("FORWARD", make.jump("DROP", { in: { value: br }, out: { value: br } }));
        filter.insert("FORWARD", ...forward);
      } else {
        if (layout.forward === "docker-forward") {
          filter.append("DOCKER-CT", make.jump("ACCEPT", { out: { value: br }, matches: [make.ctstate("RELATED,ESTABLISHED")] }));
          filter.append("DOCKER-BRIDGE", make.jump("DOCKER", { out: { value: br } }));
        }
        if (n.icc) filter.append(this.perBridgeChain, make.jump("ACCEPT", { in: { value: br } }));
        else filter.append(this.perBridgeChain, make.jump("DROP", { in: { value: br }, out: { value: br } }), make.jump("ACCEPT", { in: { value: br }, out: { value: br, neg: true } }));
      }
      if (layout.unpublishedDrop) filter.append("DOCKER", make.jump("DROP", { in: { value: br, neg: true }, out: { value: br } }));

      this.addNatJumps();
      if (n.masquerade) nat.insert("POSTROUTING", make.jump("MASQUERADE", { src: { value: sub }, out: { value: br, neg: true } }));
      if (!this.plan.userlandProxy) nat.insert("POSTROUTING", make.jump("MASQUERADE", { out: { value: br }, matches: [make.addrtype("src-type", "LOCAL")] }));
      if (n.masquerade && this.plan.userlandProxy && layout.natReturn) nat.insert("DOCKER", make.jump("RETURN", { in: { value: br } }));
      this.reinsertJumps();
    }
  }


  /** dockerd 28.2+: one raw drop per container endpoint on a NAT network, at container start. */
  startContainer(name: string, endpoints: { ip: string; bridge: string }[]): void {
    this.writingFor({ kind: "docker", object: { type: "container", name } });
    if (this.layout.rawDrops(this.version) !== "per-container") return;
    const parts = this.plan.parts;
    for (const e of endpoints) this.raw.append("PREROUTING", make.jump("DROP", { dst: parts.is(`${e.ip}/${this.hostPrefix}`), in: parts.not(e.bridge) }));
  }

  publish(p: PortPlan): void {
    const { filter, nat, raw, layout } = this;
    const parts = this.plan.parts;
    const br = p.network.bridge;
    const cidr = parts.is(p.containerHost);
    const comment = p.comment;
    const toContainer = parts.dport(p.proto, p.containerPort);
    const accept = rule({ dst: cidr, in: parts.not(br), out: parts.is(br), proto: p.proto, matches: toContainer, target: "ACCEPT", comment });
    if (layout.acceptAtTop) filter.insert("DOCKER", accept);
    else filter.append("DOCKER", accept);
    if (layout.hairpinAlways || !this.plan.userlandProxy) {
      nat.append("POSTROUTING", rule({ src: cidr, dst: cidr, proto: p.proto, matches: toContainer, target: "MASQUERADE", comment }));
    }
    const to = this.v6 ? `[${p.containerIp}]:${p.containerPort}` : `${p.containerIp}:${p.containerPort}`;
    const hostIp = p.hostIp ? parts.is(`${p.hostIp}/${this.hostPrefix}`) : undefined;
    nat.append("DOCKER", rule({
      src: this.v6 && layout.dnatSkipLinkLocal ? parts.not("fe80::/10") : undefined,
      dst: hostIp,
      in: this.plan.userlandProxy ? parts.not(br) : undefined,
      proto: p.proto,
      matches: parts.dport(p.proto, p.hostPort),
      target: "DNAT",
      targetOptions: { kind: "dnat", to: new DnatTo(to) },
      comment,
    }));
    const rawMode = layout.rawDrops(this.version);
    const loDrop = (): Rule => rule({ dst: hostIp, in: parts.not("lo"), proto: p.proto, matches: parts.dport(p.proto, p.hostPort), target: "DROP", comment });
    if (rawMode === "per-port") {
      if (p.loopback) raw.append("PREROUTING", loDrop());
      raw.append("PREROUTING", rule({ dst: cidr, in: parts.not(br), proto: p.proto, matches: toContainer, target: "DROP", comment }));
    } else if (rawMode === "per-container" && p.loopback) {
      raw.append("PREROUTING", loDrop());
    }
  }
}

export function dockerTables(plan: Plan, layout: Layout, version: Version): DockerTables {
  const d = new Dockerd(plan, layout, version);
  d.start();
  for (const n of plan.networks) d.createNetwork(n);
  // (Indexed: for…of allocates per step in code that is not yet optimised.)
  for (let i = 0; i < plan.containers.length; i++) {
    const c = plan.containers[i]!;
    d.startContainer(c.name, c.endpoints);
    for (let k = 0; k < c.ports.length; k++) d.publish(c.ports[k]!);
  }
  d.writingFor(undefined);
  return { raw: d.raw, filter: d.filter, nat: d.nat };
}
