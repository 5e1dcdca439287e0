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
  for (const group of ["corpus", "legacy-20.10"]) {
    for (const d of readdirSync(join(root, "test/parity", group)).sort()) add(join(root, "test/parity", group, d, "policy.dw"));
  }
  return out;
}
