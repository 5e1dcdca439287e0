// Process entry point: real stdio and files for run().
//
// The bundle (dist/dockwall.cjs) runs two ways, and bin/dockwall picks one:
//  - from the start-up snapshot dist/dockwall.blob, built by scripts/bundle.mjs with
//    `node --build-snapshot dist/dockwall.cjs`: this file ran once at build time and ran
//    each command on a sample policy in memory (warmup.ts), and Node resumes from that
//    heap, so a command starts without loading, compiling or setting up any module;
//  - as a plain script, when there is no snapshot for the Node that runs it.
// Nothing that depends on the process (arguments, environment, terminal, working directory)
// may be read at module load: in the snapshot that would be the build's.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, renameSync, statSync, statfsSync, writeFileSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, basename, join, resolve } from "node:path";
import { startupSnapshot } from "node:v8";
import { EXIT, run } from "./cli.js";
import type { SystemIo } from "./apply/command.js";

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
    throw new Error(whyNotWritten(path, e as NodeJS.ErrnoException));
  }
}

/** Why `path` could not be written, in terms of `path` and its directory, never the temporary file beside it. */
function whyNotWritten(path: string, e: NodeJS.ErrnoException): string {
  const dir = dirname(path);
  try {
    if (!statSync(dir).isDirectory()) return `${dir} is not a directory`;
  } catch {
    return `there is no directory ${dir}`;
  }
  try {
    if (statSync(path).isDirectory()) return `it is a directory`;
  } catch {
    /* not there yet */
  }
  const kernel: Record<number, string> = { 0x9fa0: "proc", 0x62656572: "sysfs", 0x1cd1: "devpts", 0x64626720: "debugfs", 0x73636673: "securityfs", 0x27e0eb: "cgroup", 0x63677270: "cgroup2" };
  try {
    const fs = kernel[Number(statfsSync(dir).type)];
    if (fs) return `${dir} is the kernel's ${fs} file system, where no file can be created`;
  } catch {
    /* no statfs: say what the system said */
  }
  // "EACCES: permission denied, open '/etc/.x.dockwall-1'" → "permission denied (in /etc)".
  const cause = /^[A-Z0-9_]+: ([^,]+)/.exec(e.message)?.[1] ?? e.message;
  return `${cause} (in ${dir})`;
}

/** One line from the terminal within `ms` (the listener is set up on first use). */
let lines: string[] | undefined;
let wake: (() => void) | undefined;
function readLine(ms: number): Promise<string | undefined> {
  if (!lines) {
    lines = [];
    let buf = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (c: string) => {
      buf += c;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        lines!.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      wake?.();
    });
  }
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      wake = undefined;
      process.stdin.pause();
      resolve(lines!.shift());
    };
    if (lines!.length) return resolve(lines!.shift());
    const timer = setTimeout(done, ms);
    wake = done;
    process.stdin.resume();
  });
}

/**
 * Runs a program beside this one; its output goes to a temporary file, not a pipe, so that it
 * runs to the end while this process computes (a pipe would stop it at 64 KB until read).
 */
function runAsync(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const file = join(tmpdir(), `dockwall-${process.pid}-${Math.random().toString(36).slice(2)}.out`);
    let fd: number;
    try {
      // A new file of our own, gone from the directory at once: nothing is left behind, whatever happens.
      fd = openSync(file, "wx+", 0o600);
      unlinkSync(file);
    } catch (e) {
      reject(new Error(`cannot make a temporary file in ${tmpdir()}: ${(e as Error).message}`));
      return;
    }
    let stderr = "";
    let settled = false;
    const done = (e?: Error) => {
      if (settled) return;
      settled = true;
      let out = "";
      try {
        // The child wrote through its own copy of the descriptor: read from the start.
        const buf = Buffer.alloc(fstatSync(fd).size);
        let at = 0;
        while (at < buf.length) {
          const n = readSync(fd, buf, at, buf.length - at, at);
          if (n === 0) break;
          at += n;
        }
        out = buf.subarray(0, at).toString("utf8");
      } catch {
        /* nothing written */
      }
      try {
        closeSync(fd);
      } catch {
        /* closed already */
      }
      if (e) reject(new Error(stderr.trim() || e.message));
      else resolve(out);
    };
    const child = spawn(cmd, args, { stdio: ["ignore", fd, "pipe"] });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (e) => done(e));
    child.on("close", (code, signal) => done(code === 0 ? undefined : new Error(`${cmd} exited with ${code ?? signal}`)));
  });
}

