// Things that are legal but probably not what the user wants (exit 0, printed as warnings).
import type { Check } from "./context.js";
import { bindAddress, bindings, isLoopback, publishingNetwork } from "../model/derive.js";
import { startOfFile } from "../diagnostics.js";
import { NEWEST } from "../docker/layouts.js";
import type { TargetSpec } from "../model/values.js";

export const unallowedPorts: Check = (ctx) => {
  const d = ctx.policy.docker;
  if (d.published !== "closed") return;
  const targets = targetsByContainer(ctx);
  for (const c of ctx.policy.containers) {
    const n = publishingNetwork(c, ctx.networks);
    if (!n) continue;
    const mine = targets.get(c.name) ?? [];
    for (const p of c.publishes) {
      const host = bindAddress(ctx.policy, p, n);
      if (host && isLoopback(host)) continue; // host-only by design
      const covered = bindings(p).some((b) => mine.some((t) => t.ports.from <= b.hostPort && b.hostPort <= t.ports.to && (!t.proto || t.proto === b.proto)));
      if (!covered) {
        ctx.problems.warning("unreachable-port", p.span, `no allow names ${c.name}:${p.spec.host.from === p.spec.host.to ? p.spec.host.from : `${p.spec.host.from}-${p.spec.host.to}`}/${p.spec.proto}, so it is unreachable from outside the host (published closed)`, {
          help: `add e.g. 'allow lan to ${c.name}:${p.spec.host.from}${p.spec.proto === "udp" ? "/udp" : ""};', or set 'published open;' in the docker block for Docker's behaviour`,
        });
      }
    }
  }
};

/** Every allow target, by container name. */
function targetsByContainer(ctx: Parameters<Check>[0]): Map<string, TargetSpec[]> {
  const m = new Map<string, TargetSpec[]>();
  for (const a of ctx.policy.allows) for (const t of a.targets) {
    const list = m.get(t.value.container);
    if (list) list.push(t.value);
    else m.set(t.value.container, [t.value]);
  }
  return m;
}

export const daemonSettings: Check = (ctx) => {
  const d = ctx.policy.docker;
  if (!d.iptables && d.userlandProxy) {
    const at = d.spans["userland-proxy"] ?? d.spans["iptables"] ?? d.span ?? startOfFile;
    ctx.problems.warning("proxy-with-iptables-off", at, `with iptables off and userland-proxy on, dockerd still runs docker-proxy on 0.0.0.0 and :: for every published port`, {
      help: `dockwall guards that path in INPUT too (chain DOCKWALL-PROXY), so 'allow' and 'published' hold for it; but a proxied connection reaches the container from the bridge's address, not the client's. For real client addresses set "userland-proxy": false in daemon.json and 'userland-proxy off;' here`,
    });
  }
  if (!d.version) {
    ctx.problems.warning("no-version", d.span ?? startOfFile, `no Docker version given; assuming the newest supported (${NEWEST.text})`, {
      help: `write the dockerd release this host runs, e.g. docker { version 20.10; } ('dockerd --version' tells)`,
    });
  } else {
    const v = d.version.value;
    if (v.major < 20 || (v.major === 20 && v.minor !== undefined && v.minor < 10) || v.major > 29) {
      ctx.problems.error("bad-version", d.version.span, `Docker ${v.text} is not supported`, {
        help: `dockwall knows the chain layouts of dockerd 20.10 to 29`,
      });
    }
  }
};
