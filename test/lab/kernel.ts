// Kernel lab: scratch network namespaces, iptables-restore / iptables-save round trips and
// ferm compilation, for vitest tests that want the real kernel to judge a rule set.
//
// Hard rule: nothing here touches the root network namespace.  Every rule load happens
// in a namespace created here (`ip netns add dwt-<pid>-<token>-<n>...`) that is deleted
// afterwards (try/finally, a process 'exit' hook, and cleanupLeftovers() for namespaces of
// dead processes).
import { describe, it } from 'vitest';
import { closeSync, mkdirSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cleanupLeftovers, netnsList, OWNER, removeDir, run, uniqueName, which, type RunResult } from './proc.js';

export type Support = { ok: true } | { ok: false; reason: string };
export type Family = 4 | 6;

const REQUIRED_TOOLS = ['ip', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'ip6tables-save', 'ferm', 'ipset'];

let kernelSupportCache: Support | undefined;

/**
 * Can this process run kernel tests?  Root, the tools, and a network namespace that can be
 * created, populated with a rule and deleted again.  The result is cached per process.
 */
export function kernelSupport(): Support {
  if (kernelSupportCache) return kernelSupportCache;
  kernelSupportCache = checkKernel();
  return kernelSupportCache;
}

function checkKernel(): Support {
  // lets a developer skip the slow tests (and lets the skip path itself be checked)
  if (process.env.DOCKWALL_NO_KERNEL === '1') return { ok: false, reason: 'DOCKWALL_NO_KERNEL=1' };
  if (process.platform !== 'linux') return { ok: false, reason: `platform is ${process.platform}, not linux` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'not running as root' };
  const missing = REQUIRED_TOOLS.filter((t) => !which(t));
  if (missing.length) return { ok: false, reason: `missing tools: ${missing.join(', ')}` };
  cleanupLeftovers();
  const name = uniqueName('-probe');
  const add = run(['ip', 'netns', 'add', name]);
  if (add.status !== 0) return { ok: false, reason: `cannot create a network namespace: ${add.stderr.trim()}` };
  try {
    const r = run(['ip', 'netns', 'exec', name, 'iptables-restore'], { input: '*filter\n:FORWARD DROP [0:0]\nCOMMIT\n' });
    if (r.status !== 0) return { ok: false, reason: `iptables-restore fails in a netns: ${r.stderr.trim()}` };
    const r6 = run(['ip', 'netns', 'exec', name, 'ip6tables-restore'], { input: '*filter\n:FORWARD DROP [0:0]\nCOMMIT\n' });
    if (r6.status !== 0) return { ok: false, reason: `ip6tables-restore fails in a netns: ${r6.stderr.trim()}` };
  } finally {
    run(['ip', 'netns', 'del', name]);
  }
  return { ok: true };
}

const skipNoticePrinted = new Set<string>();
/** describe() that runs only where `support()` is ok (see describeKernel). */
export function describeIf(support: () => Support, what: string, name: string, fn: () => void): void {
  const s = support();
  if (s.ok) {
    describe(name, fn);
    return;
  }
  if (process.env.DOCKWALL_REQUIRE_KERNEL === '1') {
    describe(name, () => {
      it(`${what} support (required by DOCKWALL_REQUIRE_KERNEL=1)`, () => {
        throw new Error(`${what} tests required by DOCKWALL_REQUIRE_KERNEL=1 but unsupported: ${s.reason}`);
      });
    });
    return;
  }
  if (!skipNoticePrinted.has(what)) {
    skipNoticePrinted.add(what);
    // One line per test run, not per test file: the first worker to claim the marker prints it.
    const marker = join(tmpdir(), `dockwall-skip-${what}-${process.ppid}`);
    try {
      closeSync(openSync(marker, 'wx'));
      console.warn(`${what} tests skipped: ${s.reason}`);
    } catch {
      /* another test file of this run said it already */
    }
  }
  describe.skip(name, fn);
}

/**
 * vitest describe() for tests that need root + netns + iptables + ferm.  When unsupported it
 * prints one line `kernel tests skipped: <reason>` (once per process) and skips; with
 * DOCKWALL_REQUIRE_KERNEL=1 it instead registers a failing test carrying the reason.
 * DOCKWALL_NO_KERNEL=1 declares the kernel unsupported (to skip these tests on purpose).
 */
export function describeKernel(name: string, fn: () => void): void {
  describeIf(kernelSupport, 'kernel', name, fn);
}

// ------------------------------------------------------------------ netns ----

