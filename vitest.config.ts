import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: process.env.DOCKWALL_SCRATCH ? ["scratch/**/*.test.ts"] : ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 120_000,
    // Kernel and packet tests build network namespaces; one file at a time keeps them apart.
    fileParallelism: false,
  },
});
