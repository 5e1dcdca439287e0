// Builds the command into dist/ with esbuild:
//  - dist/dockwall.cjs: the CLI in one file (a single file starts faster than Node resolving
//    hundreds of modules; the templates are precompiled into it). CommonJS, because Node's
//    start-up snapshot builder takes only a script.
//  - dist/dockwall.blob: a start-up snapshot of it (`node --build-snapshot`, see src/main.ts),
//    and dist/dockwall.blob.stamp, which names the Node binary that built it: a snapshot loads
//    only into the Node (and with the V8 flags) it was built with, and bin/dockwall uses it
//    only with that Node, and with its own flags. Without a snapshot, bin/dockwall runs
//    dist/dockwall.cjs as a script.
// `--bench` also bundles the benchmark runner and the stage timer (ES modules, not minified).
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { esbuildHandlebars } from "./handlebars-plugin.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = resolve(root, "dist");
rmSync(dist, { recursive: true, force: true });

const common = { bundle: true, platform: "node", target: "node20", sourcemap: "linked", legalComments: "linked", plugins: [esbuildHandlebars], logLevel: "warning" };

await build({
  ...common,
  entryPoints: [resolve(root, "src/main.ts")],
  outfile: resolve(dist, "dockwall.cjs"),
  format: "cjs",
  minify: !process.env.DOCKWALL_NO_MINIFY,
  // yargs (an ES module) asks import.meta.url where it is; a CommonJS file knows __filename.
  define: { "import.meta.url": "__dwImportMetaUrl" },
  banner: { js: 'var __dwImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
});

/** The Node flags bin/dockwall runs with (its `flags="…"` line). */
const flags = (() => {
  const m = /^flags="([^"]*)"$/m.exec(readFileSync(resolve(root, "bin/dockwall"), "utf8"));
  if (!m) throw new Error('bin/dockwall has no flags="…" line');
  return m[1].split(" ").filter(Boolean);
})();

/** What bin/dockwall compares before it uses the snapshot: the Node binary's path, size and mtime. */
function nodeStamp() {
  const node = realpathSync(process.execPath);
  const st = statSync(node);
  return `${node} ${st.size} ${Math.floor(st.mtimeMs / 1000)}\n`;
}

const blob = resolve(dist, "dockwall.blob");
// A snapshot loads only with the V8 flags it was built with: bin/dockwall's.
const made = spawnSync(process.execPath, [...flags, "--snapshot-blob", blob, "--build-snapshot", resolve(dist, "dockwall.cjs")], { encoding: "utf8" });
if (made.status === 0) {
  writeFileSync(`${blob}.stamp`, nodeStamp());
} else {
  rmSync(blob, { force: true });
  console.warn(`dockwall: no start-up snapshot (the command works, but starts slower): ${made.stderr.trim().split("\n").slice(-3).join(" / ")}`);
}

if (process.argv.includes("--bench")) {
  await build({
    ...common,
    entryPoints: { bench: resolve(root, "bench/run.ts"), stages: resolve(root, "bench/stages.ts") },
    outdir: dist,
    outExtension: { ".js": ".mjs" },
    format: "esm",
    banner: { js: "import { createRequire as __dwRequire } from 'node:module'; const require = __dwRequire(import.meta.url);" },
  });
}
