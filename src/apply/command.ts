// `dockwall apply`, `confirm` and `rollback`: deploy the compiled rules into the network
// namespace dockwall runs in, safely.
//  - Save what is loaded (iptables-save, ip6tables-save), kept as rollback.v4/.v6 in the
//    state directory; test the new tables (iptables-restore --test); load IPv4, then IPv6;
//    when any part fails, put both back exactly as they were.
//  - Other tools' chains, and their jumps, are kept (merge.ts).
//  - The lockout guard (guard.ts) refuses rules that would not accept the SSH session's next
//    connection, unless --force.
//  - --confirm SECONDS: a detached `dockwall rollback --after SECONDS --token T` restores the
//    saved rules unless `dockwall confirm` (or "yes" on the terminal) comes first; it does not
//    depend on the terminal or the SSH session staying open.
import type { CompileResult } from "../compile.js";
import { isWholeSave, parseSave, SaveSyntaxError, toRuleset, type SavedRuleset } from "../live/save.js";
import { BUILTIN_CHAINS, type Table } from "../ir/ruleset.js";
import { reconcileStep } from "../watch/reconcile.js";
import { lockout, parseIpAddr, sshPacket } from "./guard.js";
import { fermKeep, type HostsInput } from "./merge.js";
import type { Diagnostic } from "../diagnostics.js";

export interface SystemIo {
  /** Runs a program; returns its stdout, throws an Error whose message has its stderr. */
  run: (cmd: string, args: string[], input?: string) => string;
  /** The same without blocking (watch reads the kernel while it reads Docker's facts). */
  runAsync: (cmd: string, args: string[]) => Promise<string>;
  env: Record<string, string | undefined>;
  /** Where apply keeps the saved rules and the pending confirmation. */
  stateDir: string;
  readFile: (path: string) => string | undefined;
  /** Whole or not at all. */
  writeFile: (path: string, text: string) => void;
  removeFile: (path: string) => void;
  /** Atomic; false when `from` is gone (someone else took it). */
  rename: (from: string, to: string) => boolean;
  /** Starts `dockwall ARGS…` in a new session, not waited for, that outlives this process; rejects when it cannot be started. */
  spawnDockwall: (args: string[]) => Promise<void>;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** A line typed on the terminal within `ms`, or undefined (no terminal, or nothing typed). */
  readLine: (ms: number) => Promise<string | undefined>;
  stdinIsTTY: boolean;
}

export interface ApplyOptions {
  confirm?: number;
  force: boolean;
  policyName: string;
  /** The saves of what is loaded, started earlier (startSaves); apply starts them itself otherwise. */
  saves?: Saves;
}

export type Saves = Record<4 | 6, Promise<{ text: string } | { error: unknown }>>;

/** What is loaded, read by iptables-save / ip6tables-save beside this process; rejects when it fails or its output was cut short. */
export async function saveOf(io: SystemIo, f: 4 | 6): Promise<string> {
  const text = await io.runAsync(tool(f, "save"), []);
  // iptables-save exits 0 even when it could not write all of its output (a full disk).
  if (!isWholeSave(text)) throw new Error(`${tool(f, "save")}'s output was cut short (no COMMIT after the last table: a full disk?)`);
  return text;
}

/** Both saves, started now, read when awaited; a failure is a value, never an unhandled rejection. */
export function startSaves(io: SystemIo): Saves {
  const save = (f: 4 | 6) => saveOf(io, f).then((text) => ({ text }), (error: unknown) => ({ error }));
  return { 4: save(4), 6: save(6) };
}

const EXIT = { ok: 0, error: 2, rolledBack: 3 } as const;

interface Pending {
  token: string;
  /** ms since the epoch */
  created: number;
  deadline: number;
  policy: string;
  families: (4 | 6)[];
}

const path = (io: SystemIo, name: string) => `${io.stateDir}/${name}`;
const tool = (f: 4 | 6, what: "save" | "restore") => `${f === 4 ? "iptables" : "ip6tables"}-${what}`;
const when = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

function readPending(io: SystemIo): Pending | undefined {
  const text = io.readFile(path(io, "pending.json"));
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as Pending;
  } catch {
    return undefined;
  }
}

