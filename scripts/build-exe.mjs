// npm run build:exe: dockwall as one executable that needs no Node installed, and a Debian
// package of it (issue 25). Writes only build/ (never dist/, which `npm run build` owns):
//  - build/dockwall.cjs: the CLI bundled as scripts/bundle.mjs bundles it (same esbuild
//    options, templates precompiled), plus a prologue for the executable (below);
//  - build/dockwall: Node's Single Executable Application of it: a copy of the Node binary
//    that runs this script (it must carry the SEA fuse; Node 20.20 does) with the bundle and
//    a start-up snapshot of it injected by postject;
//  - build/dockwall_<version>_amd64.deb: /usr/bin/dockwall, the systemd unit, the man pages
//    (when scripts/man.mjs exists), the examples, packaging/debian/'s control files.
// `--no-deb` stops after the executable. DOCKWALL_EXE_SNAPSHOT=0 builds the executable
// without the start-up snapshot (useCodeCache instead), for comparison.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join, relative, resolve } from "node:path";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { esbuildHandlebars } from "./handlebars-plugin.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(root, "build");
mkdirSync(out, { recursive: true });
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const snapshot = process.env.DOCKWALL_EXE_SNAPSHOT !== "0";
if (process.platform !== "linux" || process.arch !== "x64") throw new Error(`build-exe: linux-x64 only (the package is amd64); this Node is ${process.platform}-${process.arch}`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...opts });
  if (r.error || r.status !== 0) {
    throw new Error(`${[cmd, ...args].join(" ")} failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? "").trim().split("\n").slice(-5).join(" / ")}`);
  }
  return r.stdout;
}

// The executable's prologue, before any module of the bundle runs:
//  - apply --confirm starts its rollback timer as "this very command": bin/dockwall says which
//    with DOCKWALL_BIN (src/main.ts spawns DOCKWALL_BIN, else argv[1]); here it is the
//    executable itself, whatever an inherited DOCKWALL_BIN says;
//  - Node repeats argv[0] at argv[1] in a single executable (where a script's path would be),
//    also when it resumes from the snapshot, where src/main.ts expects the arguments to start
//    at argv[1] (as under `node --snapshot-blob`): the copy is taken out there.
// Under the snapshot this runs at build time, so both are done by a deserialize callback, at
// each start, before src/main.ts's main function.
const prologue = `var __dwImportMetaUrl = require("node:url").pathToFileURL(__filename).href;
(() => {
  const s = require("node:v8").startupSnapshot;
  const self = () => { process.env.DOCKWALL_BIN = process.execPath; };
  if (s && s.isBuildingSnapshot()) s.addDeserializeCallback(() => { self(); if (process.argv.length > 1) process.argv.splice(1, 1); });
  else self();
})();`;

const bundle = join(out, "dockwall.cjs");
await build({
  // scripts/bundle.mjs's options: one CommonJS file, yargs told where it is by __filename.
  bundle: true,
  platform: "node",
  target: "node20",
  legalComments: "linked",
  plugins: [esbuildHandlebars],
  logLevel: "warning",
  entryPoints: [resolve(root, "src/main.ts")],
  outfile: bundle,
  format: "cjs",
  minify: true,
  define: { "import.meta.url": "__dwImportMetaUrl" },
  banner: { js: prologue },
});

// The blob: the bundle, and (by default) a start-up snapshot of it, as dist/dockwall.blob is
// for bin/dockwall; without the snapshot, V8's code cache of the bundle.
const blob = join(out, "dockwall.blob");
const config = join(out, "sea-config.json");
writeFileSync(config, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, ...(snapshot ? { useSnapshot: true } : { useCodeCache: true }) }, null, 2) + "\n");
// Without NODE_OPTIONS: V8 flags there would go into the snapshot, which then loads only with them.
const cleanEnv = { ...process.env };
delete cleanEnv.NODE_OPTIONS;
run(process.execPath, ["--experimental-sea-config", config], { cwd: out, env: cleanEnv });

