// The single executable (issue 25: `npm run build:exe`, scripts/build-exe.mjs): build/dockwall
// must do what the npm install (bin/dockwall) does, byte for byte, with no Node on the machine.
// It runs when build/dockwall is there and newer than the sources (DOCKWALL_EXE names another
// executable, e.g. /usr/bin/dockwall), and must run when DOCKWALL_REQUIRE_EXE=1: then a missing
// or broken executable fails instead of skipping. npm test does not build it (about 4 s, and
// 25 s more for the .deb); .ci/run builds both, installs the .deb, and runs this file again.
import { afterAll, describe, expect, test } from "vitest";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("../../", import.meta.url).pathname;
const exe = process.env.DOCKWALL_EXE || join(root, "build/dockwall");
const npmBin = join(root, "bin/dockwall");
const required = process.env.DOCKWALL_REQUIRE_EXE === "1";
const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version as string;

/** stdout, stderr and the exit status: what must be the same from both. */
const outcome = (r: SpawnSyncReturns<string>) => ({ status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, error: r.error?.message });

/** The newest mtime of the sources the executable is built from (src/, templates/, package.json). */
function newestSource(): number {
  let newest = statSync(join(root, "package.json")).mtimeMs;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(root, "src"));
  walk(join(root, "templates"));
  return newest;
}
// npm test does not rebuild build/: an executable older than the sources is skipped (it would
// differ from bin/dockwall for no fault of its own), unless DOCKWALL_REQUIRE_EXE=1.
const stale = existsSync(exe) && !process.env.DOCKWALL_EXE && statSync(exe).mtimeMs < newestSource();

