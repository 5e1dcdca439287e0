import { defineConfig } from "vitest/config";
// @ts-expect-error: a plain .mjs build script, shared with the bundler
import { viteHandlebars } from "./scripts/handlebars-plugin.mjs";

export default defineConfig({
  plugins: [viteHandlebars],
  test: {
    include: process.env.DOCKWALL_SCRATCH ? ["scratch/**/*.test.ts"] : ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 120_000,
    // Kernel and packet tests build network namespaces; one file at a time keeps them apart.
    fileParallelism: false,
  },
});
