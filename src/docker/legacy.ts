// dockerd 20.10 – 26.1 ("legacy" layout; the docker-layouts README's first section).
// The code replays what dockerd does, in its order: chains at start, then each network
// as it is created (rules inserted at the top, so newer networks end up above older
// ones), then each container's port bindings (appended).
import { R, TableBuilder, type Rule } from "../ir/ruleset.js";
import type { NetPlan, Plan, PortPlan } from "./plan.js";

export interface DockerTables {
  filter: TableBuilder;
  nat: TableBuilder;
}

export interface LegacyOptions {
  /** ip6tables: DOCKER-USER exists from 23.0 on (20.10 had none). */
  dockerUser: boolean;
  /** ip6tables internal-network drops gained `! -i BR` / `! -o BR` in 23.0. */
  internalV6Strict: boolean;
}

export function legacyOptions(plan: Plan): LegacyOptions {
  const newer = plan.version.major > 20;
  return { dockerUser: plan.family === 4 || newer, internalV6Strict: plan.family === 6 && newer };
}

export function legacyTables(plan: Plan, opts: LegacyOptions = legacyOptions(plan)): DockerTables {
  const filter = new TableBuilder("filter");
  const nat = new TableBuilder("nat");
  const loopback = plan.family === 4 ? "127.0.0.0/8" : "::1/128";

  // Daemon start.
  filter.chain("DOCKER");
  filter.chain("DOCKER-ISOLATION-STAGE-1");
  filter.chain("DOCKER-ISOLATION-STAGE-2");
  nat.chain("DOCKER");
  // The nat jumps come with the first NAT-able network of the family (docker0 for IPv4;
  // an IPv6 setup with only internal IPv6 networks has none).
  if (plan.networks.some((n) => !n.internal && n.subnet[plan.family])) {
    nat.append("PREROUTING", R.jump("DOCKER", { matches: [R.addrtype("dst-type", "LOCAL")] }));
    nat.append(
      "OUTPUT",
      R.jump("DOCKER", { dst: plan.userlandProxy ? { value: loopback, neg: true } : undefined, matches: [R.addrtype("dst-type", "LOCAL")] }),
    );
  }
  filter.append("DOCKER-ISOLATION-STAGE-1", R.jump("RETURN"));
  filter.append("DOCKER-ISOLATION-STAGE-2", R.jump("RETURN"));
  if (opts.dockerUser) filter.append("DOCKER-USER", R.jump("RETURN"));

  for (const n of plan.networks) createNetwork(plan, opts, filter, nat, n);
  for (const port of plan.ports) publish(plan, filter, nat, port);
  return { filter, nat };
}

function reinsertJumps(filter: TableBuilder, opts: LegacyOptions): void {
  const isolation = R.jump("DOCKER-ISOLATION-STAGE-1");
  filter.remove("FORWARD", isolation);
  filter.insert("FORWARD", isolation);
  if (opts.dockerUser) {
    const user = R.jump("DOCKER-USER");
    filter.remove("FORWARD", user);
    filter.insert("FORWARD", user);
  }
}

function createNetwork(plan: Plan, opts: LegacyOptions, filter: TableBuilder, nat: TableBuilder, n: NetPlan): void {
  const br = n.bridge;
  const sub = n.subnet[plan.family];
  if (n.internal) {
    if (sub) {
      const strict = opts.internalV6Strict;
      filter.insert(
        "DOCKER-ISOLATION-STAGE-1",
        R.jump("DROP", { src: { value: sub, neg: true }, in: strict ? { value: br, neg: true } : undefined, out: { value: br } }),
        R.jump("DROP", { dst: { value: sub, neg: true }, in: { value: br }, out: strict ? { value: br, neg: true } : undefined }),
      );
      if (n.icc) filter.insert("FORWARD", R.jump("ACCEPT", { in: { value: br }, out: { value: br } }));
      else filter.append("FORWARD", R.jump("DROP", { in: { value: br }, out: { value: br } }));
    }
    reinsertJumps(filter, opts);
    return;
  }

  // Isolation rules exist in both families for every non-internal network.
  filter.insert("DOCKER-ISOLATION-STAGE-1", R.jump("DOCKER-ISOLATION-STAGE-2", { in: { value: br }, out: { value: br, neg: true } }));
  filter.insert("DOCKER-ISOLATION-STAGE-2", R.jump("DROP", { out: { value: br } }));
  if (sub) {
    const forward: Rule[] = [
      R.jump("ACCEPT", { out: { value: br }, matches: [R.ctstate("RELATED,ESTABLISHED")] }),
      R.jump("DOCKER", { out: { value: br } }),
      R.jump("ACCEPT", { in: { value: br }, out: { value: br, neg: true } }),
    ];
    if (n.icc) forward.push(R.jump("ACCEPT", { in: { value: br }, out: { value: br } }));
    else filter.append("FORWARD", R.jump("DROP", { in: { value: br }, out: { value: br } }));
    filter.insert("FORWARD", ...forward);

    if (n.masquerade) nat.insert("POSTROUTING", R.jump("MASQUERADE", { src: { value: sub }, out: { value: br, neg: true } }));
    if (!plan.userlandProxy) nat.insert("POSTROUTING", R.jump("MASQUERADE", { out: { value: br }, matches: [R.addrtype("src-type", "LOCAL")] }));
    if (n.masquerade && plan.userlandProxy) nat.insert("DOCKER", R.jump("RETURN", { in: { value: br } }));
  }
  reinsertJumps(filter, opts);
}

function hostPrefix(plan: Plan): number {
  return plan.family === 4 ? 32 : 128;
}

function publish(plan: Plan, filter: TableBuilder, nat: TableBuilder, p: PortPlan): void {
  const br = p.network.bridge;
  const cidr = `${p.containerIp}/${hostPrefix(plan)}`;
  const comment = portComment(p);
  filter.append("DOCKER", {
    dst: { value: cidr },
    in: { value: br, neg: true },
    out: { value: br },
    proto: p.proto,
    matches: [R.tcpudp(p.proto, p.containerPort)],
    target: "ACCEPT",
    comment,
  });
  nat.append("POSTROUTING", {
    src: { value: cidr },
    dst: { value: cidr },
    proto: p.proto,
    matches: [R.tcpudp(p.proto, p.containerPort)],
    target: "MASQUERADE",
    comment,
  });
  const to = plan.family === 4 ? `${p.containerIp}:${p.containerPort}` : `[${p.containerIp}]:${p.containerPort}`;
  nat.append("DOCKER", {
    dst: p.hostIp ? { value: `${p.hostIp}/${hostPrefix(plan)}` } : undefined,
    in: plan.userlandProxy ? { value: br, neg: true } : undefined,
    proto: p.proto,
    matches: [R.tcpudp(p.proto, p.hostPort)],
    target: "DNAT",
    targetOptions: [{ name: "to-destination", value: to }],
    comment,
  });
}

export function portComment(p: PortPlan): string {
  const host = p.hostIp ? (p.family === 6 ? `[${p.hostIp}]:` : `${p.hostIp}:`) : "";
  return `${p.container.name}: ${host}${p.hostPort}/${p.proto} -> ${p.family === 6 ? `[${p.containerIp}]` : p.containerIp}:${p.containerPort}`;
}
