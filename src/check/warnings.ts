// Things that are legal but probably not what the user wants (exit 0, printed as warnings).
import type { Check } from "./context.js";
import { bindAddress, bindings, isLoopback, isUnspecified, publishingNetwork } from "../model/derive.js";
import { closest, startOfFile } from "../diagnostics.js";
import { knownRelease, layoutFor, layouts, NEWEST } from "../docker/layouts.js";
import { formatIp, type PortRange, type Proto, type TargetSpec } from "../model/values.js";
import type { Located } from "../model/types.js";
import { dockerWrites } from "../generate.js";

export const unallowedPorts: Check = (ctx) => {
  const d = ctx.policy.docker;
  if (d.published !== "closed") return;
  const targets = targetsByContainer(ctx);
  // The help names a zone the policy has (the first declared), or says ZONE.
  const zone = ctx.policy.zones.find((z) => z.name !== "any")?.name;
  const containers = ctx.policy.containers;
  const unreached: { c: (typeof containers)[number]; p: (typeof containers)[number]["publishes"][number] }[] = [];
  for (let i = 0; i < containers.length; i++) {
    const c = containers[i]!;
    const n = publishingNetwork(c, ctx.networks);
    if (!n) continue;
    const mine = targets.get(c.name) ?? [];
    for (let k = 0; k < c.publishes.length; k++) {
      const p = c.publishes[k]!;
      const host = bindAddress(ctx.policy, p, n);
      if (host && isLoopback(host)) continue; // host-only by design
      const bs = bindings(p);
      let covered = false;
      for (let j = 0; j < bs.length && !covered; j++) {
        const b = bs[j]!;
        for (let t = 0; t < mine.length && !covered; t++) covered = mine[t]!.ports.from <= b.hostPort && b.hostPort <= mine[t]!.ports.to && (!mine[t]!.proto || mine[t]!.proto === b.proto);
      }
      if (!covered) unreached.push({ c, p });
    }
  }
  // A few are said one by one; many (a host of two thousand containers) in one warning, with a count and the first few.
  const name = (u: (typeof unreached)[number]) => `${u.c.name}:${u.p.spec.host.from === u.p.spec.host.to ? u.p.spec.host.from : `${u.p.spec.host.from}-${u.p.spec.host.to}`}/${u.p.spec.proto}`;
  const help = (u: (typeof unreached)[number]) =>
    `add e.g. 'allow ${zone ?? "ZONE"} to ${u.c.name}:${u.p.spec.host.from}${u.p.spec.proto === "udp" ? "/udp" : ""};'${zone ? "" : " (ZONE: any, or a zone you declare)"}, or set 'published open;' in the docker block for Docker's behaviour`;
  if (unreached.length <= GROUP_ABOVE) {
    for (const u of unreached) ctx.problems.warning("unreachable-port", u.p.span, `no allow names ${name(u)}, so it is unreachable from outside the host (published closed)`, { help: help(u) });
    return;
  }
  const first = unreached[0]!;
  ctx.problems.warning("unreachable-port", first.p.span, `no allow names ${unreached.length} published ports, so they are unreachable from outside the host (published closed): ${unreached.slice(0, 3).map(name).join(", ")} and ${unreached.length - 3} more`, { help: help(first) });
};

/**
 * A port the host block lets in that a container publishes too (a fuzzer's policy: the host's
 * tcp 8080 and a container's 10.200.0.1:8080): Docker holds it (docker-proxy, or dockerd's own
 * socket, whatever its iptables setting), so the host's service cannot listen on it there, and
 * what comes to it is DNATed to the container. Said once per port range of the host block.
 */
