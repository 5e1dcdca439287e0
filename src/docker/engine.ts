// Replays what dockerd does to iptables, in its order, for one address family: chains at
// daemon start, then each network as it is created (many rules inserted at the top, so
// newer networks end up above older ones), then each container's port bindings. The
// layout (layouts/*.ts) says which rules each step writes and where.
import { R, rule, TableBuilder, type Rule } from "../ir/ruleset.js";
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
export function dockerFilterChains(l: Layout): string[] {
  return [
    "DOCKER",
    ...(l.forward === "docker-forward" ? ["DOCKER-BRIDGE", "DOCKER-CT", "DOCKER-FORWARD"] : []),
    ...(l.isolation ? ["DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"] : []),
    ...(l.internalChain === "DOCKER-INTERNAL" ? ["DOCKER-INTERNAL"] : []),
  ];
}

class Dockerd {
  readonly raw = new TableBuilder("raw");
  readonly filter = new TableBuilder("filter");
  readonly nat = new TableBuilder("nat");
  private natJumps = false;

  // Plain fields, not getters: publish() reads them for every port.
  readonly family: Family;
  readonly v6: boolean;
  readonly hostPrefix: number;

  constructor(
    readonly plan: Plan,
    readonly l: Layout,
    readonly v: Version,
  ) {
    this.family = plan.family;
    this.v6 = plan.family === 6;
    this.hostPrefix = this.v6 ? 128 : 32;
  }

  /** Whether this family has DOCKER-USER. */
  get dockerUser(): boolean {
    return !this.v6 || this.l.v6DockerUser(this.v);
  }

  start(): void {
    const { filter, nat, l } = this;
    filter.chain("DOCKER");
    if (l.forward === "docker-forward") {
      for (const c of ["DOCKER-BRIDGE", "DOCKER-CT", "DOCKER-FORWARD"]) filter.chain(c);
    }
    if (l.isolation) {
      filter.chain("DOCKER-ISOLATION-STAGE-1");
      filter.chain("DOCKER-ISOLATION-STAGE-2");
    }
    if (l.internalChain === "DOCKER-INTERNAL") filter.chain("DOCKER-INTERNAL");
    if (this.dockerUser) filter.chain("DOCKER-USER");
    nat.chain("DOCKER");

    if (l.forward === "ipset") {
      filter.append(
        "FORWARD",
        R.jump("DOCKER-USER"),
        R.jump("ACCEPT", { matches: [this.ipset(), R.ctstate("RELATED,ESTABLISHED")] }),
        R.jump("DOCKER-ISOLATION-STAGE-1"),
        R.jump("DOCKER", { matches: [this.ipset()] }),
      );
    } else if (l.forward === "docker-forward") {
      filter.append("FORWARD", R.jump("DOCKER-USER"), R.jump("DOCKER-FORWARD"));
      filter.append("DOCKER-FORWARD", R.jump("DOCKER-CT"), R.jump(l.isolation ? "DOCKER-ISOLATION-STAGE-1" : "DOCKER-INTERNAL"), R.jump("DOCKER-BRIDGE"));
    }
    if (l.isolationReturn) {
      filter.append("DOCKER-ISOLATION-STAGE-1", R.jump("RETURN"));
      filter.append("DOCKER-ISOLATION-STAGE-2", R.jump("RETURN"));
    }
    if (this.dockerUser && l.userReturn(this.v)) filter.append("DOCKER-USER", R.jump("RETURN"));
    if (l.forward === "inline" && this.dockerUser) filter.insert("FORWARD", R.jump("DOCKER-USER"));
    if (l.natJumpsAtStart) this.addNatJumps();
  }

  private ipset() {
    return { module: "set", options: [{ name: "match-set", value: `${IPSET[this.family]} dst` }] };
  }

  private addNatJumps(): void {
    if (this.natJumps) return;
    this.natJumps = true;
    const loopback = this.v6 ? "::1/128" : "127.0.0.0/8";
    this.nat.append("PREROUTING", R.jump("DOCKER", { matches: [R.addrtype("dst-type", "LOCAL")] }));
    this.nat.append("OUTPUT", R.jump("DOCKER", { dst: this.plan.userlandProxy ? { value: loopback, neg: true } : undefined, matches: [R.addrtype("dst-type", "LOCAL")] }));
  }

  /** Legacy: the FORWARD jumps are deleted and re-inserted at the top at each network. */
  private reinsertJumps(): void {
    if (this.l.forward !== "inline") return;
    const isolation = R.jump("DOCKER-ISOLATION-STAGE-1");
    this.filter.remove("FORWARD", isolation);
    this.filter.insert("FORWARD", isolation);
    if (this.dockerUser) {
      const user = R.jump("DOCKER-USER");
      this.filter.remove("FORWARD", user);
      this.filter.insert("FORWARD", user);
    }
  }

  /** The chain that holds a network's own accept/drop rules. */
  private get perBridgeChain(): string {
    return this.l.forward === "docker-forward" ? "DOCKER-FORWARD" : "FORWARD";
  }