/** The pids of the last programs run (SystemIo.ranHere). */
const ran = new Set<number>();
/** The pids of the programs SystemIo.interactive started, until 5 s after each ended (few: one at a time). */
const kept = new Set<number>();

function system(): SystemIo {
  const stateDir = process.env.DOCKWALL_STATE_DIR || "/var/lib/dockwall";
  return {
    run: (cmd, args, input) => {
      const r = spawnSync(cmd, args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"], maxBuffer: 1 << 30 });
      // The kernel names the program behind each change (xtables-monitor): watch knows its own loads by their pid.
      if (r.pid) {
        ran.add(r.pid);
        if (ran.size > 64) ran.delete(ran.values().next().value!);
      }
      // A program that fails before it has read all its input (nft refusing a file) leaves EPIPE here: what it said counts.
      if (r.error && !((r.error as NodeJS.ErrnoException).code === "EPIPE" && r.status !== null && r.status !== 0)) throw new Error(r.error.message);
      if (r.status !== 0) throw new Error(r.stderr?.trim() || `Command failed: ${[cmd, ...args].join(" ")} (exit ${r.status ?? r.signal})`);
      return r.stdout;
    },
    ranHere: (pid) => ran.has(pid) || kept.has(pid),
    runAsync,
    env: process.env,
    stateDir,
    readFile: (p) => {
      try {
        return readFileSync(p, "utf8");
      } catch {
        return undefined;
      }
    },
    writeFile: (p, text) => {
      mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
      writeAtomically(p, text);
    },
    removeFile: (p) => {
      try {
        unlinkSync(p);
      } catch {
        /* gone already */
      }
    },
    rename: (from, to) => {
      try {
        renameSync(from, to);
        return true;
      } catch {
        return false;
      }
    },
    spawnDockwall: (args) =>
      new Promise((resolve, reject) => {
        const self = process.env.DOCKWALL_BIN ?? process.argv[1]!;
        const child = spawn(self, args, { detached: true, stdio: "ignore", env: process.env });
        child.on("error", reject);
        child.on("spawn", () => {
          child.unref();
          resolve();
        });
      }),
    pid: process.pid,
    follow: (cmd, args, onLine) => {
      const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
      let rest = "";
      let err = "";
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop()!;
        for (const l of lines) onLine(l);
      });
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err = (err + chunk).slice(-2000)));
      const done = new Promise<void>((resolve, reject) => {
        child.on("error", reject);
        child.on("close", (code) => (code === 0 || code === null ? resolve() : reject(new Error(`${[cmd, ...args].join(" ")} exited with ${code}${err.trim() ? `: ${err.trim().split("\n")[0]}` : ""}`))));
      });
      return { done, close: () => void child.kill("SIGTERM") };
    },
    interactive: (cmd, args, onErr, onExit, env) => {
      const child = spawn(cmd, args, { stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, ...env } });
      const pid = child.pid;
      if (pid) kept.add(pid);
      child.stderr!.setEncoding("utf8").on("data", onErr);
      let ended = false;
      const end = (why: string) => {
        if (ended) return;
        ended = true;
        // Its last changes may still be reported after it ended; then its pid is no longer its (the kernel gives it again).
        if (pid) setTimeout(() => kept.delete(pid), 5000).unref();
        onExit(why);
      };
      child.on("error", (e) => end(e.message));
      child.on("close", (code, signal) => end(`exit ${code ?? signal}`));
      // A write to a process that is gone: its close says so.
      child.stdin!.on("error", () => {});
      return { pid: child.pid, write: (text) => void child.stdin!.write(text), close: () => void child.kill("SIGKILL") };
    },
    signal: (pid, sig) => {
      try {
        process.kill(pid, sig);
        return true;
      } catch {
        return false;
      }
    },
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    readLine,
    stdinIsTTY: Boolean(process.stdin.isTTY),
  };
}

/** One existing file, by device and inode (symlinks followed, hard links alike); "-" is standard input. */
function sameFile(a: string, b: string): boolean {
  try {
    const sb = statSync(b);
    const sa = a === "-" ? fstatSync(0) : statSync(a);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false; // the output does not exist yet (or the policy does not: reported when it is read)
  }
}