export const hostPortsPublished: Check = (ctx) => {
  const host = ctx.policy.host;
  if (!host) return;
  const wanted: { proto: Proto; range: Located<PortRange> }[] = [];
  for (const r of host.rules) if (r.proto.value === "tcp" || r.proto.value === "udp") for (const range of r.ports) wanted.push({ proto: r.proto.value, range });
  if (!wanted.length) return;
  const said = new Set<Located<PortRange>>();
  const containers = ctx.policy.containers;
  for (let i = 0; i < containers.length && said.size < wanted.length; i++) {
    const c = containers[i]!;
    const n = publishingNetwork(c, ctx.networks);
    if (!n) continue;
    for (const p of c.publishes) {
      const s = p.spec;
      for (const w of wanted) {
        if (said.has(w.range) || w.proto !== s.proto || w.range.value.to < s.host.from || s.host.to < w.range.value.from) continue;
        said.add(w.range);
        const port = Math.max(w.range.value.from, s.host.from);
        const at = bindAddress(ctx.policy, p, n);
        const one = at && !isUnspecified(at) ? formatIp(at) : undefined;
        const there = one ? " there" : "";
        ctx.problems.warning("host-port-published", w.range.span, `${s.proto} ${port} is the host's own in the host block, and container '${c.name}' publishes it ${one ? `on ${one}` : "on every address of the host"}: Docker holds that port${there} (docker-proxy, or dockerd's own socket), so no service of the host's can listen on it${there}, and what comes to it${there} goes to the container`, {
          help: `publish '${c.name}' on another host port, or give the host's service another port`,
          notes: [{ message: "published here", span: p.span }],
        });
      }
    }
  }
};

/** Up to this many ports no allow names are said one by one. */
const GROUP_ABOVE = 5;

/**
 * Every allow target, by container name. A target that names no container (a typo, reported
 * where it is written) counts for the container it was probably meant for, so that one mistake
 * is not also a warning about the ports it meant.
 */
function targetsByContainer(ctx: Parameters<Check>[0]): Map<string, TargetSpec[]> {
  const m = new Map<string, TargetSpec[]>();
  const add = (t: TargetSpec) => {
    const list = m.get(t.container);
    if (list) list.push(t);
    else m.set(t.container, [t]);
  };
  const allows = ctx.policy.allows;
  for (let i = 0; i < allows.length; i++) {
    const targets = allows[i]!.targets;
    for (let k = 0; k < targets.length; k++) add(targets[k]!.value);
    const written = allows[i]!.written;
    for (let k = 0; k < written.length; k++) {
      const w = written[k]!.value;
      if (w.service || ctx.containers.has(w.name)) continue;
      const meant = closest(w.name, ctx.containers.keys());
      if (meant) add({ container: meant, ports: w.ports ?? { from: 1, to: 65535 }, proto: w.proto });
    }
  }
  return m;
}

