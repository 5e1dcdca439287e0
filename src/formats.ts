/** Output formats: ferm.conf (both families), iptables-restore (IPv4), ip6tables-restore (IPv6), or nft -f (dockwall's own table, both families). */
export type Format = "ferm" | "iptables" | "ip6tables" | "nft";
export const FORMATS: readonly Format[] = ["ferm", "iptables", "ip6tables", "nft"];
