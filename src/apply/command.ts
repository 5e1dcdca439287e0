// `dockwall apply`, `confirm` and `rollback`: deploy the compiled rules into the network
// namespace dockwall runs in, safely.
//  - Save what is loaded (iptables-save, ip6tables-save), kept as rollback.v4/.v6 in the
//    state directory; test the new tables (iptables-restore --test); load IPv4, then IPv6;
//    when any part fails, put both back exactly as they were.
//  - Other tools' chains, and their jumps, are kept (merge.ts).
//  - The lockout guard (guard.ts) refuses rules that would not accept the SSH session's next
//    connection, unless --force.
//  - It keeps the policy it loaded (policy.json), and in rollback.json the one whose rules were
//    in place before it: `dockwall rollback` compiles that one again with Docker's facts as they
//    are now and loads it as apply loads (rollback.ts); never Docker's chains from a snapshot.
//  - --confirm SECONDS: a detached `dockwall rollback --after SECONDS --token T` rolls back
//    unless `dockwall confirm` (or "yes" on the terminal) comes first; it does not depend on
//    the terminal or the SSH session staying open.
import type { CompileResult } from "../compile.js";
import { isWholeSave, parseSave, SaveSyntaxError, toRuleset, type SavedRuleset } from "../live/save.js";
import { BUILTIN_CHAINS, type Table } from "../ir/ruleset.js";
import { reconcileStep, stepTo } from "../watch/reconcile.js";
import { formatReachability, reachabilityOf, type ReachChange } from "../analysis/reach.js";
import { familyDiffs } from "../live/command.js";
import { compileNow, ownedOf, snapshotTarget, type FactsNow, type PolicyRecord, type RollbackState } from "./rollback.js";
import { lockout, sessionPacket } from "./guard.js";
import { fermKeep, hostsInputBefore, inputOf, strandedInput, strandedMessage, strandedWithoutHostBlock, type HostsInput, type InputDrop } from "./merge.js";
import { policyHash, runningWatcher, tellWatcher } from "./watching.js";
import { rollBackNft } from "./nftapply.js";
import { deploy, firstLine } from "./deploy.js";
import { chooseBackends, conflictMessage, holdingsOf, systemBackend, toolOf, type Backend, type Holding } from "../live/backend.js";
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
  /** This process's id. */
  pid: number;
  /** Whether `pid` was one of the last programs `run` ran (watch knows its own loads when the kernel reports them). */
  ranHere?: (pid: number) => boolean;
  /** Runs a program that keeps running, calling `onLine` with each line it prints; `done` ends with it (rejects when it cannot start). */
  follow?: (cmd: string, args: string[], onLine: (line: string) => void) => { done: Promise<void>; close: () => void };
  /**
   * Starts a program that reads its standard input as it comes (`nft -i`), with `env` over this
   * process's environment; its stderr goes to onErr, onExit once it has ended; close() kills it.
   * Its pid counts for ranHere while it runs and for 5 s after.
   */
  interactive?: (cmd: string, args: string[], onErr: (chunk: string) => void, onExit: (why: string) => void, env?: Record<string, string>) => { pid: number | undefined; write: (text: string) => void; close: () => void };
  /** Sends a signal (0: only asks whether the process is there); false when there is no such process. */
  signal: (pid: number, sig: NodeJS.Signals | 0) => boolean;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** A line typed on the terminal within `ms`, or undefined (no terminal, or nothing typed). */
  readLine: (ms: number) => Promise<string | undefined>;
  stdinIsTTY: boolean;
}

export interface ApplyOptions {
  confirm?: number;
  /** With confirm: return once the rules are loaded and the rollback timer runs (report.pending), not waiting for the confirmation. */
  noWait?: boolean;
  /** Everything but the load: what would change, the lockout guard, the restore tools' --test; nothing loaded, nothing written. */
  check?: boolean;
  /** Filled in as apply goes (apply --json). */
  report?: ApplyReport;
  force: boolean;
  policyName: string;
  /** The saves of what is loaded, started earlier (startSaves); apply starts them itself otherwise. */
  saves?: Saves;
  /** The policy being applied, as a later rollback to it compiles it again. */
  record: PolicyRecord;
  /** Docker's facts at the time of a rollback (--confirm). */
  factsNow: FactsNow;
}

/** What an apply did or would do, as apply --json prints it (src/schema/dockwall.schema.json). */
export interface ApplyReport {
  /** What the loaded rules and the compiled ones differ in (dockwall's own comparison): loaded, or with --check to be loaded. */
  changed: boolean;
  families: Partial<Record<"ipv4" | "ipv6", { changed: boolean; diff: string }>>;
  reachability: ReachChange[];
  /** policy: it has errors (diagnostics); input: the command line, the policy file or the facts could not be read. */
  refused: { reason: "policy" | "input" | "pending" | "save" | "conflict" | "read" | "lockout" | "test" | "load" | "confirm"; message: string } | null;
  pending: { token: string; deadline: string; seconds: number } | null;
  outcome: { how: Outcome["how"]; ok: boolean; message: string } | null;
  kept: string[];
  /** apply --format nft: the tables the file replaces, and the diff of them (families is then empty). */
  nft?: { tables: string[]; diff: string };
}

export const emptyReport = (): ApplyReport => ({ changed: false, families: {}, reachability: [], refused: null, pending: null, outcome: null, kept: [] });