// A copy of this Node with the blob injected (postject: Node documents it as the way to put the
// blob into the binary and flip the fuse; Node 20 has no injector of its own). Made beside the
// old one and renamed over it once it runs: a test running build/dockwall meanwhile never sees
// half an executable.
const exe = join(out, "dockwall");
const fresh = join(out, `.dockwall-${process.pid}`);
copyFileSync(process.execPath, fresh);
chmodSync(fresh, 0o755);
try {
  const postject = join(root, "node_modules/postject/dist/cli.js");
  // postject warns about note sections it cannot name; the injection is checked by running the result.
  run(process.execPath, [postject, fresh, "NODE_SEA_BLOB", blob, "--sentinel-fuse", "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"]);
  const version = run(fresh, ["--version"], { env: { PATH: "/nonexistent" } }).trim();
  if (version !== pkg.version) throw new Error(`the executable's --version says '${version}', package.json '${pkg.version}'`);
  // postject wrote the file in one write(), which this kernel (6.18, ext4) caches in large
  // folios, and a process maps them whole: 15 MB more RSS at every start than the same bytes
  // written the usual way (as dpkg, cp or a copy do). Copied once more, build/dockwall
  // measures as the installed one does.
  copyFileSync(fresh, `${fresh}.copy`);
  chmodSync(`${fresh}.copy`, 0o755);
  renameSync(`${fresh}.copy`, exe);
} finally {
  rmSync(fresh, { force: true });
  rmSync(`${fresh}.copy`, { force: true });
}
console.log(`build/dockwall: ${(statSync(exe).size / 2 ** 20).toFixed(1)} MB (${snapshot ? "start-up snapshot" : "code cache"})`);

if (!process.argv.includes("--no-deb")) console.log(`${buildDeb()}: ${(statSync(join(out, `dockwall_${pkg.version}_amd64.deb`)).size / 2 ** 20).toFixed(1)} MB`);