describe.skipIf(!required && (!existsSync(exe) || stale))(`the single executable (${exe})`, () => {
  const dir = mkdtempSync(join(tmpdir(), "dockwall-exe-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** No Node anywhere on PATH: only a `node` that leaves a mark if anything runs it. */
  const noNode = join(dir, "path");
  const mark = join(dir, "node-ran");
  mkdirSync(noNode);
  writeFileSync(join(noNode, "node"), `#!/bin/sh\necho "$@" >> ${mark}\nexit 99\n`);
  chmodSync(join(noNode, "node"), 0o755);
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: "" };
  const both = (args: string[]) => ({
    exe: outcome(spawnSync(exe, args, { encoding: "utf8", cwd: root, env: { ...env, PATH: noNode } })),
    npm: outcome(spawnSync(npmBin, args, { encoding: "utf8", cwd: root, env })),
  });

  test("is there and is an executable, not a script", () => {
    expect(existsSync(exe), `${exe} is missing: npm run build:exe`).toBe(true);
    expect(readFileSync(exe).subarray(0, 4).toString("latin1")).toBe("\x7fELF");
  });

  test("--version and --help: the same as bin/dockwall's", () => {
    for (const args of [["--version"], ["--help"], ["compile", "--help"], ["apply", "--help"], ["watch", "--help"], ["nosuch"]]) {
      const r = both(args);
      expect(r.exe, args.join(" ")).toEqual(r.npm);
    }
    expect(both(["--version"]).exe.stdout).toBe(`${version}\n`);
  });

  const examples = readdirSync(join(root, "examples")).filter((f) => f.endsWith(".dw"));
  test.each(examples.flatMap((f) => (["ferm", "iptables", "ip6tables"] as const).map((format) => [f, format] as const)))(
    "compile examples/%s -f %s: byte for byte bin/dockwall's",
    (file, format) => {
      const r = both(["compile", `examples/${file}`, "-f", format]);
      expect(r.exe.status, r.exe.stderr).toBe(0);
      expect(r.exe).toEqual(r.npm);
    },
  );

  test("check and an error: the same exit status and diagnostics", () => {
    writeFileSync(join(dir, "bad.dw"), "container web { network bridge 172.17.0.300; }\n");
    for (const args of [["check", "examples/web-host.dw"], ["check", join(dir, "bad.dw")], ["compile", join(dir, "bad.dw")]]) {
      const r = both(args);
      expect(r.exe, args.join(" ")).toEqual(r.npm);
    }
  });

  test("runs without Node: none on PATH, and no node run (every example compiled above with PATH holding only a fake node)", () => {
    const r = spawnSync(exe, ["compile", "examples/web-host.dw", "-o", join(dir, "out.ferm")], { encoding: "utf8", cwd: root, env: { PATH: noNode } });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(dir, "out.ferm"), "utf8")).toBe(spawnSync(npmBin, ["compile", "examples/web-host.dw"], { encoding: "utf8", cwd: root, env }).stdout);
    expect(existsSync(mark), `the executable ran node: ${existsSync(mark) ? readFileSync(mark, "utf8") : ""}`).toBe(false);
    // Linked only against the C libraries: no libnode, nothing from a Node installation.
    const ldd = spawnSync("ldd", [exe], { encoding: "utf8" });
    if (ldd.status === 0) {
      expect(ldd.stdout).not.toMatch(/libnode|libv8|libuv|not found/);
    }
  });

  test("started by name from PATH, or by a relative path from elsewhere: the arguments are the command's", () => {
    // Node puts argv[0] again where a script's path would be; the executable takes it out.
    const bin = join(dir, "bin");
    mkdirSync(bin);
    copyFileSync(exe, join(bin, "dockwall"));
    chmodSync(join(bin, "dockwall"), 0o755);
    const byName = spawnSync("dockwall", ["compile", join(root, "examples/web-host.dw"), "-f", "iptables"], { encoding: "utf8", cwd: dir, env: { ...env, PATH: `${bin}:${noNode}` } });
    const relative = spawnSync("./bin/dockwall", ["compile", join(root, "examples/web-host.dw"), "-f", "iptables"], { encoding: "utf8", cwd: dir, env: { ...env, PATH: noNode } });
    const npm = spawnSync(npmBin, ["compile", join(root, "examples/web-host.dw"), "-f", "iptables"], { encoding: "utf8", cwd: dir, env });
    expect(outcome(byName)).toEqual(outcome(npm));
    expect(outcome(relative)).toEqual(outcome(npm));
  });

  const deb = join(root, `build/dockwall_${version}_amd64.deb`);
  test.skipIf(!existsSync(deb) || spawnSync("dpkg-deb", ["--version"]).status !== 0)("the .deb: the executable at /usr/bin/dockwall, the unit starting it, the copyright file", () => {
    const contents = spawnSync("dpkg-deb", ["--contents", deb], { encoding: "utf8" }).stdout;
    for (const f of ["./usr/bin/dockwall", "./lib/systemd/system/dockwall.service", "./usr/share/doc/dockwall/copyright", "./usr/share/doc/dockwall/examples/web-host.dw"]) expect(contents).toContain(` ${f}\n`);
    expect(contents).toMatch(/^-rwxr-xr-x root\/root .* \.\/usr\/bin\/dockwall$/m);
    const control = spawnSync("dpkg-deb", ["--field", deb], { encoding: "utf8" }).stdout;
    expect(control).toContain(`Version: ${version}\n`);
    expect(control).toMatch(/^Depends: .*\biptables\b/m);
    const x = join(dir, "deb");
    expect(spawnSync("dpkg-deb", ["-x", deb, x]).status).toBe(0);
    expect(readFileSync(join(x, "lib/systemd/system/dockwall.service"), "utf8")).toMatch(/^ExecStart=\/usr\/bin\/dockwall watch \/etc\/dockwall\/host\.dw$/m);
    expect(readFileSync(join(x, "usr/bin/dockwall")).equals(readFileSync(exe)), "the packaged executable is this one").toBe(true);
  });

  // When the package is installed (.ci/run: dpkg -i, then this file with DOCKWALL_EXE=/usr/bin/dockwall).
  const unit = "/lib/systemd/system/dockwall.service";
  test.runIf(exe === "/usr/bin/dockwall" && existsSync(unit) && spawnSync("systemd-analyze", ["--version"]).status === 0)("installed: systemd-analyze verify accepts the unit, which starts /usr/bin/dockwall", () => {
    const r = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
    expect(r.stderr.split("\n").filter((l) => l.includes("dockwall.service"))).toEqual([]);
    expect(r.status).toBe(0);
    expect(spawnSync("dpkg-query", ["-W", "-f", "${Status} ${Version}", "dockwall"], { encoding: "utf8" }).stdout).toBe(`install ok installed ${version}`);
  });
});
