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
  /** Wall time of each round the medians are of, in round order (for paired ratios). */
  perRound: number[];
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
  /** Run before the command in each round, outside its time (e.g. a fresh namespace to load into). */
  before?: () => void;
}

export interface MeasureOptions {
  runs?: number;
  /** A round whose steal exceeds this share (percent) is measured again. */
  maxSteal?: number;
  /** Where the machine's CPU counters come from (/proc/stat; tests give their own). */
  ticks?: () => { total: number; steal: number } | undefined;
}

/**
 * Runs `round` once to warm up, then until `runs` quiet rounds are had: a round during which
 * the hypervisor took more than `maxSteal` percent of the CPU is set aside and run again, up to
 * three times `runs` extra rounds. If too few quiet rounds could be had, every round is used
 * and the result says `contended`.
 */
export function quietRounds<T>(round: () => T, { runs = 5, maxSteal = 5, ticks = cpuTicks }: MeasureOptions = {}): { used: T[]; rounds: Rounds } {
  type Taken = { value: T; steal: number; total: number };
  const kept: Taken[] = [];
  const setAside: Taken[] = [];
  for (let i = 0; kept.length < runs && i <= 4 * runs; i++) {
    const before = ticks();
    const value = round();
    const after = ticks();
    const taken = { value, steal: before && after ? after.steal - before.steal : 0, total: before && after ? after.total - before.total : 0 };
    if (i === 0) continue; // the first round warms caches
    (taken.total > 0 && (100 * taken.steal) / taken.total > maxSteal ? setAside : kept).push(taken);
  }
  const contended = kept.length < Math.min(3, runs);
  const used = contended ? [...kept, ...setAside] : kept;
  // Steal adds up over rounds as ticks, not as percentages.
  const steal = used.reduce((a, r) => a + r.steal, 0);
  const total = used.reduce((a, r) => a + r.total, 0);
  return { used: used.map((r) => r.value), rounds: { quiet: kept.length, noisy: setAside.length, stealPct: total > 0 ? (100 * steal) / total : 0, contended } };
}

/**
 * Runs each command `runs` times (after one warm-up round) and reports each one's median wall
 * time, median CPU time and peak RSS. The commands take turns, run by run: a shared machine's
 * speed drifts over a benchmark, and commands that are compared with each other then see the
 * same drift. Rounds are taken as quietRounds takes them.
 */
export function measureEach<K extends string>(commands: Record<K, Command>, options: MeasureOptions = {}): { by: Record<K, Measure>; rounds: Rounds } {
  const keys = Object.keys(commands) as K[];
  const peaks = new Map<K, number>(keys.map((k) => [k, 0]));
  const timed = existsSync(GNU_TIME);
  const { used, rounds } = quietRounds(() => {
    const round = { ms: new Map<K, number>(), cpu: new Map<K, number>() };
    for (const k of keys) {
      commands[k].before?.();
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
    return round;
  }, options);
  const by = {} as Record<K, Measure>;
  for (const k of keys) {
    const perRound = used.map((r) => r.ms.get(k)!);
    by[k] = { medianMs: median(perRound), cpuMs: median(used.map((r) => r.cpu.get(k)!)), peakKb: peaks.get(k)!, runs: used.length, perRound };
  }
  return { by, rounds };
}

/** The median (of an even count, the mean of the middle two). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Paired {
  /** The median over rounds of `other`'s time divided by `ours`: above 1, ours was faster. */
  ratio: number;
  /** In how many rounds ours was faster. */
  faster: number;
  rounds: number;
}

/**
 * How much faster `ours` ran than `other`, round by round. Both ran in each round, one after
 * the other, so a round's ratio compares runs made at the same time, and a slow phase of the
 * machine that spans a round slows both: the median of these ratios moves less from one
 * benchmark run to the next than the ratio of the two medians.
 */
export function paired(ours: Measure, other: Measure): Paired {
  if (ours.perRound.length !== other.perRound.length) throw new Error("paired: the two were not measured in the same rounds");
  const ratios = ours.perRound.map((ms, i) => other.perRound[i]! / ms);
  return { ratio: median(ratios), faster: ratios.filter((r) => r > 1).length, rounds: ratios.length };
}

/**
 * How much longer `ours` ran than `other`, round by round (both ran in each round, one after
 * the other): the median of the rounds' differences, in ms, and each round's.
 */
export function difference(ours: Measure, other: Measure): { medianMs: number; perRound: number[] } {
  if (ours.perRound.length !== other.perRound.length) throw new Error("difference: the two were not measured in the same rounds");
  const perRound = ours.perRound.map((ms, i) => ms - other.perRound[i]!);
  return { medianMs: median(perRound), perRound };
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
