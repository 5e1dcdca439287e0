// Reading iptables-save text in tests: tables → chains (with policy) → rule lines.
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

const perPort = (rule: string): boolean => /--dport |--sport /.test(rule);

/** Sorts each run of consecutive per-port rules, so that only their order within the run may differ. */
export function canonicalRuns(s: Saved): Saved {
  const out: Saved = {};
  for (const [name, t] of Object.entries(s)) {
    const rules: Record<string, string[]> = {};
    for (const [chain, rs] of Object.entries(t.rules)) {
      const res: string[] = [];
      let run: string[] = [];
      const flush = () => {
        res.push(...run.sort());
        run = [];
      };
      for (const r of rs) {
        if (perPort(r)) run.push(r);
        else {
          flush();
          res.push(r);
        }
      }
      flush();
      rules[chain] = res;
    }
    out[name] = { chains: t.chains, rules };
  }
  return out;
}
