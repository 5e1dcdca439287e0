// An in-memory Io for running the CLI in process.
import type { Io } from "../../src/cli.js";

export interface MemoryIo extends Io {
  out: string[];
  err: string[];
  files: Map<string, string>;
}

export function memoryIo(files: Record<string, string>, extra: Partial<Io> = {}): MemoryIo {
  const io: MemoryIo = {
    out: [],
    err: [],
    files: new Map(Object.entries(files)),
    stdout: (s) => void io.out.push(s),
    stderr: (s) => void io.err.push(s),
    readFile: (p) => {
      const v = io.files.get(p);
      if (v === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
      return v;
    },
    writeFile: (p, t) => void io.files.set(p, t),
    readStdin: () => io.files.get("-") ?? "",
    runProgram: () => {
      throw new Error("no programs in memory");
    },
    isTTY: false,
    stdoutIsTTY: false,
    dockerVersion: async () => {
      throw new Error("cannot ask dockerd for its version at unix:///var/run/docker.sock: no dockerd is running there");
    },
    dockerFacts: async () => {
      throw new Error("cannot read /version from dockerd at unix:///var/run/docker.sock: no dockerd is listening there (is it running? is DOCKER_HOST right?)");
    },
    system: () => {
      throw new Error("no system in memory");
    },
    dockerEngine: () => {
      throw new Error("no daemon in memory");
    },
    onSignal: () => {},
    ...extra,
  };
  return io;
}