export interface RestoreOptions {
  /** iptables-restore --noflush: add to the current rules instead of replacing tables. */
  noflush?: boolean;
  /** iptables-restore --test: parse and check only, commit nothing. */
  test?: boolean;
}

export interface Netns {
  readonly name: string;
  /** /var/run/netns/<name>, for nsenter --net=... */
  readonly path: string;
  /** Run argv inside the namespace (`ip netns exec`). Never throws on a non-zero exit. */
  run(argv: string[], input?: string): RunResult;
  /** iptables-restore (4) / ip6tables-restore (6) inside the namespace. */
  restore(family: Family, text: string, opts?: RestoreOptions): { ok: boolean; stderr: string };
  /** iptables-save / ip6tables-save: counters zeroed to [0:0], '#' lines dropped, only existing tables. */
  save(family: Family): string;
}

const live = new Set<string>();
let exitHookInstalled = false;
function trackNetns(name: string): void {
  live.add(name);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const n of live) run(['ip', 'netns', 'del', n]);
    });
  }
}

/** Zero counters and drop comment lines, as the oracle's corpus does. */
export function normalizeSave(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n');
}

/** A save without its empty tables (built-in chains ACCEPT, no rules): to the kernel, no table. */
export function withoutEmptyTables(save: string): string {
  return save.replace(/^\*\w+\n(?::[A-Z]+ ACCEPT \[0:0\]\n)+COMMIT\n/gm, "");
}

export function netnsHandle(name: string): Netns {
  const self: Netns = {
    name,
    path: `/var/run/netns/${name}`,
    run: (argv, input) => run(['ip', 'netns', 'exec', name, ...argv], { input }),
    restore(family, text, opts = {}) {
      const argv = [family === 4 ? 'iptables-restore' : 'ip6tables-restore'];
      if (opts.noflush) argv.push('--noflush');
      if (opts.test) argv.push('--test');
      const r = self.run(argv, text);
      return { ok: r.status === 0, stderr: r.stderr };
    },
    save(family) {
      const r = self.run([family === 4 ? 'iptables-save' : 'ip6tables-save']);
      if (r.status !== 0) throw new Error(`${family === 4 ? 'iptables' : 'ip6tables'}-save failed in ${name}: ${r.stderr}`);
      return normalizeSave(r.stdout);
    },
  };
  return self;
}

/** Create a namespace (lo up) and return its handle; the caller must call deleteNetns(). */
export function createNetns(suffix = '-s'): Netns {
  cleanupLeftovers();
  const name = uniqueName(suffix);
  const r = run(['ip', 'netns', 'add', name]);
  if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  trackNetns(name);
  const up = run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  if (up.status !== 0) {
    deleteNetns(name);
    throw new Error(`ip -n ${name} link set lo up: ${up.stderr}`);
  }
  return netnsHandle(name);
}

export function deleteNetns(name: string): void {
  run(['ip', 'netns', 'del', name]);
  live.delete(name);
}

/** Run fn in a fresh namespace (lo up) that is deleted afterwards, also when fn throws. */
export async function withScratchNetns<T>(fn: (ns: Netns) => T | Promise<T>): Promise<T> {
  const ns = createNetns('-s');
  try {
    return await fn(ns);
  } finally {
    deleteNetns(ns.name);
  }
}

/** Synchronous variant of withScratchNetns for synchronous fn. */
export function withScratchNetnsSync<T>(fn: (ns: Netns) => T): T {
  const ns = createNetns('-s');
  try {
    return fn(ns);
  } finally {
    deleteNetns(ns.name);
  }
}

/** Namespaces of this process that are still present (for leak checks in tests). */
export function ownNetns(): string[] {
  return netnsList().filter((n) => n.startsWith(OWNER + '-'));
}

// ------------------------------------------------------------------- ferm ----

export interface FermResult {
  /** ferm exited 0. */
  ok: boolean;
  stderr: string;
  /** iptables-restore text of `domain ip` ('' when the file has no ip domain). */
  v4: string;
  /** ip6tables-restore text of `domain ip6` ('' when the file has no ip6 domain). */
  v6: string;
  /** Lines outside any table block: `@hook pre/post/flush` commands (not executed). */
  hooks: string[];
  /** The save tool ferm named in each block header, e.g. 'iptables-legacy-save'. */
  tools: { v4?: string; v6?: string };
  /** ferm's raw stdout. */
  raw: string;
}