/** What to say about an apply that waits for confirmation (or whose rollback never ran). */
function pendingMessage(io: SystemIo, p: Pending): string {
  const left = p.deadline - io.now();
  return left > 0
    ? `the apply of ${when(p.created)} (${p.policy}) waits for confirmation until ${when(p.deadline)}: 'dockwall confirm' keeps its rules, 'dockwall rollback' puts back the ones from before it; otherwise they are put back then`
    : `the apply of ${when(p.created)} (${p.policy}) was never confirmed, and its rollback (due ${when(p.deadline)}) did not run: 'dockwall rollback' puts back the rules from before it, 'dockwall confirm' keeps them`;
}

/** Every table the text has, plus empty ones for the tables the new rules created: put back exactly. */
export function rollbackText(saved: string, touched: string[]): string {
  const have = new Set(parseSave(saved).keys());
  const empty = touched
    .filter((t) => !have.has(t))
    .map((t) => [`*${t}`, ...BUILTIN_CHAINS[t as Table["name"]].map((c) => `:${c} ACCEPT [0:0]`), "COMMIT"].join("\n") + "\n");
  return saved + empty.join("");
}

export function tablesOf(text: string): string[] {
  return [...text.matchAll(/^\*(\S+)/gm)].map((m) => m[1]!);
}

/** Loads what was saved before the last apply; returns what failed, if anything. */
function restoreSaved(io: SystemIo, families: (4 | 6)[]): string[] {
  const failed: string[] = [];
  for (const f of families) {
    const saved = io.readFile(path(io, `rollback.v${f}`));
    if (saved === undefined) continue;
    const touched = (io.readFile(path(io, `touched.v${f}`)) ?? "").split("\n").filter(Boolean);
    try {
      io.run(tool(f, "restore"), [], rollbackText(saved, touched));
    } catch (e) {
      failed.push(`${tool(f, "restore")}: ${firstLine(e)}`);
    }
  }
  return failed;
}

function firstLine(e: unknown): string {
  return ((e as Error).message ?? String(e)).trim().split("\n").filter((l) => !/^Command failed/.test(l))[0] ?? String(e);
}

