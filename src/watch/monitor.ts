// What changed in the kernel's tables, from `nft monitor` or `xtables-monitor --event`
// (nf_tables hosts): one line per rule, chain or table changed (`add rule ip filter
// DOCKER-USER …`, `EVENT: -4 -t filter -A DOCKER-USER …`), then one when the transaction commits
// (`# new generation 7 by process 21084 (iptables-restor)`, `NEWGEN: GENID=6 PID=21084
// NAME=iptables-restor`). `nft monitor` is preferred: xtables-monitor 1.8.9 stops at the first
// IPv6 rule with an icmp6 match it cannot parse (the neighbour discovery rules of a host block).
// nftables' own tables (inet firewalld, Docker 29's docker-bridges) are not iptables': they wake
// nothing. A transaction that touches only other
// tools' own chains (fail2ban's f2b-*) is none of dockwall's business: it wakes nothing, so a
// tool that bans addresses all day causes no reconcile. Anything else (a built-in chain, Docker's
// or dockwall's chains, a table made or a policy set) is said once it commits. Pure.
import { isForeignChain } from "../apply/merge.js";

/** The tables iptables-nft writes (in nftables families ip and ip6). */
const IPTABLES_TABLES = new Set(["filter", "nat", "mangle", "raw", "security"]);

export class MonitorParser {
  private changes = new Map<string, { added: number; removed: number; other: number }>();
  /** The program that committed the transaction feed() last said (its pid). */
  committedBy?: number;

  /** watch -f nft: the nftables tables dockwall loads (`inet dockwall`, `ip docker-bridges`): changes to them, and only them, matter. */
  constructor(private readonly tables?: readonly string[]) {}

  /** One line of nft monitor's or xtables-monitor's output; what changed (to say in the log) when a transaction that matters has committed. */
  feed(line: string): string | undefined {
    const l = line.trim();
    let m: RegExpExecArray | null;
    // nft monitor goes on after its socket overflowed: whatever changed meanwhile is not known, whoever changed it.
    if (/^# ERROR: We lost some netlink events/.test(l)) {
      this.changes.clear();
      this.committedBy = undefined;
      return "the kernel's change reports were cut (nft monitor lost netlink events)";
    }
    if (this.tables && !/^(NEWGEN: |# new generation )/.test(l)) {
      if ((m = /^(add|insert|delete|replace|create|flush|destroy) (rule|chain|table|set|map|element) (\S+) (\S+)(?: (\S+))?/.exec(l)) && this.tables.includes(`${m[3]} ${m[4]}`)) {
        const [, op, what, family, table, chain] = m;
        if (what === "table") this.count(`${family} ${table} (table ${op === "add" ? "made" : op === "delete" || op === "destroy" ? "deleted" : "flushed"})`, "other");
        else this.count(`${family} ${table} ${chain ?? ""}`.trimEnd(), what === "rule" && (op === "add" || op === "insert") ? "added" : what === "rule" && op === "delete" ? "removed" : "other");
      }
      return undefined;
    }
    if ((m = /^NEWGEN: GENID=\d+ PID=(\d+) NAME=(\S+)/.exec(l) ?? /^# new generation \d+ by process (\d+) \((.*)\)$/.exec(l))) {
      if (this.changes.size === 0) return undefined;
      const what = [...this.changes].map(([k, c]) => `${k}${c.added ? ` +${c.added}` : ""}${c.removed ? ` -${c.removed}` : ""}${!c.added && !c.removed && !k.endsWith(")") ? " changed" : ""}`).join(", ");
      this.changes.clear();
      this.committedBy = Number(m[1]);
      return `${what} (by ${m[2]}, pid ${m[1]})`;
    }
    if ((m = /^EVENT: -([46]) -t (\S+) -([ADINXFPRZE]) (\S+)/.exec(l))) {
      const [, family, table, op, chain] = m;
      if (isForeignChain(table!, chain!)) return undefined;
      this.count(`ip${family === "6" ? "6" : ""} ${table} ${chain}`, op === "A" || op === "I" ? "added" : op === "D" ? "removed" : "other");
      return undefined;
    }
    // nft monitor: iptables' tables in families ip and ip6 only.
    if ((m = /^(add|insert|delete|replace|create|flush) (rule|chain|table) (ip6?) (\S+)(?: (\S+))?/.exec(l))) {
      const [, op, what, family, table, chain] = m;
      if (!IPTABLES_TABLES.has(table!)) return undefined;
      if (what === "table") this.count(`${family} ${table} (table ${op === "add" ? "made" : op === "delete" ? "deleted" : "flushed"})`, "other");
      else if (chain && !isForeignChain(table!, chain)) this.count(`${family} ${table} ${chain}`, what === "rule" && (op === "add" || op === "insert") ? "added" : what === "rule" && op === "delete" ? "removed" : "other");
      return undefined;
    }
    // nf_tables' own words: a table made or deleted, a base chain's policy.
    if ((m = /^EVENT: (?:# )?nft: (?:(NEW|DEL) table: table (\S+) (ip6?)|(ip6?) (\S+) (\S+) )/.exec(l))) {
      const key = m[1] ? `${m[3]} ${m[2]} (table ${m[1] === "NEW" ? "made" : "deleted"})` : `${m[4]} ${m[5]} ${m[6]}`;
      const chain = m[6];
      if (chain && isForeignChain(m[5]!, chain)) return undefined;
      this.count(key, "other");
    }
    return undefined;
  }

  private count(key: string, kind: "added" | "removed" | "other"): void {
    let c = this.changes.get(key);
    if (!c) this.changes.set(key, (c = { added: 0, removed: 0, other: 0 }));
    c[kind]++;
  }
}
