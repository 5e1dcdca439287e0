// Synthetic policies for the benchmarks: N containers with three published ports each,
// twice as many allows as containers, and a host block.
export interface Size {
  containers: number;
  hostRules: number;
}

export function policyOf({ containers, hostRules }: Size): string {
  const lines: string[] = ["docker { version 20.10; iptables off; userland-proxy off; }"];
  lines.push("zone wan { interface eth0; }", "zone lan { interface eth1; from 192.168.0.0/16; }", "zone admin { from 203.0.113.0/24; }");
  const perNet = 250;
  const nets = Math.ceil(containers / perNet);
  for (let n = 0; n < nets; n++) lines.push(`network net${n} { bridge br-n${n}; subnet 10.${100 + Math.floor(n / 250)}.${n % 250}.0/24; }`);
  let port = 10000;
  for (let i = 0; i < containers; i++) {
    const n = Math.floor(i / perNet);
    const addr = `10.${100 + Math.floor(n / 250)}.${n % 250}.${(i % perNet) + 2}`;
    lines.push(`container c${i} { network net${n} ${addr}; publish ${port}:80, ${port + 1}:443, ${port + 2}:53/udp; }`);
    lines.push(`allow lan to c${i}:${port}, c${i}:${port + 1};`, `allow admin from 203.0.113.${i % 250}/32 to c${i}:${port + 2}/udp;`);
    port += 3;
  }
  const rules: string[] = [];
  for (let i = 0; i < hostRules; i++) rules.push(`  allow ${i % 2 ? "lan" : "admin"} tcp ${1000 + i};`);
  lines.push("host {", ...rules, "  allow any icmp;", "}");
  return lines.join("\n") + "\n";
}

/** A policy of about `statements` statements (containers + allows), for the parse+check benchmark. */
export function policyOfStatements(statements: number): string {
  return policyOf({ containers: Math.ceil(statements / 3), hostRules: 0 });
}
