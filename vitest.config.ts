import { existsSync } from "node:fs";
import { defineConfig } from "vitest/config";
// @ts-expect-error: a plain .mjs build script, shared with the bundler
import { viteHandlebars } from "./scripts/handlebars-plugin.mjs";

/**
 * Tests that build network namespaces, load rules into the kernel, run dockerd or send packets:
 * two files at a time (DOCKWALL_KERNEL_WORKERS), after the unit tests; each file makes its namespaces,
 * dockerds and state under names of its own (test/lab/proc.ts).
 */
const KERNEL = [
  "test/kernel/**/*.test.ts",
  "test/packet/**/*.test.ts",
  "test/lab/**/*.test.ts",
  "test/apply/apply.test.ts",
  "test/apply/apply-nft.test.ts",
  "test/live/nftdelta.test.ts",
  "test/analysis/nfteval-kernel.test.ts",
  "test/analysis/localnet-kernel.test.ts",
  "test/analysis/nft-live-analysis.test.ts",
  "test/analysis/nft-reach.test.ts",
  "test/analysis/nft-index.test.ts",
  "test/analysis/forward-policy.test.ts",
  "test/apply/rollback-docker.test.ts",
  "test/apply/evaluate.test.ts",
  "test/apply/evaluate-policies.test.ts",
  "test/apply/ferm-keep.test.ts",
  "test/apply/failclosed.test.ts",
  "test/apply/hostblock-kernel.test.ts",
  "test/watch/apply-live.test.ts",
  "test/apply/backends.test.ts",
  "test/watch/drift-live.test.ts",
  "test/watch/pending-live.test.ts",
  "test/watch/watcher.test.ts",
  "test/watch/live.test.ts",
  "test/watch/nft-live.test.ts",
  "test/watch/proxy-window.test.ts",
  "test/watch/prestart-live.test.ts", "test/watch/crash-live.test.ts",
  "test/analysis/explain-trace.test.ts",
  "test/analysis/verify-live.test.ts",
  "test/analysis/verify-large.test.ts",
  "test/analysis/matrix-live.test.ts",
  "test/watch/facts-live.test.ts",
  "test/facts/live.test.ts",
  // The single executable: only where one is built or asked for (.ci/run builds it after npm test), not a skip in every run without it.
  ...(process.env.DOCKWALL_REQUIRE_EXE === "1" || process.env.DOCKWALL_EXE || existsSync("build/dockwall") ? ["test/exe/exe.test.ts"] : []),
  "test/ansible/**/*.test.ts",
  "test/targets/nft-live.test.ts",
  "test/targets/nft-docker29.test.ts",
  "test/targets/nft-dockerd.test.ts",
  "test/targets/nft-bridges.test.ts",
  "test/targets/nft-router.test.ts",
  "test/parity/nft29-kernel.test.ts",
  "test/check/nftconf-kernel.test.ts",
];

const KERNEL_WORKERS = Number(process.env.DOCKWALL_KERNEL_WORKERS ?? 2);

export default defineConfig({
  plugins: [viteHandlebars],
  test: {
    testTimeout: 20_000,
    hookTimeout: 120_000,
    projects: process.env.DOCKWALL_SCRATCH
      ? [{ extends: true, test: { name: "scratch", include: ["scratch/**/*.test.ts"], fileParallelism: false } }]
      : process.env.DOCKWALL_FUZZ === "1"
      ? // The differential fuzzers (docs/testing.md, "Fuzzers"): opt-in, never part of npm test (their files are *.fuzz.ts, which no other project includes).
        [{ extends: true, test: { name: "fuzz", include: ["test/fuzz/**/*.fuzz.ts"], fileParallelism: false } }]
      : [
          { extends: true, test: { name: "unit", include: ["test/**/*.test.ts"], exclude: [...KERNEL, "test/exe/**"], fileParallelism: true, maxWorkers: 2, sequence: { groupOrder: 0 } } },
          { extends: true, test: { name: "kernel", include: KERNEL, fileParallelism: KERNEL_WORKERS > 1, maxWorkers: KERNEL_WORKERS, sequence: { groupOrder: 1 } } },
        ],
  },
});