/** What is loaded in one family, and the tools of the backend that holds it (live/backend.ts). */
export interface Loaded {
  text: string;
  /** The save and restore tools to use for this family from now on. */
  save: string;
  restore: string;
  /** Both iptables backends hold rules: what the other holds and how to empty it. */
  conflict?: string;
}

export type Saves = Record<4 | 6, Promise<Loaded | { error: unknown }>>;

const missing = (e: unknown) => /ENOENT|not found/.test((e as Error).message ?? "");
/** The system's backend, asked once per machine (`iptables --version`). */
const systemBackends = new WeakMap<SystemIo, Promise<Backend>>();

/**
 * What is loaded, both families, read beside this process: with iptables-nft-save and
 * iptables-legacy-save where both are installed (the kernel filters through both), each
 * family in the backend chooseBackends picks, and a conflict where both hold rules; with the
 * system's iptables-save alone otherwise. A family's entry is an error when its save failed
 * or its output was cut short.
 */
export async function readLoaded(io: SystemIo): Promise<Record<4 | 6, Loaded | { error: unknown }>> {
  const whole = (tool: string, text: string) => {
    // iptables-save exits 0 even when it could not write all of its output (a full disk).
    if (!isWholeSave(text)) throw new Error(`${tool}'s output was cut short (no COMMIT after the last table: a full disk?)`);
    return text;
  };
  type Read = { text?: string; error?: unknown };
  const read = (tool: string): Promise<Read> =>
    io.runAsync(tool, []).then(
      (t) => {
        try {
          return { text: whole(tool, t) };
        } catch (e) {
          return { error: e };
        }
      },
      (e: unknown) => (missing(e) ? {} : { error: e }),
    );
  const reads = await Promise.all(([4, 6] as const).flatMap((f) => (["nft", "legacy"] as const).map((b) => read(toolOf(b, f, "save")))));
  const got = (f: 4 | 6, b: Backend) => reads[(f === 4 ? 0 : 2) + (b === "nft" ? 0 : 1)]!;
  const plain = async (f: 4 | 6): Promise<Loaded | { error: unknown }> => {
    const r = await read(toolOf(undefined, f, "save"));
    if (r.text === undefined) return { error: r.error ?? new Error(`${toolOf(undefined, f, "save")}: not installed`) };
    return { text: r.text, save: toolOf(undefined, f, "save"), restore: toolOf(undefined, f, "restore") };
  };
  // One backend only (an older iptables, or the tools under their plain names).
  if (([4, 6] as const).every((f) => got(f, "nft").text === undefined && got(f, "nft").error === undefined && got(f, "legacy").text === undefined && got(f, "legacy").error === undefined)) {
    const [a, b] = await Promise.all([plain(4), plain(6)]);
    return { 4: a, 6: b };
  }
  let system = systemBackends.get(io);
  if (!system) systemBackends.set(io, (system = io.runAsync("iptables", ["--version"]).then((v) => systemBackend(v) ?? "nft", () => "nft" as const)));
  const held = (f: 4 | 6) => Object.fromEntries((["nft", "legacy"] as const).map((b) => [b, got(f, b).text === undefined ? undefined : holdingsOf(got(f, b).text)])) as Record<Backend, Holding[] | undefined>;
  const choice = chooseBackends({ 4: held(4), 6: held(6) }, await system);
  const out = {} as Record<4 | 6, Loaded | { error: unknown }>;
  for (const f of [4, 6] as const) {
    const use = choice[f].use;
    const r = got(f, use);
    out[f] = r.text === undefined ? { error: r.error ?? new Error(`${toolOf(use, f, "save")}: not installed`) } : { text: r.text, save: toolOf(use, f, "save"), restore: toolOf(use, f, "restore"), conflict: conflictMessage(f, choice[f]) };
  }
  return out;
}

/** Both saves, started now, read when awaited; a failure is a value, never an unhandled rejection. */
export function startSaves(io: SystemIo): Saves {
  const both = readLoaded(io).catch((error: unknown) => ({ 4: { error }, 6: { error } }));
  return { 4: both.then((r) => r[4]), 6: both.then((r) => r[6]) };
}

export const EXIT = { ok: 0, error: 2, rolledBack: 3 } as const;

export interface Pending {
  token: string;
  /** ms since the epoch */
  created: number;
  deadline: number;
  policy: string;
  families: (4 | 6)[];
  /** Rolling it back failed (why): its rules stay, and it still waits for 'dockwall rollback' or 'dockwall confirm'. */
  failed?: string;
  /** apply --no-wait: no apply reads the outcome; a rollback's is kept for 'dockwall confirm --token' to report. */
  noWait?: boolean;
}

/** How a pending apply ended, for the apply that waits (outcome.TOKEN). */
interface Outcome {
  /** "rolled back by hand": 'dockwall rollback' ended the wait before the deadline. */
  how: "confirmed" | "rolled back" | "rolled back by hand";
  ok: boolean;
  /** What the rollback did, or why it did not. */
  said: string;
}

export const path = (io: SystemIo, name: string) => `${io.stateDir}/${name}`;
const tool = (f: 4 | 6, what: "save" | "restore") => `${f === 4 ? "iptables" : "ip6tables"}-${what}`;
const when = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