export async function runApply(io: SystemIo, out: { stdout: (s: string) => void; stderr: (s: string) => void }, compiled: CompileResult, opts: ApplyOptions): Promise<number | Diagnostic> {
  const say = (s: string) => out.stderr(`dockwall: ${s}\n`);
  const pending = readPending(io);
  if (pending) {
    say(`not applied: ${pendingMessage(io, pending)}`);
    return EXIT.error;
  }
  const generated = compiled.generated!;
  const policy = compiled.policy!;
  const families = ([4, 6] as const).filter((f) => generated.rulesets[f]!.tables.length > 0);

  // Save what is loaded now, both families, whatever the new rules touch (the CLI starts the
  // saves before it compiles, so that they run beside the compile).
  const saves = opts.saves ?? startSaves(io);
  const before: Partial<Record<4 | 6, string>> = {};
  for (const f of [4, 6] as const) {
    try {
      const got = await saves[f];
      if ("error" in got) throw got.error;
      before[f] = got.text;
    } catch (e) {
      if (families.includes(f)) {
        const why = firstLine(e);
        say(`not applied: cannot save the loaded rules with ${tool(f, "save")}: ${why}${/root/.test(why) ? "" : " (run as root)"}`);
        return EXIT.error;
      }
    }
  }
  // The other backend's tables filter packets too: say so (apply neither sees nor changes them).
  const other = ([4, 6] as const).filter((f) => /^# Warning: ip6?tables-legacy tables present/m.test(before[f] ?? ""));
  if (other.length) say(`warning: ${other.map((f) => (f === 4 ? "iptables-legacy" : "ip6tables-legacy")).join(" and ")} tables are loaded too (${other.map((f) => `${f === 4 ? "iptables" : "ip6tables"}-legacy-save`).join(", ")} shows them): the kernel filters packets through them as well, and apply neither sees nor changes them (nor does its lockout guard)`);
  // What to load: only what differs from what is loaded (iptables-restore --noflush), with
  // other tools' chains and jumps kept; a re-apply of the same rules loads nothing.
  const steps: Partial<Record<4 | 6, string>> = {};
  const kept: string[] = [];
  const afters: Partial<Record<4 | 6, SavedRuleset>> = {};
  for (const f of families) {
    try {
      const step = reconcileStep(parseSave(before[f] ?? ""), generated.rulesets[f]!, { ownsInput: policy.host !== undefined });
      steps[f] = step.text;
      afters[f] = step.after;
      kept.push(...step.kept.map((k) => `${f === 4 ? "ip" : "ip6"} ${k}`));
    } catch (e) {
      if (e instanceof SaveSyntaxError) {
        say(`not applied: cannot read what ${tool(f, "save")} printed: ${e.message}`);
        return EXIT.error;
      }
      throw e;
    }
  }
  // The lockout guard, before anything is touched: the session's next connection walked through
  // what the kernel will hold (other tools' chains and, with iptables on, Docker's own included).
  const ssh = io.env.SSH_CONNECTION;
  if (ssh && !opts.force) {
    let addrs;
    try {
      addrs = parseIpAddr(io.run("ip", ["-o", "addr", "show"]));
    } catch (e) {
      say(`not applied: cannot list the host's addresses for the lockout guard (${firstLine(e)}); --force applies without it`);
      return EXIT.error;
    }
    const pk = sshPacket(ssh, addrs);
    if (typeof pk === "string") {
      say(`not applied: the lockout guard cannot check your SSH session: ${pk}; --force applies without it`);
      return EXIT.error;
    }
    const d = lockout(policy, afters[pk.family] ? toRuleset(afters[pk.family]!, pk.family) : undefined, pk);
    if (d) return d;
  }

  const changing = families.filter((f) => steps[f]);
  // Test every change before loading any: most refusals are caught with nothing changed.
  for (const f of changing) {
    try {
      io.run(tool(f, "restore"), ["--test", "--noflush"], steps[f]);
    } catch (e) {
      say(`not applied: ${tool(f, "restore")} --test refused the IPv${f} rules: ${firstLine(e)}; nothing was changed`);
      return EXIT.error;
    }
  }
  // Kept for rollback: what was loaded before the last apply that changed something.
  for (const f of changing.length ? ([4, 6] as const) : []) {
    if (before[f] === undefined) continue;
    io.writeFile(path(io, `rollback.v${f}`), before[f]!);
    io.writeFile(path(io, `touched.v${f}`), (steps[f] ? tablesOf(steps[f]!) : []).join("\n") + "\n");
  }
  // Load: IPv4, then IPv6; a failure puts both back.
  const loaded: (4 | 6)[] = [];
  for (const f of changing) {
    try {
      io.run(tool(f, "restore"), ["--noflush"], steps[f]);
      loaded.push(f);
    } catch (e) {
      const failed = restoreSaved(io, [...loaded, f]);
      say(`not applied: ${tool(f, "restore")} refused the IPv${f} rules: ${firstLine(e)}`);
      if (failed.length) say(`AND putting back the rules from before failed: ${failed.join("; ")}. They are in ${io.stateDir}/rollback.v4 and rollback.v6: load them with iptables-restore / ip6tables-restore`);
      else say(`the IPv4 and IPv6 rules from before are back in place`);
      return EXIT.error;
    }
  }
  if (changing.length === 0) {
    say(`applied ${opts.policyName}: nothing to change, the loaded rules are what it says${kept.length ? `; other tools' chains kept: ${kept.join(", ")}` : ""}`);
    return opts.confirm === undefined ? EXIT.ok : confirmOrRollBack(io, say, opts, families);
  }
  const what = changing.map((f) => `IPv${f}`).join(" and ");
  say(`applied ${opts.policyName}: ${what}${kept.length ? `; other tools' chains kept: ${kept.join(", ")}` : ""}`);

  if (opts.confirm === undefined) return EXIT.ok;
  return confirmOrRollBack(io, say, opts, families);
}

async function confirmOrRollBack(io: SystemIo, say: (s: string) => void, opts: ApplyOptions, families: (4 | 6)[]): Promise<number> {
  const seconds = opts.confirm!;
  const token = `${io.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const created = io.now();
  const p: Pending = { token, created, deadline: created + seconds * 1000, policy: opts.policyName, families };
  io.writeFile(path(io, "pending.json"), JSON.stringify(p, null, 2) + "\n");
  // The rollback runs on its own: a dropped SSH session (or a killed apply) cannot stop it.
  try {
    await io.spawnDockwall(["rollback", "--after", String(seconds), "--token", token]);
  } catch (e) {
    // Without its own rollback the wait would depend on this process: put the rules back now.
    settle(io, token, "rolled back");
    const failed = ((await outcomeOf(io, token)) ?? "").split("\n")[1];
    say(`cannot start the rollback that --confirm needs (${firstLine(e)}): ${failed ? `putting the rules from before back FAILED: ${failed}` : "the rules from before are back in place"}`);
    return EXIT.error;
  }
  say(`keep the new rules? Type 'yes' within ${seconds} s, or run 'dockwall confirm' from another shell; otherwise the rules from before are put back`);
  while (io.now() < p.deadline) {
    const left = p.deadline - io.now();
    const line = io.stdinIsTTY ? await io.readLine(Math.min(left, 500)) : (await io.sleep(Math.min(left, 200)), undefined);
    if (line !== undefined && /^\s*y(es)?\s*$/i.test(line)) settle(io, token, "confirmed");
    if (readPending(io)?.token !== token) break;
  }
  // Our own deadline: roll back here too; whoever takes the pending apply first settles it.
  if (readPending(io)?.token === token) settle(io, token, "rolled back");
  return outcome(io, say, token);
}

/** Waits (briefly) for whoever took the pending apply to say how it ended. */
async function outcomeOf(io: SystemIo, token: string): Promise<string | undefined> {
  for (let i = 0; i < 300; i++) {
    const text = io.readFile(path(io, `outcome.${token}`));
    if (text !== undefined) {
      io.removeFile(path(io, `outcome.${token}`));
      return text;
    }
    await io.sleep(100);
  }
  return undefined;
}

async function outcome(io: SystemIo, say: (s: string) => void, token: string): Promise<number> {
  const text = await outcomeOf(io, token);
  if (text === undefined) {
    say(`cannot tell how the apply ended: neither 'dockwall confirm' nor the rollback said so in 30 s (see ${io.stateDir})`);
    return EXIT.error;
  }
  const [how, failed] = text.split("\n");
  if (how === "confirmed") {
    say(`confirmed: the new rules stay`);
    return EXIT.ok;
  }
  say(failed ? `not confirmed; putting the rules from before back FAILED: ${failed}` : `not confirmed in time: the rules from before are back in place`);
  return failed ? EXIT.error : EXIT.rolledBack;
}

/**
 * Ends the pending apply `token` (if it still waits): confirmed, or rolled back to the saved
 * rules. Taking pending.json is one rename, so of a confirm, the rollback timer and apply's
 * own deadline only one settles it. Its outcome is left in outcome.TOKEN for apply to read.
 */
function settle(io: SystemIo, token: string | undefined, how: "confirmed" | "rolled back"): Pending | undefined {
  const p = readPending(io);
  if (!p || (token !== undefined && p.token !== token)) return undefined;
  const claimed = path(io, `settling.${p.token}`);
  if (!io.rename(path(io, "pending.json"), claimed)) return undefined;
  const failed = how === "rolled back" ? restoreSaved(io, p.families.length ? [4, 6] : [4, 6]) : [];
  io.writeFile(path(io, `outcome.${p.token}`), `${how}\n${failed.join("; ")}\n`);
  io.removeFile(claimed);
  return p;
}

/** `dockwall confirm`: keep the rules of the apply that waits. */
export function runConfirm(io: SystemIo, say: (s: string) => void): number {
  const p = readPending(io) && settle(io, undefined, "confirmed");
  if (!p) {
    say(`no apply waits for confirmation`);
    return EXIT.error;
  }
  say(`confirmed the apply of ${when(p.created)} (${p.policy}): its rules stay`);
  return EXIT.ok;
}

/** `dockwall rollback [--after S --token T]`: put back the rules saved by the last apply. */
export async function runRollback(io: SystemIo, say: (s: string) => void, after?: number, token?: string): Promise<number> {
  if (after !== undefined) {
    // The timer of apply --confirm: wait, then roll back unless confirmed meanwhile.
    const p = readPending(io);
    const deadline = p && p.token === token ? p.deadline : io.now() + after * 1000;
    while (io.now() < deadline && readPending(io)?.token === token) await io.sleep(Math.min(deadline - io.now(), 200));
    settle(io, token, "rolled back");
    return EXIT.ok;
  }
  const p = readPending(io) && settle(io, undefined, "rolled back");
  if (p) {
    const text = io.readFile(path(io, `outcome.${p.token}`)) ?? "";
    io.removeFile(path(io, `outcome.${p.token}`));
    const failed = text.split("\n")[1];
    if (failed) {
      say(`putting back the saved rules failed: ${failed}`);
      return EXIT.error;
    }
  } else {
    if (io.readFile(path(io, "rollback.v4")) === undefined && io.readFile(path(io, "rollback.v6")) === undefined) {
      say(`nothing to roll back: no apply saved rules in ${io.stateDir}`);
      return EXIT.error;
    }
    const failed = restoreSaved(io, [4, 6]);
    if (failed.length) {
      say(`putting back the saved rules failed: ${failed.join("; ")}`);
      return EXIT.error;
    }
  }
  say(`the rules from before the last apply are back in place`);
  return EXIT.ok;
}

/**
 * `dockwall ferm-keep ip|ip6 [TABLE:CHAIN,CHAIN …]`: what ferm must keep of other tools (their
 * chains, their jumps from the built-in chains listed), read from the kernel now, in ferm's
 * syntax. The ferm.conf dockwall writes includes it (`@include "…|"`); ferm stops if it fails.
 */
export function runFermKeep(io: SystemIo, out: { stdout: (s: string) => void; stderr: (s: string) => void }, domain: string, chains: string[], opts: { hostsInput?: HostsInput } = {}): number {
  const say = (s: string) => out.stderr(`dockwall: ${s}\n`);
  const family = domain === "ip" ? 4 : domain === "ip6" ? 6 : undefined;
  if (!family) {
    say(`ferm-keep takes ferm's domain, ip or ip6, not '${domain}'`);
    return EXIT.error;
  }
  const writes: Record<string, string[]> = {};
  for (const arg of chains) {
    const m = /^(raw|mangle|nat|filter):((?:[A-Z]+(?:,[A-Z]+)*)?)$/.exec(arg);
    const bad = m?.[2]!.split(",").find((c) => c && !BUILTIN_CHAINS[m[1] as Table["name"]].includes(c));
    if (!m || bad) {
      say(`'${arg}' is not TABLE:[CHAIN,…], a table and the built-in chains written there (filter:INPUT,FORWARD; nat:)`);
      return EXIT.error;
    }
    writes[m[1]!] = [...(writes[m[1]!] ?? []), ...m[2]!.split(",").filter(Boolean)];
  }
  // The tables ferm resets are those its save tool reads: ferm prefers the -legacy tools where
  // they are installed, and so does this.
  const legacy = `${family === 4 ? "iptables" : "ip6tables"}-legacy-save`;
  let saved;
  let used = legacy;
  try {
    let text: string;
    try {
      text = io.run(legacy, []);
    } catch (e) {
      if (!/ENOENT|not found/.test((e as Error).message)) throw e;
      used = tool(family, "save");
      text = io.run(used, []);
    }
    saved = parseSave(text);
  } catch (e) {
    const why = e instanceof SaveSyntaxError ? `${used} printed ${e.message}` : firstLine(e);
    if (opts.hostsInput) {
      // INPUT is the host's: loading without it would replace its rules with none.
      say(`cannot read the loaded rules (${why}): ferm must not load, INPUT's rules would be lost`);
      return EXIT.error;
    }
    // ferm then loads without keeping anything, as without dockwall: at boot, stopping ferm would leave the host open.
    say(`cannot read the loaded rules (${why}): ferm loads without keeping other tools' chains`);
    return EXIT.ok;
  }
  const kept = fermKeep(saved, writes, { ...opts, family });
  if (kept.problems.length) {
    // ferm stops on a failed @include: the rules in place stay, none of them lost.
    for (const p of kept.problems) say(`cannot keep ${p}`);
    say(`ferm must not load: it would drop ${kept.problems.length === 1 ? "that rule" : "those rules"}. ${opts.hostsInput ? "Give the policy a host block (dockwall then writes INPUT), or remove the rule" : "Remove the rule"}, or deploy with 'dockwall apply', which keeps any rule`);
    return EXIT.error;
  }
  out.stdout(kept.text ? `# other tools' chains and their jumps, as the kernel had them (dockwall ferm-keep)\n${kept.text}` : "");
  return EXIT.ok;
}
