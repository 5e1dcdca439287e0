// Bundles the CLI into one file (dist/dockwall.mjs) with esbuild: a single file starts
// faster than Node resolving hundreds of modules. Templates are inlined as text.
import { build } from "esbuild";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const rawPlugin = {
  name: "raw",
  setup(b) {
    b.onResolve({ filter: /\?raw$/ }, (args) => ({ path: resolve(args.resolveDir, args.path.replace(/\?raw$/, "")), namespace: "raw" }));
    b.onLoad({ filter: /.*/, namespace: "raw" }, async (args) => ({ contents: await readFile(args.path, "utf8"), loader: "text" }));
  },
};

await build({
  entryPoints: [resolve(root, "src/main.ts")],
  outfile: resolve(root, "dist/dockwall.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  plugins: [rawPlugin],
  banner: { js: "import { createRequire as __dwRequire } from 'node:module'; const require = __dwRequire(import.meta.url);" },
  logLevel: "warning",
});
