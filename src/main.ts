// Process entry point: real stdio and files for run().
import { execFileSync } from "node:child_process";
import { readFileSync, renameSync, writeFileSync, unlinkSync } from "node:fs";
import { dirname, basename, join } from "node:path";
import { run } from "./cli.js";

function writeAtomically(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.dockwall-${process.pid}`);
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing to clean */
    }
    throw e;
  }
}

const code = await run(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  readFile: (p) => readFileSync(p, "utf8"),
  writeFile: writeAtomically,
  readStdin: () => readFileSync(0, "utf8"),
  runProgram: (cmd, args) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 30 }),
  isTTY: Boolean(process.stderr.isTTY),
  stdoutIsTTY: Boolean(process.stdout.isTTY),
  dockerVersion: async () => (await import("./dockerapi.js")).dockerVersion(process.env),
});
process.exitCode = code;