export const daemonSettings: Check = (ctx) => {
  const d = ctx.policy.docker;
  if (!d.iptables && d.userlandProxy) {
    const at = d.spans["userland-proxy"] ?? d.spans["iptables"] ?? d.span ?? startOfFile;
    ctx.problems.warning("proxy-with-iptables-off", at, `with iptables off and userland-proxy on, dockerd still runs docker-proxy on 0.0.0.0 and :: for every published port`, {
      help: `dockwall guards that path in INPUT too (chain DOCKWALL-PROXY), so 'allow' and 'published' hold for it; but a proxied connection reaches the container from the bridge's address, not the client's. For real client addresses set "userland-proxy": false in daemon.json and 'userland-proxy off;' here` +
        (ctx.policy.host
          ? ""
          : `. Without a host block, a port that a new container publishes answers everyone through docker-proxy until 'dockwall watch' has added its rules (measured: from 70-80 ms to 390-460 ms after 'docker run' began); a host block closes that window (INPUT's policy is DROP)`),
    });
  }
  // No IPv6 path to a published port at all: no IPv6 DNAT (ip6tables off) and no docker-proxy on :: (a review: every IPv6
  // allow of such a policy was a cell "closed, the policy allows it" that verify reported for good).
  if (!d.userlandProxy && !dockerWrites(ctx.policy, 6) && ctx.policy.allows.length > 0 && ctx.policy.networks.some((n) => n.subnets.some((s) => s.value.family === 6)) && ctx.policy.containers.some((c) => c.publishes.length > 0)) {
    const at = d.spans["userland-proxy"] ?? d.spans["ip6tables"] ?? d.span ?? startOfFile;
    ctx.problems.warning("unpublished-family", at, `with ip6tables off and userland-proxy off, no published port is reachable over IPv6: Docker writes no IPv6 DNAT, and no docker-proxy relays it`, {
      help: `the allows hold for IPv4 only (matrix and verify count no IPv6 path for them). To publish over IPv6 too, set "ip6tables": true in daemon.json and 'ip6tables on;' here, or turn userland-proxy on`,
    });
  }
  if (d.versionAuto && !d.version) {
    // With facts that give no version, the facts stage has said so already.
    if (!ctx.policy.withFacts) {
      ctx.problems.error("needs-facts", d.versionAuto, `'version auto' takes the release from the daemon, but no facts were read`, {
        help: `compile with --docker (ask the daemon) or --facts FILE, or write the release (e.g. version 20.10;)`,
      });
    }
  } else if (!d.version) {
    ctx.problems.warning("no-version", d.span ?? startOfFile, `no Docker version given; assuming the newest supported (${NEWEST.text})`, {
      help: `write the dockerd release this host runs, e.g. docker { version 20.10; } ('dockerd --version' tells)`,
    });
  } else {
    // The supported range is the layouts' (src/docker/layouts.ts): one place says it.
    const v = d.version.value;
    const known = knownRelease(v);
    if (known && "gap" in known) {
      const first = (r: { major: number; minor?: number }) => `${r.major}.${r.major === 20 ? 10 : 0}`;
      ctx.problems.error("bad-version", d.version.span, `there was no Docker ${v.major}: after ${first(known.before)} came ${first(known.after)}`, {
        help: d.version.span.option
          ? `give the release this host runs ('dockerd --version' tells), e.g. --docker-version ${first(known.before)} or --docker-version ${first(known.after)}`
          : `write the release this host runs ('dockerd --version' tells), e.g. version ${first(known.before)}; or version ${first(known.after)};`,
      });
    } else if (v.major < 20 || (v.major === 20 && v.minor !== undefined && v.minor < 10) || !layoutFor(v)) {
      ctx.problems.error("bad-version", d.version.span, `Docker ${v.text} is not supported`, {
        help: `dockwall knows the chain layouts of dockerd ${layouts.map((l) => l.covers).join(", ")}`,
      });
    } else if (known && "newer" in known) {
      const r = known.newer.text;
      ctx.problems.warning("newer-version", d.version.span, `Docker ${v.text} is newer than the newest ${known.newer.major === NEWEST.major ? "" : `${known.newer.major}.x `}release dockwall knows (${r}); reproducing ${r}'s chains`, {
        help: `check the release with 'dockerd --version'; if this dockerd writes other chains than ${r}, a newer dockwall may know them`,
      });
    }
  }
};

/**
 * A zone interface with `*` in it: iptables (`-i eth*`) and nftables (`iifname "eth\\*"`) match
 * that character itself, which no interface name has in practice; the wildcard is a trailing `+`.
 */
export const literalWildcards: Check = (ctx) => {
  for (const z of ctx.policy.zones) {
    for (const i of z.interfaces) {
      const at = i.value.indexOf("*");
      if (at < 0) continue;
      const prefix = i.value.slice(0, at);
      ctx.problems.warning("literal-wildcard", { ...i.span, col: i.span.col + at, endLine: i.span.line, endCol: i.span.col + at + 1 }, `'*' in interface name '${i.value}' is the character itself, not a wildcard: the zone matches only an interface called exactly that`, {
        help: prefix ? `for every interface whose name starts with '${prefix}', write ${prefix}+` : `name the interface, or end a name with + for every interface that starts with it`,
      });
    }
  }
};