/** The Debian package, from packaging/debian/ and build/dockwall. */
function buildDeb() {
  const name = `dockwall_${pkg.version}_amd64.deb`;
  const tree = join(out, "deb");
  rmSync(tree, { recursive: true, force: true });
  const at = (p) => {
    const full = join(tree, p);
    mkdirSync(dirname(full), { recursive: true });
    return full;
  };
  const debian = join(root, "packaging/debian");
  copyFileSync(exe, at("usr/bin/dockwall"));
  chmodSync(at("usr/bin/dockwall"), 0o755);
  // The unit as examples/systemd/ has it, started from the package's /usr/bin/dockwall.
  const unit = readFileSync(join(root, "examples/systemd/dockwall.service"), "utf8");
  if (!unit.includes("ExecStart=/usr/local/bin/dockwall ")) throw new Error("examples/systemd/dockwall.service: no 'ExecStart=/usr/local/bin/dockwall …' line to point at /usr/bin/dockwall");
  writeFileSync(at("lib/systemd/system/dockwall.service"), unit.replaceAll("/usr/local/bin/dockwall", "/usr/bin/dockwall"));
  const doc = "usr/share/doc/dockwall";
  // Debian's policy: the copyright file uncompressed (with Node.js's LICENSE after it: the
  // executable is a copy of the Node binary), the other documents compressed.
  const nodeLicense = [join(dirname(process.execPath), "../share/doc/nodejs/LICENSE"), join(dirname(process.execPath), "../share/doc/node/LICENSE"), "/usr/share/doc/nodejs/LICENSE"].find((p) => existsSync(p));
  if (!nodeLicense) console.warn("build-exe: Node.js's LICENSE was not found beside the Node binary: the copyright file points to it instead");
  const license = nodeLicense ? readFileSync(nodeLicense, "utf8") : `Node.js ${process.version}'s LICENSE: https://raw.githubusercontent.com/nodejs/node/${process.version}/LICENSE\n`;
  writeFileSync(at(`${doc}/copyright`), `${readFileSync(join(debian, "copyright"), "utf8")}\n----- Node.js ${process.version}'s LICENSE -----\n\n${license}`);
  const changelog = readFileSync(join(debian, "changelog"), "utf8");
  const logged = /^dockwall \(([^)]+)\)/.exec(changelog)?.[1];
  if (logged !== pkg.version) console.warn(`build-exe: packaging/debian/changelog's last entry is ${logged}, package.json says ${pkg.version}: add an entry`);
  writeFileSync(at(`${doc}/changelog.Debian.gz`), gzipSync(changelog, { level: 9 }));
  writeFileSync(at(`${doc}/README.md.gz`), gzipSync(readFileSync(join(root, "README.md")), { level: 9 }));
  // The examples (the unit is installed above, pointing at /usr/bin/dockwall: not twice).
  cpSync(join(root, "examples"), at(`${doc}/examples`), { recursive: true, filter: (p) => p !== join(root, "examples/systemd") });
  // The man pages, when scripts/man.mjs is there to write them.
  const man = join(root, "scripts/man.mjs");
  if (existsSync(man)) {
    const pages = join(out, "man");
    rmSync(pages, { recursive: true, force: true });
    // The pages from the --help of the executable being packaged.
    run(process.execPath, [man, "--out", pages, "--cli", exe], { cwd: root });
    for (const [page, section] of [["dockwall.1", 1], ["dockwall.dw.5", 5]]) {
      writeFileSync(at(`usr/share/man/man${section}/${page}.gz`), gzipSync(readFileSync(join(pages, page)), { level: 9 }));
    }
  } else {
    console.warn("build-exe: scripts/man.mjs is not there: the package has no man pages");
  }
  // Files 0644 and directories 0755, whatever the checkout's umask made them.
  (function modes(dir) {
    chmodSync(dir, 0o755);
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) modes(p);
      else if (p !== join(tree, "usr/bin/dockwall")) chmodSync(p, 0o644);
    }
  })(tree);
  // DEBIAN/: control (with the version and the installed size filled in), the maintainer scripts.
  const installedKb = Math.ceil(Number(run("du", ["-sk", "--apparent-size", tree]).split(/\s/)[0]));
  const control = readFileSync(join(debian, "control"), "utf8")
    .replace("@VERSION@", pkg.version)
    .replace("@INSTALLED_SIZE@", String(installedKb))
    .replace("@SHLIBS_DEPENDS@", sharedLibraries());
  writeFileSync(at("DEBIAN/control"), control);
  for (const f of readdirSync(debian)) {
    if (["postinst", "prerm", "postrm", "preinst"].includes(f)) {
      copyFileSync(join(debian, f), at(`DEBIAN/${f}`));
      chmodSync(join(tree, `DEBIAN/${f}`), 0o755);
    } else if (f === "conffiles") {
      copyFileSync(join(debian, f), at(`DEBIAN/${f}`));
    }
  }
  // DEBIAN/md5sums, as debhelper writes it (dpkg --verify, debsums).
  const files = [];
  (function list(dir) {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (p !== join(tree, "DEBIAN")) list(p);
      } else files.push(relative(tree, p));
    }
  })(tree);
  writeFileSync(at("DEBIAN/md5sums"), files.sort().map((f) => `${createHash("md5").update(readFileSync(join(tree, f))).digest("hex")}  ${f}\n`).join(""));
  chmodSync(join(tree, "DEBIAN/md5sums"), 0o644);
  chmodSync(join(tree, "DEBIAN"), 0o755);
  // xz, Debian's default: about 25 s for this 100 MB (zstd would take 1 s, and make it 11 MB larger).
  run("dpkg-deb", ["--root-owner-group", "-Zxz", "--build", tree, join(out, name)]);
  rmSync(tree, { recursive: true, force: true });
  return `build/${name}`;
}

/**
 * The C libraries the executable (Node's binary) needs, as Debian's packages: dpkg-shlibdeps'
 * answer where dpkg-dev is installed, else what it answered for Node 20.20's binary on Debian 12.
 */
function sharedLibraries() {
  const fallback = "libc6 (>= 2.34), libgcc-s1 (>= 3.4), libstdc++6 (>= 5.2)";
  const tmp = join(out, "shlibdeps");
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, "debian"), { recursive: true });
  writeFileSync(join(tmp, "debian/control"), "Source: dockwall\n\nPackage: dockwall\nArchitecture: any\n");
  const r = spawnSync("dpkg-shlibdeps", ["-O", exe], { cwd: tmp, encoding: "utf8" });
  rmSync(tmp, { recursive: true, force: true });
  const found = r.status === 0 ? /^shlibs:Depends=(.+)$/m.exec(r.stdout)?.[1] : undefined;
  return found ?? fallback;
}
