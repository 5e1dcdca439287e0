// The single executable (issue 25, `npm run build:exe`: build/dockwall, Node's SEA with a
// start-up snapshot) beside the npm install (bin/dockwall: Node, its flags and dist/'s
// snapshot), side by side in the same rounds (BENCH_ONLY=exe): start-up (--version, --help),
// a small compile (examples/web-host.dw) and a large one (2,000 containers), whole process
// wall time (median) and peak RSS; and the sizes on disk.
//
// The executable reads NODE_EXTRA_CA_CERTS as every Node does at start (bin/dockwall unsets
// it, the executable cannot: it is read before any of dockwall's code runs); when it is set
// here, the executable is measured with and without it.
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { policyOf } from "./generate.js";
import { measureEach, paired, type Command, type Measure, type Rounds } from "./process.js";

export interface ExeCtx {
  root: string;
  dir: string;
  /** bin/dockwall */
  bin: string;
  runs: number;
  maxSteal: number;
  noted: (what: string, r: Rounds) => void;
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
const fmt = (m: Measure | undefined) => (m ? `${m.medianMs.toFixed(0)} ms, ${(m.peakKb / 1024).toFixed(0)} MB` : "n/a");

/** The section's lines (printed by bench/run.ts). */
export function benchExe(ctx: ExeCtx): string[] {
  const exe = process.env.BENCH_EXE || join(ctx.root, "build/dockwall");
  if (!existsSync(exe)) return [`single executable: not measured (${exe} is missing: npm run build:exe)`];
  const withCa = Boolean(process.env.NODE_EXTRA_CA_CERTS);
  const big = join(ctx.dir, "exe-p2000.dw");
  writeFileSync(big, policyOf({ containers: 2000, hostRules: 500 }));
  const cases: [string, string[]][] = [
    ["`--version`", ["--version"]],
    ["`--help`", ["--help"]],
    ["compile examples/web-host.dw", ["compile", join(ctx.root, "examples/web-host.dw")]],
    ["compile, 2,000 containers", ["compile", big]],
  ];
  const rows: string[][] = [];
  for (const [what, args] of cases) {
    const commands: Record<string, Command> = { npm: { argv: [ctx.bin, ...args] }, exe: { argv: [exe, ...args] } };
    if (withCa) commands.exeClean = { argv: ["env", "-u", "NODE_EXTRA_CA_CERTS", exe, ...args] };
    const m = measureEach(commands, { runs: ctx.runs, maxSteal: ctx.maxSteal });
    ctx.noted(`exe ${what}`, m.rounds);
    const by = m.by;
    const vs = (a: Measure) => `${paired(a, by.npm!).ratio.toFixed(2)}×`;
    rows.push([what, fmt(by.npm), fmt(by.exe), vs(by.exe!), ...(withCa ? [fmt(by.exeClean), vs(by.exeClean!)] : []), `${m.rounds.quiet}${m.rounds.contended ? " (NOT QUIET)" : ""}`]);
  }
  const header = [
    "command",
    "npm install (bin/dockwall)",
    `single executable${withCa ? " (NODE_EXTRA_CA_CERTS set)" : ""}`,
    "npm / exe",
    ...(withCa ? ["single executable, NODE_EXTRA_CA_CERTS unset", "npm / exe"] : []),
    "rounds",
  ];
  const deb = readdirSync(join(exe, "..")).find((f) => /^dockwall_.*_amd64\.deb$/.test(f));
  const dist = ["dockwall.cjs", "dockwall.blob"].reduce((n, f) => n + (existsSync(join(ctx.root, "dist", f)) ? statSync(join(ctx.root, "dist", f)).size : 0), 0);
  return [
    `single executable (${exe}) beside the npm install (bin/dockwall), in the same rounds: median wall time of the whole process, peak RSS; npm / exe above 1: the executable was faster:`,
    [header, header.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n"),
    `sizes: the executable ${mb(statSync(exe).size)} (Node ${process.version}'s binary ${mb(statSync(process.execPath).size)} + the bundle and its snapshot)` +
      (deb ? `, its .deb ${mb(statSync(join(exe, "..", deb)).size)} (${deb})` : ", no .deb built") +
      `; the npm install needs Node itself plus dist/ (${mb(dist)}: the bundle and its snapshot)`,
  ];
}
