// The benchmark's measuring (bench/process.ts): which rounds its medians are of. No timings
// are asserted; the machine's CPU counters are simulated.
import { existsSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { measureEach } from "../../bench/process.js";

/**
 * CPU counters as /proc/stat would show them when the rounds listed in `noisy` (1 is the first
 * measured round, 0 the warm-up) have half their CPU taken by the hypervisor. measureEach reads
 * the counters before and after each round.
 */
function counters(noisy: (round: number) => boolean) {
  let calls = 0;
  let total = 0;
  let steal = 0;
  return () => {
    const round = Math.floor(calls / 2);
    if (calls % 2 === 1) {
      total += 100;
      if (noisy(round)) steal += 50;
    }
    calls++;
    return { total, steal };
  };
}

describe("measureEach", () => {
  const commands = { a: { argv: ["true"] }, b: { argv: ["sh", "-c", ":"] } };

  test("on a quiet machine, takes `runs` rounds after the warm-up one, every command in each", () => {
    const m = measureEach(commands, { runs: 3, ticks: counters(() => false) });
    expect(m.rounds).toEqual({ quiet: 3, noisy: 0, stealPct: 0, contended: false });
    expect(m.by.a.runs).toBe(3);
    expect(m.by.b.runs).toBe(3);
    for (const k of ["a", "b"] as const) {
      expect(m.by[k].medianMs).toBeGreaterThan(0);
      // CPU time comes from GNU time (as peak RSS does); without it, there is none.
      expect(Number.isFinite(m.by[k].cpuMs)).toBe(existsSync("/usr/bin/time"));
    }
  });

  test("runs a round again when the hypervisor took more than maxSteal of the CPU during it", () => {
    const m = measureEach(commands, { runs: 3, maxSteal: 5, ticks: counters((r) => r === 1 || r === 3) });
    expect(m.rounds).toEqual({ quiet: 3, noisy: 2, stealPct: 0, contended: false });
    expect(m.by.a.runs).toBe(3);
  });

  test("a warm-up round's steal does not count", () => {
    expect(measureEach(commands, { runs: 2, ticks: counters((r) => r === 0) }).rounds).toEqual({ quiet: 2, noisy: 0, stealPct: 0, contended: false });
  });

  test("steal up to maxSteal is quiet enough", () => {
    // 50 of 100 ticks is 50%.
    expect(measureEach(commands, { runs: 2, maxSteal: 50, ticks: counters(() => true) }).rounds).toEqual({ quiet: 2, noisy: 0, stealPct: 50, contended: false });
  });

  test("on a machine that is never quiet, gives up after four times `runs` rounds and says so", () => {
    const m = measureEach(commands, { runs: 2, ticks: counters(() => true) });
    expect(m.rounds).toEqual({ quiet: 0, noisy: 8, stealPct: 50, contended: true });
    // The medians are then of every round.
    expect(m.by.a.runs).toBe(8);
  });

  test("without CPU counters (not Linux), every round counts as quiet", () => {
    expect(measureEach(commands, { runs: 2, ticks: () => undefined }).rounds).toEqual({ quiet: 2, noisy: 0, stealPct: 0, contended: false });
  });

  test("a command that fails stops the benchmark, with its output", () => {
    expect(() => measureEach({ bad: { argv: ["sh", "-c", "echo broken >&2; exit 3"] } }, { runs: 1, ticks: () => undefined })).toThrow(/exited 3: .*broken/s);
  });
});
