/** Output formats: ferm.conf (both families), iptables-restore (IPv4) or ip6tables-restore (IPv6). */
export type Format = "ferm" | "iptables" | "ip6tables";
export const FORMATS: readonly Format[] = ["ferm", "iptables", "ip6tables"];