export interface FermOptions {
  /** Extra files written next to the main file (for @include), name -> content. */
  files?: Record<string, string>;
  /**
   * Rules present in the scratch namespace before ferm runs (what `@preserve` can copy).
   * They are loaded with the restore tool matching the save tool ferm reads, i.e.
   * iptables-legacy-restore when iptables-legacy exists (ferm prefers the legacy tools).
   */
  seed?: { v4?: string; v6?: string };
  /** Extra ferm arguments (e.g. ['--def', '$X=1']). */
  args?: string[];
  /** Run ferm in this namespace (the caller's, which it keeps), not a scratch one: without a seed, ferm --noexec changes nothing there. */
  ns?: Netns;
}

/**
 * Compile a ferm file without executing it: `ferm --noexec --lines FILE`, run INSIDE a
 * scratch namespace, because ferm runs `iptables-save` to learn the current state (for
 * `@preserve`, and to know which builtin chains exist) even with --noexec.
 *
 * How ferm prints `domain (ip ip6)` with --lines (ferm 2.5.1, fast mode = the default):
 * one complete iptables-restore text per domain, domains in sorted order (ip, then ip6),
 * each block starting with a header line
 *     # Generated by ferm 2.5.1 (iptables-legacy-save) on <date>
 *     # Generated by ferm 2.5.1 (ip6tables-legacy-save) on <date>
 * followed by `*table` ... `COMMIT` sections (tables and chains sorted by name; builtin chains
 * that get no policy are printed with ACCEPT).  The save tool named in the header tells the
 * domain.  `@hook pre` commands are printed before the first block, `@hook post`/`flush`
 * after the last one; they are returned in `hooks`.
 *
 * Caveat (measured): ferm prefers `iptables-legacy`/`iptables-legacy-save` whenever they are
 * installed (Debian 12 installs both), so `@preserve` copies chains from the *legacy* tables,
 * not from the nf_tables ones that iptables-nft (Docker 20.10 on Debian 12) writes.
 */
export function fermCompile(fermConf: string, opts: FermOptions = {}): FermResult {
  const dir = mkdtempSync(join(tmpdir(), `${OWNER}-ferm-`));
  try {
    const file = join(dir, 'ferm.conf');
    writeFileSync(file, fermConf);
    for (const [n, c] of Object.entries(opts.files ?? {})) {
      const p = join(dir, n);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, c);
    }
    if (opts.ns && opts.seed) throw new Error("fermCompile: a seed goes into a scratch namespace of its own, not the caller's");
    const inNs = (ns: Netns): FermResult => {
      for (const [fam, text] of [
        [4, opts.seed?.v4],
        [6, opts.seed?.v6],
      ] as const) {
        if (!text) continue;
        const tool = fermRestoreTool(fam);
        const r = ns.run([tool], text);
        if (r.status !== 0) throw new Error(`seeding ${tool} for ferm failed: ${r.stderr}`);
      }
      const r = run(['ip', 'netns', 'exec', ns.name, 'ferm', '--noexec', '--lines', ...(opts.args ?? []), file]);
      return { ok: r.status === 0, stderr: r.stderr, raw: r.stdout, ...splitFermLines(r.stdout) };
    };
    return opts.ns ? inNs(opts.ns) : withScratchNetnsSync(inNs);
  } finally {
    removeDir(dir);
  }
}

/** The restore tool whose tables ferm's save tool reads (ferm prefers *-legacy tools). */
export function fermRestoreTool(family: Family): string {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  return which(`${base}-legacy-restore`) ? `${base}-legacy-restore` : `${base}-restore`;
}

/** Split `ferm --lines` (fast mode) output into per-domain iptables-restore texts. */
export function splitFermLines(out: string): Pick<FermResult, 'v4' | 'v6' | 'hooks' | 'tools'> {
  const blocks: Record<'v4' | 'v6', string[]> = { v4: [], v6: [] };
  const tools: FermResult['tools'] = {};
  const hooks: string[] = [];
  let fam: 'v4' | 'v6' | undefined;
  let inTable = false;
  for (const line of out.split('\n')) {
    const h = /^# Generated by ferm \S+ \((\S+)\)/.exec(line);
    if (h) {
      fam = h[1]!.startsWith('ip6') ? 'v6' : h[1]!.startsWith('ip') ? 'v4' : undefined;
      if (fam) tools[fam] = h[1];
      inTable = false;
      continue;
    }
    if (fam && !inTable && line.startsWith('*')) inTable = true;
    if (fam && inTable) {
      blocks[fam].push(line);
      if (line === 'COMMIT') inTable = false;
      continue;
    }
    if (line.trim() !== '') hooks.push(line);
  }
  const text = (l: string[]) => (l.length ? l.join('\n') + '\n' : '');
  return { v4: text(blocks.v4), v6: text(blocks.v6), hooks, tools };
}
