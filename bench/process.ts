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

/** Runs argv `runs` times (after one warm-up) and reports the median wall time and the peak RSS. */
export function measure(argv: string[], { runs = 5, input, expectStatus = [0] }: { runs?: number; input?: string; expectStatus?: number[] } = {}): Measure {
  const times: number[] = [];
  let peak = 0;
  const withTime = existsSync(GNU_TIME) ? [GNU_TIME, "-f", "%M", ...argv] : argv;
  for (let i = 0; i <= runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(withTime[0]!, withTime.slice(1), { input, encoding: "utf8", maxBuffer: 1 << 30, stdio: ["pipe", "ignore", "pipe"] });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!expectStatus.includes(r.status ?? -1)) throw new Error(`${argv.join(" ")} exited ${r.status}: ${r.stderr.slice(-500)}`);
    const kb = Number(/(\d+)\s*$/.exec(r.stderr.trim())?.[1] ?? 0);
    if (i > 0) times.push(ms); // the first run warms caches
    peak = Math.max(peak, kb);
  }
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)]!, peakKb: peak, runs };
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
