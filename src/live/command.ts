// `dockwall diff`: placeholder until the live-ruleset comparison lands (issue 4).
import type { CompileResult } from "../compile.js";

export interface DiffIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  readFile: (path: string) => string;
  readStdin: () => string;
  /** Runs a program (iptables-save); returns its stdout or throws. */
  runProgram: (cmd: string, args: string[]) => string;
}

export interface DiffOptions {
  live?: string;
  json: boolean;
  all: boolean;
  ignore: string[];
  color: boolean;
}

export async function runDiff(io: DiffIo, _compiled: CompileResult, _opts: DiffOptions): Promise<number> {
  io.stderr("dockwall: diff is not implemented yet\n");
  return 2;
}
