// The benchmark's measuring (bench/process.ts): which rounds its medians are of. No timings
// are asserted; the machine's CPU counters are simulated.
import { existsSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { measureEach, median, paired, quietRounds, type Measure } from "../../bench/process.js";
import { benchParseCheck } from "../../bench/parse-check.js";

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
    // Each round's time, in round order, for ratios taken round by round.
    expect(m.by.a.perRound).toHaveLength(3);
    expect(m.by.a.medianMs).toBe(median(m.by.a.perRound));
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

describe("median", () => {
  test.each([
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[10, 10, 400, 10], 10],
  ])("of %j is %d", (xs, m) => {
    expect(median(xs)).toBe(m);
  });

  test("leaves its input as it was", () => {
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });
});

describe("paired: how much faster ours ran, round by round", () => {
  const of = (perRound: number[]): Measure => ({ medianMs: median(perRound), cpuMs: NaN, peakKb: 0, runs: perRound.length, perRound });

  test.each([
    // ours, other, ratio (median of other/ours), rounds in which ours was faster
    { ours: [100, 100, 100], other: [200, 150, 300], ratio: 2, faster: 3 },
    { ours: [100, 100, 100], other: [90, 80, 100], ratio: 0.9, faster: 0 },
    // A slow phase that slows both in one round does not move the ratio.
    { ours: [100, 300, 100], other: [110, 330, 110], ratio: 1.1, faster: 3 },
    // Even count: the mean of the middle two ratios.
    { ours: [100, 100, 100, 100], other: [90, 110, 120, 130], ratio: 1.15, faster: 3 },
  ])("ours $ours, other $other → $ratio×, faster in $faster", ({ ours, other, ratio, faster }) => {
    const p = paired(of(ours), of(other));
    expect(p.ratio).toBeCloseTo(ratio, 10);
    expect(p.faster).toBe(faster);
    expect(p.rounds).toBe(ours.length);
  });

  test("differs from the ratio of the medians when slow rounds fall differently", () => {
    // Ours was the faster in two rounds of three; its slow round came when the other was fast,
    // and that round decides the ratio of the medians.
    const ours = of([100, 200, 210]);
    const other = of([120, 110, 230]);
    expect(other.medianMs / ours.medianMs).toBeLessThan(1);
    expect(paired(ours, other).ratio).toBeGreaterThan(1);
  });

  test("refuses measurements not taken in the same rounds", () => {
    expect(() => paired(of([1, 2, 3]), of([1, 2]))).toThrow(/same rounds/);
  });

  test("measureEach's rounds pair up: every command has a time in each", () => {
    const m = measureEach({ a: { argv: ["true"] }, b: { argv: ["true"] } }, { runs: 3, ticks: () => undefined });
    expect(paired(m.by.a, m.by.b).rounds).toBe(3);
  });
});

describe("quietRounds: any work, in rounds, as measureEach takes them", () => {
  test("keeps the values of quiet rounds, in order, after the warm-up", () => {
    let n = 0;
    const r = quietRounds(() => n++, { runs: 3, maxSteal: 5, ticks: counters((round) => round === 2) });
    // Round 0 warms up; round 2 is noisy and taken again as round 4.
    expect(r.used).toEqual([1, 3, 4]);
    expect(r.rounds).toEqual({ quiet: 3, noisy: 1, stealPct: 0, contended: false });
  });

  test("in process, parse + check of a small policy: medians of its quiet runs", () => {
    const pc = benchParseCheck(60, 3, { ticks: () => undefined });
    expect(pc.statements).toBe(60);
    expect(pc.rounds).toEqual({ quiet: 3, noisy: 0, stealPct: 0, contended: false });
    for (const ms of [pc.medianMs, pc.minMs, pc.parseMs, pc.buildMs, pc.checkMs]) expect(Number.isFinite(ms)).toBe(true);
    expect(pc.minMs).toBeLessThanOrEqual(pc.medianMs);
  });
});
