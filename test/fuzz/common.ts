// What the differential fuzzers (test/fuzz/*.fuzz.ts) share: their settings from the environment,
// a seeded PRNG, an output directory with a log, JSON and JSONL files, a tally of kinds, the
// re-probe of disagreements (twice, 500 ms apart) and a greedy minimizer of lists.
// The fuzzers are opt-in developer tools, not tests: see docs/testing.md, "Fuzzers".
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LabProbe, PolicyLab } from "../lab/policylab.js";

// ---------------------------------------------------------------- settings ----
export interface FuzzSettings {
  /** FUZZ_SEED: every draw follows from it (default 1). */
  seed: number;
  /** FUZZ_MINUTES: the time budget (default 2). */
  minutes: number;
  /** FUZZ_OUT: where the log and findings go (default a fresh directory under the system's temporary one). */
  out: string;
  /** When the budget runs out (ms since the epoch). */
  deadline: number;
  started: number;
}

/** The settings of one fuzzer (its name names the default output directory), the directory made and printed. */
export function fuzzSettings(name: string): FuzzSettings {
  const seed = Number(process.env.FUZZ_SEED ?? 1);
  const minutes = Number(process.env.FUZZ_MINUTES ?? 2);
  if (!Number.isFinite(seed) || !Number.isFinite(minutes) || minutes <= 0) throw new Error(`FUZZ_SEED and FUZZ_MINUTES must be numbers (got ${process.env.FUZZ_SEED}, ${process.env.FUZZ_MINUTES})`);
  const out = process.env.FUZZ_OUT ? process.env.FUZZ_OUT : mkdtempSync(join(tmpdir(), `dockwall-fuzz-${name}-`));
  mkdirSync(out, { recursive: true });
  const started = Date.now();
  console.log(`[fuzz ${name}] seed ${seed}, ${minutes} min, output in ${out}`);
  return { seed, minutes, out, started, deadline: started + minutes * 60_000 };
}

/** The vitest timeout of a fuzzer's one test: its budget and room to finish a minimization and stop its lab. */
export const fuzzTimeout = (): number => (Number(process.env.FUZZ_MINUTES ?? 2) + 10) * 60_000;

// ---------------------------------------------------------------- PRNG ----
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded PRNG whose helpers may be taken apart (`const { pick } = rng`); `reseed` starts a fresh, reproducible stream. */
export class Rng {
  private next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  reseed = (seed: number): void => {
    this.next = mulberry32(seed);
  };
  rnd = (): number => this.next();
  chance = (p: number): boolean => this.next() < p;
  int = (lo: number, hi: number): number => lo + Math.floor(this.next() * (hi - lo + 1));
  pick = <T,>(xs: readonly T[]): T => xs[Math.floor(this.next() * xs.length)]!;
  weighted = <T,>(xs: [number, T][]): T => {
    const total = xs.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, x] of xs) if ((r -= w) < 0) return x;
    return xs[xs.length - 1]![1];
  };
  /** Up to n of xs, no one twice, in a random order. */
  some = <T,>(xs: readonly T[], n: number): T[] => {
    const c = [...xs];
    const out: T[] = [];
    while (out.length < n && c.length) out.push(c.splice(Math.floor(this.next() * c.length), 1)[0]!);
    return out;
  };
}

export const uniq = <T,>(xs: T[]): T[] => [...new Set(xs)];
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- output ----
/** The output directory's files: log.txt (appended, and echoed with `echo`), JSON written whole, JSONL appended. */
export class FuzzOut {
  constructor(readonly dir: string, private echo = false) {
    writeFileSync(join(dir, "log.txt"), "");
  }
  log = (s: string): void => {
    appendFileSync(join(this.dir, "log.txt"), s + "\n");
    if (this.echo) console.log(s);
  };
  json = (name: string, value: unknown): void => writeFileSync(join(this.dir, name), JSON.stringify(value, null, 1) + "\n");
  /** A JSONL file started empty (`line` appends to it). */
  start = (name: string): void => writeFileSync(join(this.dir, name), "");
  line = (name: string, value: unknown): void => appendFileSync(join(this.dir, name), JSON.stringify(value) + "\n");
}

/** How many of each kind (error codes, unknown reasons, signatures), most first. */
export class Tally {
  private m = new Map<string, number>();
  add = (k: string, n = 1): void => void this.m.set(k, (this.m.get(k) ?? 0) + n);
  get = (k: string): number => this.m.get(k) ?? 0;
  get size(): number {
    return this.m.size;
  }
  sorted = (): [string, number][] => [...this.m].sort((a, b) => b[1] - a[1]);
  object = (): Record<string, number> => Object.fromEntries(this.sorted());
}

// ---------------------------------------------------------------- probing ----
/**
 * The probes' answers (`first`, or sent now), the ones that differ from `expected` (where it is
 * known) sent again, twice at most, 500 ms apart: a connection let through is sometimes not
 * answered in time on a loaded machine, and a real difference stays.
 */
export async function reprobe(lab: PolicyLab, probes: LabProbe[], expected: (boolean | undefined)[], first?: boolean[], timeout = 800): Promise<boolean[]> {
  const open = first ? [...first] : (await lab.probe(probes, timeout)).map((k) => k.open);
  for (let round = 0; round < 2; round++) {
    const again = probes.map((_, i) => i).filter((i) => expected[i] !== undefined && open[i] !== expected[i]);
    if (again.length === 0) break;
    await sleep(500);
    const res = await lab.probe(again.map((i) => probes[i]!), 1200);
    again.forEach((i, k) => (open[i] = res[k]!.open));
  }
  return open;
}

/** A probe as one line: where from, what, where to. */
export function describeProbe(pr: LabProbe): string {
  const from = "iface" in pr.from ? `${pr.from.iface} ${pr.src}` : "container" in pr.from ? `container ${pr.from.container} ${pr.src}` : `host ${pr.src}`;
  const dst = pr.dst.includes(":") ? `[${pr.dst}]` : pr.dst;
  return `IPv${pr.family} ${from} → ${pr.proto} ${dst}${pr.port ? `:${pr.port}` : ""}${pr.sport ? ` (from port ${pr.sport})` : ""}`;
}

// ---------------------------------------------------------------- minimizing ----
/**
 * The list with as many of its items taken out, one at a time, as `still` allows (it is asked of
 * each smaller list, and says whether the finding is still there); stops early at `until`.
 */
export async function shrinkList<T>(items: T[], still: (xs: T[]) => Promise<boolean>, opts: { keep?: number; until?: number } = {}): Promise<T[]> {
  let cur = [...items];
  for (let i = cur.length - 1; i >= 0 && cur.length > (opts.keep ?? 0); i--) {
    if (opts.until !== undefined && Date.now() > opts.until) break;
    const without = cur.filter((_, j) => j !== i);
    if (await still(without)) cur = without;
  }
  return cur;
}

/** A fuzzer's summary.json: its settings, counts, tallies and findings, with how long it ran. */
export function writeSummary(out: FuzzOut, s: FuzzSettings, body: Record<string, unknown>): void {
  out.json("summary.json", { seed: s.seed, minutes: s.minutes, ranSeconds: Math.round((Date.now() - s.started) / 1000), ...body });
}