/** The reader of a pipe went away (`| head`, `2>&1 | true`): what it did not read is not an error. */
function readerGone(e: NodeJS.ErrnoException): boolean {
  return e.code === "EPIPE" || e.code === "ERR_STREAM_DESTROYED";
}

function main(args: string[]): void {
  // The exit code says what the command found, never where its output went: a closed pipe on
  // stdout or stderr changes nothing. A stdout that cannot be written otherwise (a full disk)
  // is the tool failing: exit 2.
  let outputFailed = false;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (readerGone(e)) return;
    outputFailed = true;
    process.exitCode = EXIT.error;
    process.stderr.write(`dockwall: cannot write to standard output: ${e.message}\n`);
  });
  // Nowhere is left to report a failing stderr: the diagnostics are lost, the exit code stands.
  process.stderr.on("error", () => {});
  void run(args, {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    readFile: (p) => readFileSync(p, "utf8"),
    writeFile: writeAtomically,
    readStdin: () => readFileSync(0, "utf8"),
    runProgram: (cmd, args) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 30 }),
    isTTY: Boolean(process.stderr.isTTY),
    stdoutIsTTY: Boolean(process.stdout.isTTY),
    dockerVersion: async () => (await import("./facts/engine.js")).dockerVersion(process.env),
    dockerFacts: async () => (await import("./facts/engine.js")).readDaemonFacts(process.env),
    system,
    sameFile,
    realPath: (p) => {
      try {
        return realpathSync(p);
      } catch {
        return resolve(p);
      }
    },
    dockerEngine: () => {
      // The client module is loaded on first use, as for every command (start-up stays fast).
      // The daemon's data root is read for the containers that are starting (watch): their rules go in before they run.
      const engine = import("./facts/engine.js").then(({ Engine, engineEndpoint }) => new Engine(engineEndpoint(process.env), { readDataFile: (p) => readFileSync(p, "utf8") }));
      let ready: import("./facts/engine.js").Engine | undefined;
      void engine.then((e) => (ready = e), () => {});
      let closed = false;
      return {
        facts: async (signal) => {
          const e = await engine;
          return { raw: await e.facts(signal), source: e.endpoint.describe };
        },
        changedFacts: async () => {
          const e = await engine;
          return { raw: await e.changedFacts(), source: e.endpoint.describe };
        },
        forget: (id) => void engine.then((e) => e.forget(id), () => {}),
        connected: (id) => void engine.then((e) => e.connected(id), () => {}),
        notYet: () => ready?.notYet ?? new Map<string, string>(),
        events: (onEvent, onOpen) => {
          let close = () => {};
          const done = engine.then((e) => {
            const s = e.events(onEvent, onOpen);
            close = s.close;
            if (closed) s.close();
            return s.done;
          });
          return { done, close: () => close() };
        },
        close: () => {
          closed = true;
          void engine.then((e) => e.close(), () => {});
        },
      };
    },
    onSignal: (signal, fn) => void process.on(signal, fn),
  }).then(
    (code) => {
      process.exitCode = outputFailed ? EXIT.error : code;
      // The command is done and its output written: exit now. Left to end by itself, Node first
      // waits for the task V8's worker thread is running (an optimising compile or the collector's,
      // whose result no one will use): 20-30 ms after the last write of a big compile or explain
      // (strace). Only when nothing is left unwritten (stdout and stderr are synchronous on Linux
      // for files, pipes and terminals, so this is the usual case).
      if (process.stdout.writableLength === 0 && process.stderr.writableLength === 0) process.exit();
    },
    (e: unknown) => {
      process.exitCode = EXIT.error;
      process.stderr.write(`dockwall: ${e instanceof Error ? e.message : String(e)}\n`);
    },
  );
}

if (startupSnapshot?.isBuildingSnapshot()) {
  // Building the snapshot: run every command once in memory, then resume from here at every start.
  void import("./warmup.js").then(({ warmUp }) => warmUp());
  // With a snapshot there is no script argument: the command's arguments start at argv[1].
  startupSnapshot.setDeserializeMainFunction(() => main(process.argv.slice(1)));
} else {
  main(process.argv.slice(2));
}
