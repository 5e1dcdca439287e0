// apply and watch know each other. A running `dockwall watch` says so in the state directory
// (watch.json: its pid and its policy file). An apply of that same file tells it to read the
// file again (SIGHUP) once the new rules stay: at once, or when `dockwall confirm` keeps
// them. An apply of another file is undone by the watcher at the next Docker event: apply says
// so. While an apply waits for confirmation the watcher loads nothing (pending.json), so it
// neither undoes the apply nor fights its rollback; a rollback leaves the watcher's policy as
// it was, which is the policy rolled back to. Once the apply stays, a `rollback` the watcher would
// undo (its file says another policy) is refused (command.ts, watcherUndoes).
import { createHash } from "node:crypto";
import type { SystemIo } from "./command.js";

export interface WatchRecord {
  pid: number;
  /** The policy file it keeps, as an absolute path. */
  policy: string;
  /** ms since the epoch */
  started: number;
  /** The policy it keeps now (policyHash of its text): rollback holds it against the policy it rolls back to. */
  kept?: string;
}

/** A policy's text, as watch.json names the one a watcher keeps. */
export function policyHash(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

const FILE = "watch.json";

export function announceWatch(io: SystemIo, rec: WatchRecord): void {
  io.writeFile(`${io.stateDir}/${FILE}`, JSON.stringify(rec, null, 2) + "\n");
}

/** At the watcher's exit: its record goes, unless another watcher's replaced it. */
export function endWatch(io: SystemIo, pid: number): void {
  if (runningWatcherRecord(io)?.pid === pid) io.removeFile(`${io.stateDir}/${FILE}`);
}

function runningWatcherRecord(io: SystemIo): WatchRecord | undefined {
  const text = io.readFile(`${io.stateDir}/${FILE}`);
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as WatchRecord;
    return Number.isInteger(r.pid) && typeof r.policy === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}

/** The watcher that runs now (its process is there), if any. */
export function runningWatcher(io: SystemIo): WatchRecord | undefined {
  const r = runningWatcherRecord(io);
  return r && io.signal(r.pid, 0) ? r : undefined;
}

/**
 * After the rules of `policy` (an absolute path; undefined: standard input) are in place for
 * good: tell a watcher of the same file to read it again; say what a watcher of another file
 * will do. Returns what to say, or undefined when no watcher runs.
 */
export function tellWatcher(io: SystemIo, policy: string | undefined): string | undefined {
  const w = runningWatcher(io);
  if (!w) return undefined;
  if (policy !== undefined && w.policy === policy) {
    return io.signal(w.pid, "SIGHUP")
      ? `told the watcher (pid ${w.pid}) to read ${policy} again`
      : `warning: could not tell the watcher (pid ${w.pid}) to read ${policy} again: reload it (systemctl reload dockwall), or it keeps the rules of the policy it read last`;
  }
  return (
    `warning: a watcher (pid ${w.pid}) keeps ${w.policy}: at the next Docker event it puts that policy's rules back in place of these. ` +
    `Apply ${w.policy} itself, or point the watcher at ${policy ?? "this policy's file"} and reload it`
  );
}
