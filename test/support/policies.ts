// Every policy the project ships or tests: examples, golden cases, parity fixtures.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

export const root = new URL("../../", import.meta.url).pathname;

export interface PolicyFile {
  name: string;
  text: string;
}

export function allPolicies(): PolicyFile[] {
  const out: PolicyFile[] = [];
  const add = (path: string) => out.push({ name: relative(root, path), text: readFileSync(path, "utf8") });
  for (const f of readdirSync(join(root, "examples")).filter((f) => f.endsWith(".dw")).sort()) add(join(root, "examples", f));
  for (const d of readdirSync(join(root, "test/golden")).sort()) {
    const p = join(root, "test/golden", d, "policy.dw");
    if (existsSync(p)) add(p);
  }
  for (const group of parityGroups()) {
    for (const d of readdirSync(join(root, "test/parity", group)).sort()) {
      const dir = join(root, "test/parity", group, d);
      if (!skipped(dir)) add(join(dir, "policy.dw"));
    }
  }
  return out;
}

/** The folders of test/parity (one per capture source or Docker layout). */
/** The folders of iptables captures (v29-nftables holds nftables ones: test/parity/nft29.test.ts). */
export function parityGroups(): string[] {
  return readdirSync(join(root, "test/parity"), { withFileTypes: true }).filter((d) => d.isDirectory() && d.name !== "v29-nftables").map((d) => d.name).sort();
}

/** A parity fixture whose notes.md starts with "skip: REASON" describes what the language cannot express. */
export function skipped(dir: string): string | undefined {
  const notes = join(dir, "notes.md");
  return existsSync(notes) ? /^skip:\s*(.*)/.exec(readFileSync(notes, "utf8"))?.[1] : undefined;
}

/** Docker 28.0.0 keys FORWARD on ipsets that dockerd creates: a rule set that names them loads only once they exist. */
export function ipsetCommands(text: string): string[][] {
  const sets = [...new Set([...text.matchAll(/--match-set (\S+) /g)].map((m) => m[1]!))];
  return sets.map((s) => ["ipset", "create", s, "hash:net", "family", s.endsWith("v6") ? "inet6" : "inet", "-exist"]);
}
