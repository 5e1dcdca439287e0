// Whole-process measurements: wall time (median of several runs) and peak RSS (GNU time's
// %M), for dockwall and for the tools it is compared with.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

export interface Measure {
  medianMs: number;
  peakKb: number;
  runs: number;
}

const GNU_TIME = "/usr/bin/time";

export interface Command {
  argv: string[];
  input?: string;
  expectStatus?: number[];
}

/**
 * Runs each command `runs` times (after one warm-up each) and reports each one's median wall
 * time and peak RSS. The commands take turns, run by run: a shared machine's speed drifts over
 * a benchmark, and commands that are compared with each other then see the same drift.
 */
export function measureEach<K extends string>(commands: Record<K, Command>, runs = 5): Record<K, Measure> {
  const keys = Object.keys(commands) as K[];
  const times = new Map<K, number[]>(keys.map((k) => [k, []]));
  const peaks = new Map<K, number>(keys.map((k) => [k, 0]));
  const timed = existsSync(GNU_TIME);
  for (let i = 0; i <= runs; i++) {
    for (const k of keys) {
      const { argv, input, expectStatus = [0] } = commands[k];
      const withTime = timed ? [GNU_TIME, "-f", "%M", ...argv] : argv;
      const t0 = process.hrtime.bigint();
      const r = spawnSync(withTime[0]!, withTime.slice(1), { input, encoding: "utf8", maxBuffer: 1 << 30, stdio: ["pipe", "ignore", "pipe"] });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (!expectStatus.includes(r.status ?? -1)) throw new Error(`${argv.join(" ")} exited ${r.status}: ${r.stderr.slice(-500)}`);
      const kb = Number(/(\d+)\s*$/.exec(r.stderr.trim())?.[1] ?? 0);
      if (i > 0) times.get(k)!.push(ms); // the first run warms caches
      peaks.set(k, Math.max(peaks.get(k)!, kb));
    }
  }
  const out = {} as Record<K, Measure>;
  for (const k of keys) {
    const t = times.get(k)!.sort((a, b) => a - b);
    out[k] = { medianMs: t[Math.floor(t.length / 2)]!, peakKb: peaks.get(k)!, runs };
  }
  return out;
}

/** One command, `runs` times (after one warm-up): its median wall time and peak RSS. */
export function measure(argv: string[], { runs = 5, input, expectStatus }: { runs?: number; input?: string; expectStatus?: number[] } = {}): Measure {
  return measureEach({ one: { argv, input, expectStatus } }, runs).one;
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
