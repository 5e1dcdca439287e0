// The installed command's exit code depends on what it found, never on where its output goes:
// a reader that closed standard output or standard error early (`2>&1 | true`, `| head`) gets
// the same exit code as one that read everything.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { root } from "../support/policies.js";

const good = `docker { version 20.10; userland-proxy off; }\nzone lan { interface eth1; }\ncontainer web { network bridge 172.17.0.2; publish 8080:80; }\nallow lan to web:8080;\n`;
const warns = `docker { userland-proxy off; }\n`; // no version: one warning
const bad = `docker { version 20.10; }\ncontainer web { network bridge 172.17.0.300; }\n`;

type Closed = "stdout" | "stderr" | "both" | "none";

/** Runs bin/dockwall with its stdout and stderr on pipes, closing our end of `closed` before it writes. */
function runClosed(args: string[], closed: Closed, cwd: string, env: Record<string, string>): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(root, "bin/dockwall"), args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    if (closed === "stdout" || closed === "both") child.stdout.destroy();
    else child.stdout.resume();
    if (closed === "stderr" || closed === "both") child.stderr.destroy();
    else child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stderr }));
  });
}

describe.each([
  ["from the start-up snapshot", {}],
  ["as a plain script (DOCKWALL_NO_SNAPSHOT=1)", { DOCKWALL_NO_SNAPSHOT: "1" }],
])("bin/dockwall %s, with a pipe closed early", (_how, env: Record<string, string>) => {
  const dir = mkdtempSync(join(tmpdir(), "dockwall-pipes-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "good.dw"), good);
  writeFileSync(join(dir, "warns.dw"), warns);
  writeFileSync(join(dir, "bad.dw"), bad);
  writeFileSync(join(dir, "empty.v4"), "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");

  const cases: [args: string[], want: number][] = [
    [["check", "bad.dw"], 2],
    [["compile", "bad.dw"], 2],
    [["check", "warns.dw"], 0],
    [["compile", "warns.dw"], 0],
    [["compile", "good.dw"], 0],
    [["diff", "good.dw", "--live", "empty.v4"], 1],
    [["compile", "nope.dw"], 2],
    [["compile"], 2],
  ];
  for (const closed of ["none", "stderr", "stdout", "both"] as const) {
    test.each(cases)(`${closed} closed: dockwall %j exits %i`, async (args, want) => {
      const r = await runClosed(args, closed, dir, env);
      expect({ code: r.code, signal: r.signal }).toEqual({ code: want, signal: null });
      if (closed === "stdout") expect(r.stderr).not.toMatch(/EPIPE|Error:/);
    });
  }
});
