// Whole-process measurements: wall time and CPU time (medians of several runs) and peak RSS
// (GNU time's %U %S %M), for dockwall and for the tools it is compared with.
//
// On a virtual machine the hypervisor may run other guests on this one's CPUs ("steal" in
// /proc/stat). While it does, every command runs slower, and by how much depends on how it
// uses its CPUs, so a comparison made then says little. A round of runs during which the
// hypervisor took more than `maxSteal` of the CPU is measured again (up to a limit), and what
// was set aside is reported.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

export interface Measure {
  medianMs: number;
  /** User + system CPU time of the process and all its threads (median). */
  cpuMs: number;
  peakKb: number;
  runs: number;
}

export interface Rounds {
  /** Quiet rounds (each runs every command once). */
  quiet: number;
  /** Rounds during which the hypervisor took more than maxSteal of the CPU. */
  noisy: number;
  /** The hypervisor's share of the CPU over the rounds the medians are of, in percent. */
  stealPct: number;
  /** Too few quiet rounds could be had: the medians are of every round, noisy ones too. */
  contended: boolean;
}

const GNU_TIME = "/usr/bin/time";

/** CPU time counters of the whole machine (/proc/stat): all of them, and the hypervisor's. */
export function cpuTicks(): { total: number; steal: number } | undefined {
  try {
    const f = readFileSync("/proc/stat", "utf8").slice(0, 200).split("\n")[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    return { total: f.reduce((a, b) => a + b, 0), steal: f[7] ?? 0 };
  } catch {
    return undefined;
  }
}

export interface Command {
  argv: string[];
  input?: string;
  expectStatus?: number[];
}

export interface MeasureOptions {
  runs?: number;
  /** A round whose steal exceeds this share (percent) is measured again. */
  maxSteal?: number;
  /** Where the machine's CPU counters come from (/proc/stat; tests give their own). */
  ticks?: () => { total: number; steal: number } | undefined;
}

/**
 * Runs each command `runs` times (after one warm-up round) and reports each one's median wall
 * time, median CPU time and peak RSS. The commands take turns, run by run: a shared machine's
 * speed drifts over a benchmark, and commands that are compared with each other then see the
 * same drift. A round during which the hypervisor took more than `maxSteal` percent of the CPU
 * is set aside and run again, up to three times `runs` extra rounds; if too few quiet rounds
 * could be had, the medians are of every round and the result says `contended`.
 */
export function measureEach<K extends string>(commands: Record<K, Command>, { runs = 5, maxSteal = 5, ticks = cpuTicks }: MeasureOptions = {}): { by: Record<K, Measure>; rounds: Rounds } {
  const keys = Object.keys(commands) as K[];
  type Round = { ms: Map<K, number>; cpu: Map<K, number>; steal: number; total: number };
  const kept: Round[] = [];
  const setAside: Round[] = [];
  const peaks = new Map<K, number>(keys.map((k) => [k, 0]));
  const timed = existsSync(GNU_TIME);
  for (let i = 0; kept.length < runs && i <= 4 * runs; i++) {
    const before = ticks();
    const round: Round = { ms: new Map(), cpu: new Map(), steal: 0, total: 0 };
    for (const k of keys) {
      const { argv, input, expectStatus = [0] } = commands[k];
      const withTime = timed ? [GNU_TIME, "-f", "%U %S %M", ...argv] : argv;
      const t0 = process.hrtime.bigint();
      const r = spawnSync(withTime[0]!, withTime.slice(1), { input, encoding: "utf8", maxBuffer: 1 << 30, stdio: ["pipe", "ignore", "pipe"] });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (!expectStatus.includes(r.status ?? -1)) throw new Error(`${argv.join(" ")} exited ${r.status}: ${r.stderr.slice(-500)}`);
      // GNU time's line is the last of stderr.
      const [user = NaN, sys = NaN, kb = 0] = (/([\d.]+) ([\d.]+) (\d+)\s*$/.exec(r.stderr)?.slice(1) ?? []).map(Number);
      round.ms.set(k, ms);
      round.cpu.set(k, (user + sys) * 1000);
      peaks.set(k, Math.max(peaks.get(k)!, kb));
    }
    const after = ticks();
    if (before && after) {
      round.steal = after.steal - before.steal;
      round.total = after.total - before.total;
    }
    if (i === 0) continue; // the first round warms caches
    (round.total > 0 && (100 * round.steal) / round.total > maxSteal ? setAside : kept).push(round);
  }
  const contended = kept.length < Math.min(3, runs);
  const used = contended ? [...kept, ...setAside] : kept;
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const by = {} as Record<K, Measure>;
  for (const k of keys) {
    by[k] = { medianMs: median(used.map((r) => r.ms.get(k)!)), cpuMs: median(used.map((r) => r.cpu.get(k)!)), peakKb: peaks.get(k)!, runs: used.length };
  }
  const steal = used.reduce((a, r) => a + r.steal, 0);
  const total = used.reduce((a, r) => a + r.total, 0);
  return { by, rounds: { quiet: kept.length, noisy: setAside.length, stealPct: total > 0 ? (100 * steal) / total : 0, contended } };
}

/** One command, `runs` times (after one warm-up), as measureEach measures it. */
export function measure(argv: string[], { input, expectStatus, ...options }: MeasureOptions & { input?: string; expectStatus?: number[] } = {}): Measure & { rounds: Rounds } {
  const m = measureEach({ one: { argv, input, expectStatus } }, options);
  return { ...m.by.one, rounds: m.rounds };
}

/** A scratch network namespace for tools that read or load rules (never the root namespace). */
export function withNetns<T>(fn: (exec: string[]) => T): T | undefined {
  const name = `dwbench-${process.pid}`;
  if (spawnSync("ip", ["netns", "add", name]).status !== 0) return undefined;
  try {
    return fn(["ip", "netns", "exec", name]);
  } finally {
    spawnSync("ip", ["netns", "del", name]);
  }
}