export function readJson<T>(io: SystemIo, name: string): T | undefined {
  const text = io.readFile(path(io, name));
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

export const readPending = (io: SystemIo) => readJson<Pending>(io, "pending.json");

/**
 * An apply between its load and the state it writes after (policy.json, pending.json), and the
 * signal to a watcher: `applying.json` holds its pid meanwhile. A watcher does not reconcile then
 * (it would put back the rules the apply just loaded, before it can tell they are an apply's).
 */
interface Applying {
  pid: number;
  started: number;
}
/** How long an apply may say it is loading before a watcher stops waiting for it (a stale file of a killed apply). */
const APPLYING_FOR_MS = 30_000;

export function markApplying(io: SystemIo): void {
  io.writeFile(path(io, "applying.json"), JSON.stringify({ pid: io.pid, started: io.now() } satisfies Applying) + "\n");
}

/** The load and what follows it are done (or refused): a watcher may reconcile again. */
export function doneApplying(io: SystemIo): void {
  if (readJson<Applying>(io, "applying.json")?.pid === io.pid) io.removeFile(path(io, "applying.json"));
}

/** What to say of an apply that is loading now (watch waits for it), if one is: its process runs, and it started less than APPLYING_FOR_MS ago. */
export function applyingNow(io: SystemIo): string | undefined {
  const a = readJson<Applying>(io, "applying.json");
  if (!a || typeof a.pid !== "number" || !(io.now() - a.started < APPLYING_FOR_MS) || !io.signal(a.pid, 0)) return undefined;
  return `an apply (pid ${a.pid}) is loading its rules`;
}

/** What to say of an apply that waits for confirmation now (watch loads nothing meanwhile), if one does. */
export function pendingApply(io: SystemIo): string | undefined {
  const p = readPending(io);
  return p ? `the apply of ${when(p.created)} (${p.policy}) waits for confirmation${p.failed ? ", its rollback failed" : ""}` : undefined;
}

/** What to say about an apply that waits for confirmation (or whose rollback never ran). */
export function pendingMessage(io: SystemIo, p: Pending): string {
  const left = p.deadline - io.now();
  if (p.failed) return `the apply of ${when(p.created)} (${p.policy}) was not confirmed, and rolling it back failed: ${p.failed}. Its rules are in place: 'dockwall rollback' tries again, 'dockwall confirm' keeps them`;
  return left > 0
    ? `the apply of ${when(p.created)} (${p.policy}) waits for confirmation until ${when(p.deadline)}: 'dockwall confirm' keeps its rules, 'dockwall rollback' puts back the ones from before it; otherwise they are put back then`
    : `the apply of ${when(p.created)} (${p.policy}) was never confirmed, and its rollback (due ${when(p.deadline)}) did not run: 'dockwall rollback' puts back the rules from before it (then apply again what should stay)`;
}

/** What every apply (iptables or nft) starts with: how it speaks and refuses, and its refusal when another apply waits for confirmation. */
export function applyPrelude(io: SystemIo, out: { stderr: (s: string) => void }, opts: ApplyOptions) {
  const say = (s: string) => out.stderr(`dockwall: ${s}\n`);
  const report = opts.report ?? emptyReport();
  const refuse = (reason: NonNullable<ApplyReport["refused"]>["reason"], said: string) => {
    // --check loads nothing: what it refuses, it says it would.
    const message = opts.check ? said.replace(/^not applied: /, "would not apply: ") : said;
    report.refused ??= { reason, message };
    say(message);
    return EXIT.error;
  };
  const pending = readPending(io);
  return { say, report, refuse, waiting: pending ? refuse("pending", `not applied: ${pendingMessage(io, pending)}`) : undefined };
}

export async function runApply(io: SystemIo, out: { stdout: (s: string) => void; stderr: (s: string) => void }, compiled: CompileResult, opts: ApplyOptions): Promise<number | Diagnostic> {
  const { say, report, refuse, waiting } = applyPrelude(io, out, opts);
  if (waiting !== undefined) return waiting;
  const generated = compiled.generated!;
  const policy = compiled.policy!;
  const families = ([4, 6] as const).filter((f) => generated.rulesets[f]!.tables.length > 0);

  // Save what is loaded now, both families, whatever the new rules touch (the CLI starts the
  // saves before it compiles, so that they run beside the compile).
  const saves = opts.saves ?? startSaves(io);
  const before: Partial<Record<4 | 6, string>> = {};
  // Each family's tools: those of the iptables backend that holds its rules (readLoaded).
  const tools: Record<4 | 6, { save: string; restore: string }> = { 4: { save: tool(4, "save"), restore: tool(4, "restore") }, 6: { save: tool(6, "save"), restore: tool(6, "restore") } };
  const conflicts: string[] = [];
  for (const f of [4, 6] as const) {
    try {
      const got = await saves[f];
      if ("error" in got) throw got.error;
      before[f] = got.text;
      tools[f] = got;
      if (got.conflict) conflicts.push(got.conflict);
    } catch (e) {
      if (families.includes(f)) {
        const why = firstLine(e);
        return refuse("save", `not applied: cannot save the loaded rules with ${tools[f].save}: ${why}${/root/.test(why) ? "" : " (run as root)"}`);
      }
    }
  }
  // Both iptables backends hold rules: what the other holds acts unseen (a stale DNAT there
  // reaches whichever container has the address now). Refused, unless --force.
  if (conflicts.length) {
    for (const c of conflicts) say(`${opts.force ? "warning" : "not applied"}: ${c}`);
    if (!opts.force) {
      const message = `nothing was changed; --force applies anyway, through ${[...new Set(families.map((f) => tools[f].restore))].join(" and ")}`;
      report.refused = { reason: "conflict", message: `not applied: ${conflicts.join("; ")}; ${message}` };
      say(message);
      return EXIT.error;
    }
  }
  // What to load: only what differs from what is loaded (iptables-restore --noflush), with
  // other tools' chains and jumps kept; a re-apply of the same rules loads nothing.
  const steps: Partial<Record<4 | 6, string>> = {};
  const kept: string[] = [];
  const afters: Partial<Record<4 | 6, SavedRuleset>> = {};
  const drops: Partial<Record<4 | 6, InputDrop>> = {};
  for (const f of families) {
    try {
      const live = parseSave(before[f] ?? "");
      const step = reconcileStep(live, generated.rulesets[f]!, { ownsInput: policy.host !== undefined });
      steps[f] = step.text;
      afters[f] = step.after;
      const drop = strandedInput(inputOf(live), inputOf(step.after));
      if (drop) drops[f] = drop;
      kept.push(...step.kept.map((k) => `${f === 4 ? "ip" : "ip6"} ${k}`));
    } catch (e) {
      if (e instanceof SaveSyntaxError) return refuse("read", `not applied: cannot read what ${tools[f].save} printed: ${e.message}`);
      throw e;
    }
  }
  report.changed = families.some((f) => steps[f]);
  report.kept = kept;
  // No host block, over the DROP policy of the one dockwall loaded before: its rules would go and the
  // policy stay, and the host would accept nothing. Refused (a lockout of every session, not only SSH's).
  if (Object.keys(drops).length) {
    if (!opts.force) return refuse("lockout", `not applied: ${strandedMessage(opts.policyName, drops, "then apply again (--force loads it as it is: INPUT keeps its policy and only the host's own rules)")}; nothing was changed`);
    say(`warning: ${strandedMessage(opts.policyName, drops, "then apply again")}; loading it anyway (--force)`);
  }
  // The lockout guard, before anything is touched: the session's next connection walked through
  // what the kernel will hold (other tools' chains and, with iptables on, Docker's own included).
  const ssh = io.env.SSH_CONNECTION;
  if (ssh && !opts.force) {
    const pk = sessionPacket(ssh, io.run, firstLine);
    if ("refused" in pk) return refuse("lockout", pk.refused);
    const d = lockout(policy, afters[pk.family] ? toRuleset(afters[pk.family]!, pk.family) : undefined, pk);
    if (d) {
      report.refused = { reason: "lockout", message: `${opts.check ? "would not apply" : "not applied"}: ${d.message}` };
      return d;
    }
  }

  const changing = families.filter((f) => steps[f]);
  // What the change does to who reaches what, in the policy's words, before anything is loaded (and while --confirm waits, above its prompt).
  if (changing.length) {
    const lives: Partial<Record<4 | 6, SavedRuleset>> = {};
    for (const f of changing) lives[f] = parseSave(before[f] ?? "");
    const reach = reachabilityOf(compiled, lives, { policyName: opts.policyName, policyText: opts.record.text });
    report.reachability = reach.changes;
    const text = formatReachability(reach.changes);
    if (text) out.stderr(text);
    else if (reach.note) say(reach.note);
  }
  if (opts.report) {
    // The rule diff per family, as `dockwall diff` shows it (only apply --json asks for it).
    const lives: Partial<Record<4 | 6, SavedRuleset>> = {};
    for (const f of families) lives[f] = parseSave(before[f] ?? "");
    const diffs = familyDiffs(compiled, lives, opts.policyName);
    for (const f of families) report.families[f === 4 ? "ipv4" : "ipv6"] = { changed: changing.includes(f), diff: diffs[f] ?? "" };
  }
  if (opts.check) {
    // Everything apply checks before it loads, the restore tools' own test too; nothing loaded, nothing written.
    for (const f of changing) {
      try {
        io.run(tools[f].restore, ["--test", "--noflush"], steps[f]!);
      } catch (e) {
        return refuse("test", `would not apply: ${tools[f].restore} --test refuses the IPv${f} rules: ${firstLine(e)}`);
      }
    }
    say(changing.length ? `check: applying ${opts.policyName} would change ${changing.map((f) => `IPv${f}`).join(" and ")}; nothing was changed` : `check: ${opts.policyName} is what is loaded; nothing to change`);
    return EXIT.ok;
  }
  // Every change tested before any is loaded (most refusals are caught with nothing changed),
  // then IPv4, then IPv6; a refused load puts both back.
  markApplying(io);
  const d = deploy(
    changing.map((f) => ({ family: f, text: steps[f]!, before: before[f] ?? "" })),
    {
      test: (f, text) => void io.run(tools[f].restore, ["--test", "--noflush"], text),
      load: (f, text, noflush) => void io.run(tools[f].restore, noflush ? ["--noflush"] : [], text),
      // Kept for rollback, by the last apply that changes something (or that waits for
      // confirmation): the policy whose rules are in place now, if they are dockwall's, and
      // what is loaded now (the rules themselves, for when they are not).
      tested: () => {
        if (!changing.length && opts.confirm === undefined) return;
        for (const f of [4, 6] as const) if (before[f] !== undefined) io.writeFile(path(io, `rollback.v${f}`), before[f]!);
        // The policy before, if its rules are these (an nft policy's are in its nft tables, which this apply leaves alone).
        const previous = readJson<PolicyRecord>(io, "policy.json");
        const state: RollbackState = { previous: previous && previous.format !== "nft" ? previous : null, owned: Object.fromEntries(families.map((f) => [String(f), ownedOf(generated.rulesets[f]!)])) };
        io.writeFile(path(io, "rollback.json"), JSON.stringify(state, null, 2) + "\n");
      },
    },
  );
  if (!d.ok) {
    doneApplying(io);
    if (d.stage === "test") refuse("test", `not applied: ${tools[d.family].restore} --test refused the IPv${d.family} rules: ${d.error}; nothing was changed`);
    else {
      refuse("load", `not applied: ${tools[d.family].restore} refused the IPv${d.family} rules: ${d.error}`);
      if (d.putBackFailed.length) say(`AND putting back the rules from before failed: ${d.putBackFailed.map((x) => `${tools[x.family].restore}: ${x.error}`).join("; ")}. They are in ${io.stateDir}/rollback.v4 and rollback.v6: load them with ${tools[4].restore} / ${tools[6].restore}`);
      else say(`the IPv4 and IPv6 rules from before are back in place`);
    }
    return EXIT.error;
  }
  // The policy whose rules are now in place: what a rollback of the next apply goes back to.
  const switched = formatSwitchNote(io, readJson<PolicyRecord>(io, "policy.json"), "iptables");
  io.writeFile(path(io, "policy.json"), JSON.stringify(opts.record, null, 2) + "\n");
  if (switched) say(switched);
  if (changing.length === 0) {
    say(`applied ${opts.policyName}: nothing to change, the loaded rules are what it says${kept.length ? `; other tools' chains kept: ${kept.join(", ")}` : ""}`);
    return opts.confirm === undefined ? told(io, say, opts.record.path) : confirmOrRollBack(io, say, opts, families, report);
  }
  const what = changing.map((f) => `IPv${f}`).join(" and ");
  say(`applied ${opts.policyName}: ${what}${kept.length ? `; other tools' chains kept: ${kept.join(", ")}` : ""}`);

  if (opts.confirm === undefined) return told(io, say, opts.record.path);
  return confirmOrRollBack(io, say, opts, families, report);
}

/** The tables dockwall's --format nft file writes (inet dockwall; with iptables off, Docker's). */
const NFT_TABLES = ["inet dockwall", "ip docker-bridges", "ip6 docker-bridges"];

/**
 * An apply in one format after one in the other: what the one before loaded stays, and this is
 * said (`now`: this apply's format). The kernel then has both; a drop in either is final, so
 * what stays can drop more than this policy says, and admits nothing it does not (its accepts
 * are not final). Undefined when the apply before was in this format, or left nothing.
 */
export function formatSwitchNote(io: SystemIo, previous: PolicyRecord | undefined, now: "iptables" | "nft"): string | undefined {
  if (!previous || (previous.format === "nft") === (now === "nft")) return undefined;
  const both = "both decide, and a drop in either is final: what stays can drop what this policy allows, and admits nothing it does not";
  if (now === "nft") return `note: the iptables rules that the apply of ${previous.file} loaded stay as they are (iptables-save shows them): nftables' tables and iptables' rules ${both}`;
  let listed: string;
  try {
    listed = io.run("nft", ["list", "tables"]);
  } catch {
    return undefined;
  }
  const left = NFT_TABLES.filter((t) => listed.split("\n").includes(`table ${t}`));
  if (!left.length) return undefined;
  return `note: the nft tables that the apply of ${previous.file} (-f nft) loaded stay: ${left.join(", ")}. iptables' rules and nftables' tables ${both}; take them out with ${left.map((t) => `'nft delete table ${t}'`).join(", ")}`;
}

/** The new rules stay: a running watcher learns of them (watching.ts). */
export function told(io: SystemIo, say: (s: string) => void, policy: string | undefined): number {
  const t = tellWatcher(io, policy);
  doneApplying(io);
  if (t) say(t);
  return EXIT.ok;
}

export async function confirmOrRollBack(io: SystemIo, say: (s: string) => void, opts: ApplyOptions, families: (4 | 6)[], report: ApplyReport): Promise<number> {
  const seconds = opts.confirm!;
  const token = `${io.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const created = io.now();
  const p: Pending = { token, created, deadline: created + seconds * 1000, policy: opts.policyName, families, ...(opts.noWait ? { noWait: true } : {}) };
  io.writeFile(path(io, "pending.json"), JSON.stringify(p, null, 2) + "\n");
  doneApplying(io);
  // The rollback runs on its own: a dropped SSH session (or a killed apply) cannot stop it.
  try {
    await io.spawnDockwall(["rollback", "--after", String(seconds), "--token", token]);
  } catch (e) {
    // Without its own rollback the wait would depend on this process: roll back now.
    const r = await settle(io, token, "rolled back", opts.factsNow);
    if (r) io.removeFile(path(io, `outcome.${token}`));
    const message = `cannot start the rollback that --confirm needs (${firstLine(e)}): ${!r ? "cannot tell whether the rules from before are back" : r.ok ? r.said : `rolling back FAILED: ${r.said}`}`;
    if (r) report.outcome = { how: "rolled back", ok: r.ok, message: r.said };
    report.refused = { reason: "confirm", message };
    say(message);
    return EXIT.error;
  }
  if (opts.noWait) {
    // The rollback timer runs on its own (it outlives this process): 'dockwall confirm --token' keeps the rules.
    report.pending = { token, deadline: when(p.deadline), seconds };
    say(`the new rules stay only if 'dockwall confirm --token ${token}' (or 'dockwall confirm') comes before ${when(p.deadline)}; otherwise the rules from before are put back then`);
    return EXIT.ok;
  }
  say(`keep the new rules? Type 'yes' within ${seconds} s, or run 'dockwall confirm' from another shell; otherwise the rules from before are put back`);
  while (io.now() < p.deadline) {
    const left = p.deadline - io.now();
    const line = io.stdinIsTTY ? await io.readLine(Math.min(left, 500)) : (await io.sleep(Math.min(left, 200)), undefined);
    if (line !== undefined && /^\s*y(es)?\s*$/i.test(line)) await settle(io, token, "confirmed");
    const now = readPending(io);
    if (now?.token !== token || now.failed) break;
  }
  // Our own deadline: roll back here too; whoever takes the pending apply first settles it.
  const now = readPending(io);
  if (now?.token === token && !now.failed) await settle(io, token, "rolled back", opts.factsNow);
  return outcome(io, say, token, report);
}

/** Waits (briefly) for whoever took the pending apply to say how it ended. */
async function outcomeOf(io: SystemIo, token: string): Promise<Outcome | undefined> {
  for (let i = 0; i < 300; i++) {
    const o = readJson<Outcome>(io, `outcome.${token}`);
    if (o !== undefined) {
      io.removeFile(path(io, `outcome.${token}`));
      return o;
    }
    await io.sleep(100);
  }
  return undefined;
}

async function outcome(io: SystemIo, say: (s: string) => void, token: string, report: ApplyReport): Promise<number> {
  const o = await outcomeOf(io, token);
  if (o) report.outcome = { how: o.how, ok: o.ok, message: o.said };
  if (o === undefined) {
    say(`cannot tell how the apply ended: neither 'dockwall confirm' nor the rollback said so in 30 s (see ${io.stateDir})`);
    return EXIT.error;
  }
  if (o.how === "confirmed") {
    say(`confirmed: the new rules stay${o.said ? `; ${o.said}` : ""}`);
    return EXIT.ok;
  }
  const why = o.how === "rolled back by hand" ? "rolled back ('dockwall rollback')" : "not confirmed in time";
  say(o.ok ? `${why}: ${o.said}` : `${why}, and rolling back FAILED: ${o.said}`);
  return o.ok ? EXIT.rolledBack : EXIT.error;
}

/**
 * Ends the pending apply `token` (if it still waits): confirmed, or rolled back (rollBack).
 * Taking pending.json is one rename, so of a confirm, the rollback timer and apply's own
 * deadline only one settles it. Its outcome is left in outcome.TOKEN for apply to read. A
 * rollback that fails leaves the apply waiting, marked failed: its rules stay in place (fail
 * closed), the next apply says so, and 'dockwall rollback' tries again.
 */
async function settle(io: SystemIo, token: string | undefined, how: Outcome["how"], factsNow?: FactsNow): Promise<(Outcome & { p: Pending }) | undefined> {
  const p = readPending(io);
  if (!p || (token !== undefined && p.token !== token)) return undefined;
  // Past its deadline an apply is no longer confirmed: its rollback is due (fail closed, whichever comes first).
  // (A rollback that failed leaves the rules in place, waiting: confirm may still keep them.)
  if (how === "confirmed" && io.now() > p.deadline && !p.failed) return undefined;
  const claimed = path(io, `settling.${p.token}`);
  if (!io.rename(path(io, "pending.json"), claimed)) return undefined;
  // Confirmed: the rules stay for good, and a watcher of that policy reads it again (a rollback leaves the watcher's policy, the one rolled back to).
  const r = how !== "confirmed" ? await rollBack(io, factsNow!) : { ok: true, said: tellWatcher(io, readJson<PolicyRecord>(io, "policy.json")?.path) ?? "" };
  const o: Outcome = { how, ...r };
  // An apply that waits reads it; after --no-wait, only a rollback's is kept (for 'dockwall confirm --token').
  if (!p.noWait || how !== "confirmed") io.writeFile(path(io, `outcome.${p.token}`), JSON.stringify(o) + "\n");
  if (!o.ok) io.writeFile(path(io, "pending.json"), JSON.stringify({ ...p, failed: o.said }, null, 2) + "\n");
  io.removeFile(claimed);
  return { ...o, p };
}

/**
 * Rolls back the last apply (pure decisions in rollback.ts):
 *  - to the policy whose rules were in place before it, compiled with Docker's facts now,
 *    loaded as apply loads (only the chains that differ, other tools' chains kept, IPv4 and
 *    IPv6 tested first, both put back when either load fails);
 *  - without one (the rules before were not dockwall's), to the snapshot of then, but only
 *    what that apply changed, and never Docker's chains (snapshotTarget).
 * When the facts cannot be read, the policy does not compile with them, or anything else
 * fails before the load, nothing is changed: the rules in place stay (fail closed).
 */
export async function rollBack(io: SystemIo, factsNow: FactsNow): Promise<{ ok: boolean; said: string }> {
  const state = readJson<RollbackState>(io, "rollback.json");
  // apply --format nft: its tables, loaded with nft.
  if (state?.nft) return rollBackNft(io, factsNow, state);
  const unchanged = "the rules in place stay (nothing was changed)";
  if (!state) {
    if (io.readFile(path(io, "rollback.v4")) === undefined && io.readFile(path(io, "rollback.v6")) === undefined) return { ok: false, said: `nothing to roll back: no apply saved rules in ${io.stateDir}` };
    return { ok: false, said: `the rules in ${io.stateDir} (rollback.v4, rollback.v6) were saved without the policy they came from (by an older dockwall), and loading them would bring back Docker's chains as they were then; ${unchanged}. Apply a policy instead, or load them by hand with iptables-restore and ip6tables-restore` };
  }
  const prev = state.previous;
  let compiled: CompileResult | undefined;
  if (prev) {
    const r = await compileNow(prev, factsNow);
    if (typeof r === "string") return { ok: false, said: `cannot roll back to ${prev.file} (applied ${when(prev.applied)}): ${r}; ${unchanged}` };
    compiled = r;
  }
  const saves = startSaves(io);
  const now: Partial<Record<4 | 6, string>> = {};
  const tools: Record<4 | 6, { save: string; restore: string }> = { 4: { save: tool(4, "save"), restore: tool(4, "restore") }, 6: { save: tool(6, "save"), restore: tool(6, "restore") } };
  const steps: Partial<Record<4 | 6, string>> = {};
  const dropped: string[] = [];
  for (const f of [4, 6] as const) {
    const wanted = compiled?.generated!.rulesets[f];
    const owned = state.owned[String(f) as "4" | "6"];
    const snapshot = io.readFile(path(io, `rollback.v${f}`));
    if (!wanted?.tables.length && !(owned && snapshot !== undefined)) continue;
    const got = await saves[f];
    if ("error" in got) return { ok: false, said: `cannot roll back: cannot save the loaded rules with ${tools[f].save}: ${firstLine(got.error)}; ${unchanged}` };
    now[f] = got.text;
    tools[f] = got;
    try {
      const live = parseSave(got.text);
      if (wanted?.tables.length) {
        // Back to a policy without a host block from one with it: INPUT as the host had it before that apply (not the
        // DROP policy the block set, with the block's rules gone: a host that accepts nothing).
        const owns = compiled!.policy!.host !== undefined;
        const hosts = !owns && snapshot !== undefined ? hostsInputBefore(parseSave(snapshot), live) : undefined;
        const step = reconcileStep(live, wanted, { ownsInput: owns, ...(hosts ? { hostsInput: hosts } : {}) });
        // (INPUT from the snapshot is as the host had it; otherwise the host block's rules would go and its DROP stay.)
        const drop = hosts ? undefined : strandedInput(inputOf(live), inputOf(step.after));
        if (drop) return { ok: false, said: `cannot roll back: ${strandedMessage(prev!.file, { [f]: drop }, "then roll back again")}; ${unchanged}` };
        steps[f] = step.text;
      } else {
        // The previous policy writes nothing for this family: its rules before the last apply were not dockwall's.
        const t = snapshotTarget(parseSave(snapshot!), live, owned!);
        steps[f] = stepTo(live, t.desired).text;
        dropped.push(...t.dropped.map((d) => `${f === 4 ? "ip" : "ip6"} ${d}`));
      }
    } catch (e) {
      if (!(e instanceof SaveSyntaxError)) throw e;
      return { ok: false, said: `cannot roll back: cannot read the IPv${f} rules (${e.message}); ${unchanged}` };
    }
  }
  const changing = ([4, 6] as const).filter((f) => steps[f]);
  const d = deploy(
    changing.map((f) => ({ family: f, text: steps[f]!, before: now[f]! })),
    {
      test: (f, text) => void io.run(tools[f].restore, ["--test", "--noflush"], text),
      load: (f, text, noflush) => void io.run(tools[f].restore, noflush ? ["--noflush"] : [], text),
    },
  );
  if (!d.ok) {
    const failed = d.putBackFailed.map((x) => `${tools[x.family].restore}: ${x.error}`);
    if (d.stage === "test") return { ok: false, said: `cannot roll back: ${tools[d.family].restore} --test refused the IPv${d.family} rules: ${d.error}; ${unchanged}` };
    return { ok: false, said: `cannot roll back: ${tools[d.family].restore} refused the IPv${d.family} rules: ${d.error}; ${failed.length ? `AND putting back the rules that were in place failed: ${failed.join("; ")}` : "the rules that were in place are back"}` };
  }
  if (prev) io.writeFile(path(io, "policy.json"), JSON.stringify(prev, null, 2) + "\n");
  else io.removeFile(path(io, "policy.json"));
  if (prev) {
    const from = prev.facts.from === "docker" ? " (read from dockerd)" : prev.facts.from === "file" ? ` (${prev.facts.path})` : "";
    return { ok: true, said: `the rules of ${prev.file} (applied ${when(prev.applied)}) are back in place, compiled again with Docker's facts as they are now${prev.facts.from === "none" || prev.facts.from === "given" ? "" : from}` };
  }
  const closed = dropped.length
    ? `; Docker's chains were not put back from them (${dropped.join(", ")}): no policy of dockwall's was in place before, and they may lead a removed container's port to another container, so published ports stay closed until a policy is applied`
    : "";
  return { ok: true, said: `the rules from before the last apply are back in place${closed}` };
}

/** `dockwall confirm`: keep the rules of the apply that waits. */
export async function runConfirm(io: SystemIo, say: (s: string) => void, token?: string): Promise<number> {
  const settled = readPending(io) && (await settle(io, token, "confirmed"));
  const late = readPending(io);
  if (!settled && late && (token === undefined || late.token === token) && !late.failed && io.now() > late.deadline) {
    say(`too late: the apply of ${when(late.created)} (${late.policy}) had to be confirmed by ${when(late.deadline)}, and its rules are being put back; if they are not, 'dockwall rollback' puts them back`);
    return EXIT.error;
  }
  if (!settled) {
    // --token: that apply no longer waits; how it ended, if its rollback said so (apply --no-wait).
    const o = token === undefined ? undefined : readJson<Outcome>(io, `outcome.${token}`);
    if (o) io.removeFile(path(io, `outcome.${token}`));
    const waits = readPending(io);
    say(
      token === undefined
        ? `no apply waits for confirmation`
        : o
          ? `the apply ${token} no longer waits for confirmation: ${o.how === "confirmed" ? "it was confirmed" : o.ok ? `${o.how === "rolled back" ? "not confirmed in time, and rolled back" : "rolled back by hand"}: ${o.said}` : `it was not confirmed in time, and rolling it back FAILED: ${o.said}`}`
          : `the apply ${token} does not wait for confirmation${waits ? ` (${pendingApply(io)}, with another token)` : ""}`,
    );
    return EXIT.error;
  }
  say(`confirmed the apply of ${when(settled.p.created)} (${settled.p.policy}): its rules stay`);
  if (settled.said) say(settled.said);
  return EXIT.ok;
}

/** How often the rollback timer tries again after a failed rollback: a day's worth at the longest wait, a minute. */
const ROLLBACK_TRIES = 24 * 60;

/** `dockwall rollback [--after S --token T]`: roll back the last apply (rollBack). */
export async function runRollback(io: SystemIo, say: (s: string) => void, factsNow: FactsNow, opts: { after?: number; token?: string } = {}): Promise<number> {
  if (opts.after !== undefined) {
    // The timer of apply --confirm: wait, then roll back unless confirmed meanwhile.
    const p = readPending(io);
    const deadline = p && p.token === opts.token ? p.deadline : io.now() + opts.after * 1000;
    while (io.now() < deadline && readPending(io)?.token === opts.token) await io.sleep(Math.min(deadline - io.now(), 200));
    // A rollback that fails (dockerd restarting, its facts unreadable) leaves the apply's rules in place, and the
    // apply waiting: tried again, from 5 s to every minute, for as long as it waits (a review found the watcher
    // then held back for good, and a stale DNAT reaching the next container given a freed address).
    for (let wait = 5000, tries = 0; ; wait = Math.min(wait * 2, 60_000), tries++) {
      const s = await settle(io, opts.token, "rolled back", factsNow);
      if (!s || s.ok || tries >= ROLLBACK_TRIES) break;
      await io.sleep(wait);
      if (readPending(io)?.token !== opts.token) break;
    }
    return EXIT.ok;
  }
  // An apply that waits is settled (its apply, if still there, reads the outcome); else the last one is rolled back.
  if (!readPending(io)) {
    const held = watcherUndoes(io);
    if (held) {
      say(`not rolled back: ${held}`);
      return EXIT.error;
    }
  }
  const r = (readPending(io) && (await settle(io, undefined, "rolled back by hand", factsNow))) || (await rollBack(io, factsNow));
  say(r.ok || /^nothing to roll back/.test(r.said) ? r.said : `not rolled back: ${r.said}`);
  return r.ok ? EXIT.ok : EXIT.error;
}

/**
 * A rollback after the apply was kept (confirmed, or without --confirm) that a running watcher
 * would undo at once: the watcher keeps a file that no longer says the policy rolled back to, and
 * puts that file's rules back as drift (a review: `rollback` said the old rules were back, and the
 * watcher reopened what they closed). What to do instead, or undefined.
 */
function watcherUndoes(io: SystemIo): string | undefined {
  const w = runningWatcher(io);
  if (!w) return undefined;
  const prev = readJson<RollbackState>(io, "rollback.json")?.previous;
  // What the watcher keeps is what it loaded, not what its file says now (a second review: the file put back, the watcher
  // not told, the rollback went ahead and the watcher put the newer rules back).
  if (prev && w.kept !== undefined && w.kept === policyHash(prev.text)) return undefined;
  const back = prev ? `the policy rolled back to (${prev.file}, applied ${when(prev.applied)}; its text is in ${path(io, "rollback.json")})` : "the rules from before the last apply";
  return (
    `a watcher (pid ${w.pid}) keeps ${w.policy}, ${w.kept === undefined ? "and does not say which policy it keeps" : "as it read it last, which is not"} ${w.kept === undefined ? `(it may not be ${back})` : back}: it would put its own rules back at once. ` +
    `The rules in place stay (nothing was changed). Put ${w.policy} back as it was and reload the watcher (systemctl reload dockwall): it then loads that policy itself; or stop the watcher (systemctl stop dockwall), then roll back`
  );
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
  // No host block, over the DROP policy of the one dockwall loaded before (as apply refuses it): ferm stops, the rules in place stay.
  const drop = opts.hostsInput ? strandedWithoutHostBlock(saved) : undefined;
  if (drop) {
    say(`ferm must not load: ${strandedMessage("the policy", { [family]: drop }, "then run ferm again")}`);
    return EXIT.error;
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
