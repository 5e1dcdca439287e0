// `dockwall apply --format nft`: the --format nft file loaded with `nft -f` (one transaction:
// it replaces the tables it writes, dockwall's `inet dockwall` and with `iptables off` Docker's
// `ip`/`ip6 docker-bridges`, and nothing else), with what apply does for iptables around it:
//  - what is loaded now (`nft list table` of each), compared with the file (live/nftdiff.ts);
//  - the lockout guard across every base chain on the input hook, in every table, since in
//    nftables a drop in any of them is final: dockwall's (the compiled rules the file
//    translates), the iptables rules loaded now (iptables-save), and any other table's (an
//    empty chain is read by its policy; one with rules dockwall cannot read is "cannot tell");
//  - `nft -c` before the load; the tables as they were kept for rollback (rollback.json);
//  - --confirm, `confirm` and `rollback` as for iptables (apply/command.ts). A rollback loads
//    the previous policy's nft file compiled with Docker's facts now, or without one puts back
//    dockwall's table as it was and deletes the tables that were not there; never Docker's
//    tables from the snapshot (a stale DNAT would reach whichever container has the address now).
// The decisions are pure functions here; the command drives them over SystemIo.
import { Problems, startOfFile, type Diagnostic } from "../diagnostics.js";
import type { Ruleset } from "../ir/ruleset.js";
import type { Policy } from "../model/types.js";
import type { Packet } from "../analysis/evaluate.js";
import { lockout } from "./guard.js";

/** The tables a --format nft file replaces, as `FAMILY NAME`, in the file's order. */
export function tablesOfFile(text: string): string[] {
  return [...new Set([...text.matchAll(/^table (\S+ \S+) \{$/gm)].map((m) => m[1]!))];
}

/** Docker's own tables (with `iptables off` the file writes them): never put back from a snapshot. */
export const isDockerTable = (t: string) => / docker-bridges$/.test(t);

/**
 * What puts the tables back as they were before an apply, as one `nft -f` transaction: each one
 * that was there replaced by its listing then (`listed`), each one that was not deleted
 * (`table X` first, so that the delete never fails). Docker's tables are only deleted: what
 * they held was for the containers of then.
 */
export function restoreText(tables: string[], listed: Record<string, string | null>): string {
  const out: string[] = [];
  for (const t of tables) {
    out.push(`table ${t}`, `delete table ${t}`);
    const was = listed[t];
    if (was && !isDockerTable(t)) out.push(was.trimEnd());
  }
  return out.join("\n") + "\n";
}

/** The same, for a rollback to a policy: its file, after deleting what the rolled-back apply made that it does not write and that was not there before. */
export function rollbackToText(file: string, applied: string[], listed: Record<string, string | null>): string {
  const writes = new Set(tablesOfFile(file));
  const extra = applied.filter((t) => !writes.has(t) && !listed[t]).flatMap((t) => [`table ${t}`, `delete table ${t}`]);
  return (extra.length ? extra.join("\n") + "\n" : "") + file;
}

/** A base chain on the input hook, as `nft -j list ruleset` shows it. */
export interface InputChain {
  family: string;
  table: string;
  name: string;
  policy: string;
  priority: number;
  rules: number;
}

/** iptables-nft's tables (read through iptables-save). */
const IPTABLES_NFT = new Set(["filter", "nat", "mangle", "raw", "security"]);

/** Every base chain on the input hook, in every table, from `nft -j list ruleset`, but iptables-nft's and those in `skip`. */
export function inputChains(json: string, skip: string[]): InputChain[] {
  type Obj = { chain?: { family: string; table: string; name: string; hook?: string; policy?: string; prio?: number }; rule?: { family: string; table: string; chain: string } };
  const items = (JSON.parse(json) as { nftables?: Obj[] }).nftables ?? [];
  const rules = new Map<string, number>();
  for (const { rule: r } of items) if (r) rules.set(`${r.family} ${r.table} ${r.chain}`, (rules.get(`${r.family} ${r.table} ${r.chain}`) ?? 0) + 1);
  const out: InputChain[] = [];
  for (const { chain: c } of items) {
    if (!c || c.hook !== "input") continue;
    if ((c.family === "ip" || c.family === "ip6") && IPTABLES_NFT.has(c.table)) continue;
    if (skip.includes(`${c.family} ${c.table}`)) continue;
    out.push({ family: c.family, table: c.table, name: c.name, policy: c.policy ?? "accept", priority: c.prio ?? 0, rules: rules.get(`${c.family} ${c.table} ${c.name}`) ?? 0 });
  }
  return out;
}

/**
 * The lockout guard for --format nft: undefined when the session's next connection (`pk`) would
 * pass every base chain on the input hook once the file is loaded, as far as dockwall can read
 * them. A drop in any table is final, so each must let it through:
 *  - `ours`: the compiled rules the file translates (its input chain is their INPUT);
 *  - `iptables`: the iptables rules loaded now (iptables-nft's or legacy tables; they stay);
 *  - `others`: other tables' input chains, read when they have no rules (by their policy).
 * Chains of other tables with rules are not read (unread): the file does not change them, and
 * what they decide does not depend on it (each base chain decides on its own), so they cannot
 * make this apply lock anyone out; apply names them.
 */
export function nftLockout(p: Policy, ours: Ruleset, iptables: Ruleset | undefined, others: InputChain[], pk: Packet): Diagnostic | undefined {
  const own = lockout(p, ours, pk);
  if (own) return own;
  const loaded = iptables ? lockout(p, iptables, pk) : undefined;
  if (loaded) {
    loaded.message = loaded.message.replace("the new rules would not accept", "the iptables rules loaded now (which the nft file leaves as they are) would not accept");
    loaded.notes.push({ message: "in nftables a drop in any table is final: dockwall's table accepting it is not enough" });
    return loaded;
  }
  const session = `${pk.src} → ${pk.dst.includes(":") ? `[${pk.dst}]` : pk.dst}:${pk.dport} on ${pk.in}`;
  const closed = forFamily(others, pk.family).find((c) => c.rules === 0 && c.policy === "drop");
  if (!closed) return undefined;
  const problems = new Problems();
  problems.error("lockout", p.host?.span ?? p.docker.span ?? startOfFile, `your SSH session's next connection (${session}) would not get in: ${where(closed)} has no rules and policy drop, and a drop in any table is final`, {
    help: `give that chain a rule that accepts it, or apply anyway with --force`,
  });
  return problems.items[0];
}

const forFamily = (chains: InputChain[], family: 4 | 6) => chains.filter((c) => c.family === "inet" || c.family === (family === 4 ? "ip" : "ip6"));
const where = (c: InputChain) => `table ${c.family} ${c.table} chain ${c.name} (hook input, priority ${c.priority})`;

/** What apply says of the input chains the guard did not read (other tables' chains with rules). */
export function unreadNote(others: InputChain[], family: 4 | 6): string | undefined {
  const unread = forFamily(others, family).filter((c) => c.rules > 0);
  if (!unread.length) return undefined;
  return `the lockout guard did not read ${unread.map(where).join(", ")} (nftables rules of other tables): loading the file does not change what ${unread.length === 1 ? "it decides" : "they decide"}`;
}
