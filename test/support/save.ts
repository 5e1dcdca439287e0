// Reading iptables-save text in tests: tables → chains (with policy) → rule lines, kept
// exactly as written. The parity and kernel tests compare text to the letter on purpose
// (src/live/save.ts is the forgiving reader that `dockwall diff` uses).
export interface SavedTable {
  chains: Record<string, string>;
  rules: Record<string, string[]>;
}
export type Saved = Record<string, SavedTable>;

export function parseSave(text: string): Saved {
  const out: Saved = {};
  let table: SavedTable | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    if (line.startsWith("*")) {
      table = { chains: {}, rules: {} };
      out[line.slice(1)] = table;
    } else if (line === "COMMIT") table = undefined;
    else if (line.startsWith(":") && table) {
      const [name, policy] = line.slice(1).split(/\s+/);
      table.chains[name!] = policy!;
      table.rules[name!] ??= [];
    } else if (line.startsWith("-A ") && table) {
      const chain = line.split(/\s+/)[1]!;
      (table.rules[chain] ??= []).push(line);
    }
  }
  return out;
}

/**
 * iptables-save text as comparable data: tables → chain policies and rules, with
 * `omit` chains left out and tables that hold nothing (built-ins at ACCEPT, no rules)
 * dropped, so an untouched table and an absent one compare equal.
 */
export function canonicalSave(text: string, omit: string[] = []): Saved {
  const s = parseSave(text);
  const out: Saved = {};
  for (const [name, t] of Object.entries(s)) {
    const chains = Object.fromEntries(Object.entries(t.chains).filter(([c]) => !omit.includes(c)));
    const rules = Object.fromEntries(
      Object.entries(t.rules)
        .filter(([c]) => !omit.includes(c))
        .map(([c, rs]) => [c, rs.filter((r) => !omit.some((o) => r.endsWith(`-j ${o}`)))]),
    );
    const empty = Object.values(chains).every((p) => p === "ACCEPT") && Object.values(rules).every((r) => r.length === 0) && Object.keys(chains).every((c) => ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"].includes(c));
    if (!empty) out[name] = { chains, rules };
  }
  return out;
}

/**
 * dockwall differs from dockerd on purpose in one place: with `iptables off` it owns FORWARD in
 * both families and sets its policy to DROP (dockerd left IPv6 FORWARD ACCEPT before 28 with
 * ip6tables off, where it wrote no IPv6 rules at all, and from 28 until a network had an IPv6
 * subnet). The IPv6 captures are compared with that one change; for IPv4 the fixture's
 * expected.v4 says it (corpus/ip-forward-preset).
 */
export function forwardDropped(s: Saved): Saved {
  const filter = s.filter ?? { chains: { INPUT: "ACCEPT", FORWARD: "ACCEPT", OUTPUT: "ACCEPT" }, rules: { INPUT: [], FORWARD: [], OUTPUT: [] } };
  return { ...s, filter: { ...filter, chains: { ...filter.chains, FORWARD: "DROP" } } };
}

/**
 * The kernel has every built-in chain of a table; ferm's text leaves out one that the file does
 * not write when the kernel it read had none (INPUT without a host block): left out of the save too.
 */
export function undeclaredLeftOut(saved: string, text: string): string {
  const declared = new Set<string>();
  let table = "";
  for (const l of text.split("\n")) {
    if (l.startsWith("*")) table = l.slice(1).trim();
    else if (l.startsWith(":")) declared.add(`${table} ${l.slice(1).split(" ")[0]}`);
  }
  const used = new Set<string>();
  table = "";
  for (const l of saved.split("\n")) {
    if (l.startsWith("*")) table = l.slice(1).trim();
    else if (l.startsWith("-A ")) used.add(`${table} ${l.split(" ")[1]}`);
  }
  table = "";
  return saved
    .split("\n")
    .filter((l) => {
      if (l.startsWith("*")) table = l.slice(1).trim();
      const m = /^:([A-Z]+) ACCEPT /.exec(l);
      return !m || declared.has(`${table} ${m[1]}`) || used.has(`${table} ${m[1]}`);
    })
    .join("\n");
}
