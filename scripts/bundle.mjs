// Bundles the CLI into one file (dist/dockwall.mjs) with esbuild: a single file starts
// faster than Node resolving hundreds of modules. Templates are inlined as text.
import { build } from "esbuild";
import { readFile, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
await rm(resolve(root, "dist"), { recursive: true, force: true });

const rawPlugin = {
  name: "raw",
  setup(b) {
    b.onResolve({ filter: /\?raw$/ }, (args) => ({ path: resolve(args.resolveDir, args.path.replace(/\?raw$/, "")), namespace: "raw" }));
    b.onLoad({ filter: /.*/, namespace: "raw" }, async (args) => ({ contents: await readFile(args.path, "utf8"), loader: "text" }));
  },
};

// `--bench` also bundles the benchmark runner (it imports the compiler, templates included).
// The CLI is split into chunks: `dockwall --help` loads yargs only; the compiler (Chevrotain,
// Handlebars) is a separate chunk loaded when a command runs.
const entries = [["src/main.ts", "dockwall"]];
if (process.argv.includes("--bench")) entries.push(["bench/run.ts", "bench"], ["bench/stages.ts", "stages"]);

for (const [entry, name] of entries) await build({
  entryPoints: { [name]: resolve(root, entry) },
  outdir: resolve(root, "dist"),
  outExtension: { ".js": ".mjs" },
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: name === "dockwall" && !process.env.DOCKWALL_NO_MINIFY,
  sourcemap: "linked",
  legalComments: "linked",
  plugins: [rawPlugin],
  banner: { js: "import { createRequire as __dwRequire } from 'node:module'; const require = __dwRequire(import.meta.url);" },
  logLevel: "warning",
});
