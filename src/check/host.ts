// What the host must have for dockwall's rules to do what the policy says when dockerd writes
// none of its own (`iptables off`): dockerd then leaves it to whoever writes the rules, and its
// own checks for that mode become `dockwall check`'s. Held against the sysctls of the host that
// check runs on (the CLI reads them; none read: nothing said). Pure.
//  - IP forwarding: with the --format nft file, Docker 29's nftables backend never turns it on,
//    and dockerd (firewall-backend nftables) fails to start when it is off; without it Docker's
//    tables forward nothing.
//  - br_netfilter: a network with icc off drops container-to-container traffic only where
//    bridged frames go through netfilter; dockerd loads the module only when it writes rules.
import type { Problems } from "../diagnostics.js";
import { startOfFile } from "../diagnostics.js";
import type { Format } from "../formats.js";
import type { Policy } from "../model/types.js";

export interface HostSysctls {
  /** net.ipv4.ip_forward */
  ipForward?: boolean;
  /** net.ipv6.conf.all.forwarding */
  ip6Forward?: boolean;
  /** net.bridge.bridge-nf-call-iptables = 1: bridged IPv4 goes through the rules (false: br_netfilter not loaded, or the sysctl 0). */
  brNetfilter?: boolean;
  /** The same for IPv6: net.bridge.bridge-nf-call-ip6tables = 1. */
  brNetfilter6?: boolean;
  /** br_netfilter is loaded (its sysctls are there). */
  brLoaded?: boolean;
}

export function checkHost(p: Policy, format: Format, host: HostSysctls, problems: Problems): void {
  if (p.docker.iptables) return;
  const at = p.docker.spans.iptables ?? p.docker.span ?? startOfFile;
  if (format === "nft") {
    const v6 = p.networks.some((n) => n.subnets.some((s) => s.value.family === 6));
    const off = [host.ipForward === false ? "net.ipv4.ip_forward" : undefined, v6 && host.ip6Forward === false ? "net.ipv6.conf.all.forwarding" : undefined].filter((x): x is string => x !== undefined);
    if (off.length) {
      problems.warning("host-prerequisite", at, `IP forwarding is off on this host (${off.map((k) => `${k} = 0`).join(", ")}): Docker's tables in the --format nft file forward nothing to or from the containers, and dockerd 29 with its nftables backend does not start while it is off`, {
        help: `turn it on before dockerd starts, and at every boot: ${off.map((k) => `sysctl -w ${k}=1`).join("; ")}, and the same in /etc/sysctl.d/99-docker.conf`,
        notes: [{ message: `dockerd must run with "iptables": false and "ip6tables": false: it then writes no table of its own, and this file's are the only ones` }],
      });
    }
  }
  for (const n of p.networks.filter((x) => !x.icc && !x.internal)) {
    const v6 = n.subnets.some((x) => x.value.family === 6);
    const off = [host.brNetfilter === false ? "net.bridge.bridge-nf-call-iptables" : undefined, v6 && host.brNetfilter6 === false ? "net.bridge.bridge-nf-call-ip6tables" : undefined].filter((x): x is string => x !== undefined);
    if (!off.length) continue;
    const why = host.brLoaded === false ? "br_netfilter is not loaded on this host" : `bridged traffic does not go through the rules on this host (${off.map((k) => `${k} = 0`).join(", ")})`;
    problems.warning("host-prerequisite", n.implicit ? (p.docker.spans.icc ?? at) : n.span, `network '${n.name}' has icc off, but ${why}: its containers reach each other through bridge ${n.bridge.value} without passing any rule (dockerd sees to it only when it writes rules itself)`, {
      help: host.brLoaded === false ? `load it now and at every boot: modprobe br_netfilter, and a line 'br_netfilter' in /etc/modules-load.d/br_netfilter.conf` : `set it now and at every boot: ${off.map((k) => `sysctl -w ${k}=1`).join("; ")}, and the same in /etc/sysctl.d/`,
    });
  }
}