  createNetwork(n: NetPlan): void {
    const { filter, nat, l } = this;
    const br = n.bridge;
    const sub = n.subnet[this.family];
    if (n.internal) {
      if (sub) {
        const strict = this.v6 && l.v6StrictInternal(this.v);
        filter.insert(
          l.internalChain,
          R.jump("DROP", { src: { value: sub, neg: true }, in: strict ? { value: br, neg: true } : undefined, out: { value: br } }),
          R.jump("DROP", { dst: { value: sub, neg: true }, in: { value: br }, out: strict ? { value: br, neg: true } : undefined }),
        );
        const rule = R.jump(n.icc ? "ACCEPT" : "DROP", { in: { value: br }, out: { value: br } });
        if (l.forward === "inline" && n.icc) filter.insert("FORWARD", rule);
        else filter.append(this.perBridgeChain, rule);
        this.reinsertJumps();
      }
      return;
    }

    if (l.isolation && (sub || (this.v6 && l.v6IsolationForAll))) {
      const stage1 = R.jump("DOCKER-ISOLATION-STAGE-2", { in: { value: br }, out: { value: br, neg: true } });
      if (l.isolationAppend) filter.append("DOCKER-ISOLATION-STAGE-1", stage1);
      else filter.insert("DOCKER-ISOLATION-STAGE-1", stage1);
      filter.insert("DOCKER-ISOLATION-STAGE-2", R.jump("DROP", { out: { value: br } }));
    }
    if (sub) {
      if (l.forward === "inline") {
        const forward: Rule[] = [
          R.jump("ACCEPT", { out: { value: br }, matches: [R.ctstate("RELATED,ESTABLISHED")] }),
          R.jump("DOCKER", { out: { value: br } }),
          R.jump("ACCEPT", { in: { value: br }, out: { value: br, neg: true } }),
        ];
        if (n.icc) forward.push(R.jump("ACCEPT", { in: { value: br }, out: { value: br } }));
        else filter.append("FORWARD", R.jump("DROP", { in: { value: br }, out: { value: br } }));
        filter.insert("FORWARD", ...forward);
      } else {
        if (l.forward === "docker-forward") {
          filter.append("DOCKER-CT", R.jump("ACCEPT", { out: { value: br }, matches: [R.ctstate("RELATED,ESTABLISHED")] }));
          filter.append("DOCKER-BRIDGE", R.jump("DOCKER", { out: { value: br } }));
        }
        if (n.icc) filter.append(this.perBridgeChain, R.jump("ACCEPT", { in: { value: br } }));
        else filter.append(this.perBridgeChain, R.jump("DROP", { in: { value: br }, out: { value: br } }), R.jump("ACCEPT", { in: { value: br }, out: { value: br, neg: true } }));
      }
      if (l.unpublishedDrop) filter.append("DOCKER", R.jump("DROP", { in: { value: br, neg: true }, out: { value: br } }));

      this.addNatJumps();
      if (n.masquerade) nat.insert("POSTROUTING", R.jump("MASQUERADE", { src: { value: sub }, out: { value: br, neg: true } }));
      if (!this.plan.userlandProxy) nat.insert("POSTROUTING", R.jump("MASQUERADE", { out: { value: br }, matches: [R.addrtype("src-type", "LOCAL")] }));
      if (n.masquerade && this.plan.userlandProxy && l.natReturn) nat.insert("DOCKER", R.jump("RETURN", { in: { value: br } }));
      this.reinsertJumps();
    }
  }


  /** dockerd 28.2+: one raw drop per container endpoint on a NAT network, at container start. */
  startContainer(endpoints: { ip: string; bridge: string }[]): void {
    if (this.l.rawDrops(this.v) !== "per-container") return;
    const P = this.plan.parts;
    for (const e of endpoints) this.raw.append("PREROUTING", R.jump("DROP", { dst: P.is(`${e.ip}/${this.hostPrefix}`), in: P.not(e.bridge) }));
  }

  publish(p: PortPlan): void {
    const { filter, nat, raw, l } = this;
    const P = this.plan.parts;
    const br = p.network.bridge;
    const cidr = P.is(p.containerHost);
    const comment = p.comment;
    const toContainer = P.dport(p.proto, p.containerPort);
    const accept = rule({ dst: cidr, in: P.not(br), out: P.is(br), proto: p.proto, matches: toContainer, target: "ACCEPT", comment });
    if (l.acceptAtTop) filter.insert("DOCKER", accept);
    else filter.append("DOCKER", accept);
    if (l.hairpinAlways || !this.plan.userlandProxy) {
      nat.append("POSTROUTING", rule({ src: cidr, dst: cidr, proto: p.proto, matches: toContainer, target: "MASQUERADE", comment }));
    }
    const to = this.v6 ? `[${p.containerIp}]:${p.containerPort}` : `${p.containerIp}:${p.containerPort}`;
    const hostIp = p.hostIp ? P.is(`${p.hostIp}/${this.hostPrefix}`) : undefined;
    nat.append("DOCKER", rule({
      src: this.v6 && l.dnatSkipLinkLocal ? P.not("fe80::/10") : undefined,
      dst: hostIp,
      in: this.plan.userlandProxy ? P.not(br) : undefined,
      proto: p.proto,
      matches: P.dport(p.proto, p.hostPort),
      target: "DNAT",
      targetOptions: [{ name: "to-destination", value: to }],
      comment,
    }));
    const rawMode = l.rawDrops(this.v);
    const loDrop = (): Rule => rule({ dst: hostIp, in: P.not("lo"), proto: p.proto, matches: P.dport(p.proto, p.hostPort), target: "DROP", comment });
    if (rawMode === "per-port") {
      if (p.loopback) raw.append("PREROUTING", loDrop());
      raw.append("PREROUTING", rule({ dst: cidr, in: P.not(br), proto: p.proto, matches: toContainer, target: "DROP", comment }));
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
    d.startContainer(c.endpoints);
    for (let k = 0; k < c.ports.length; k++) d.publish(c.ports[k]!);
  }
  return { raw: d.raw, filter: d.filter, nat: d.nat };
}
