// Benchmarks of dockwall deploying rules (BENCH_ONLY=apply, BENCH_ONLY=watch), each inside
// scratch network namespaces (dwb-PID-…) that are deleted afterwards, also on failure: the
// root namespace's rules are never touched.
//  - Issue #16: `dockwall apply POLICY --facts FILE` of 2,000 containers, the whole process
//    (save, merge, --test, load of IPv4 and IPv6), in the same rounds as plain
//    iptables-restore and ip6tables-restore of the same compiled rules: each round re-applies
//    the rules already loaded, and (in fresh namespaces, made outside the times) loads them
//    into an empty one.
//  - Issue #15: `dockwall watch` following the fake Engine API (bench/fake-engine.mjs): the time
//    from one `container start` event to the watcher's `applied: containers +NAME` line (written
//    after iptables-restore returned, and checked against the kernel after each event), with
//    the default --debounce and with --debounce 0, beside the full-ruleset path (a fresh
//    `compile … -f iptables | iptables-restore` of the same state); and the memory of a
//    watcher over 1,000 reconciles.
import { createHash } from "node:crypto";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { containerName, engineAnswers, engineFacts, enginePolicy, FIRST_PORT, startFakeEngine } from "./engine.js";
import { cpuTicks, measureEach, median, type Measure, type Rounds } from "./process.js";

export interface Ctx {
  /** A scratch directory of the bench's own. */
  dir: string;
  /** bin/dockwall */
  bin: string;
  runs: number;
  /** Rounds at 2,000 containers, where the targets are judged. */
  bigRuns: number;
  maxSteal: number;
  /** How quiet the machine was for each measurement. */
  noted: (what: string, r: Rounds) => void;
}

export const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
export const ms = (x: number) => `${x.toFixed(0)} ms`;
export const fmt = (m: Measure) => `${ms(m.medianMs)}, ${mb(m.peakKb)}`;

export function must(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", maxBuffer: 1 << 30, input: opts.input, env: opts.env });
  if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}: ${(r.stderr ?? "").slice(-500)}`);
  return r.stdout;
}

/** Scratch namespaces: made on demand, all deleted by dropAll. */
export class Namespaces {
  private readonly made = new Set<string>();
  constructor(private readonly prefix = `dwb-${process.pid}`) {}
  /** A new, empty namespace NAME (deleted first if it exists). */
  fresh(name: string): string {
    const full = `${this.prefix}-${name}`;
    if (this.made.has(full)) this.drop(full);
    must(["ip", "netns", "add", full]);
    this.made.add(full);
    return full;
  }
  drop(full: string): void {
    spawnSync("ip", ["netns", "del", full]);
    this.made.delete(full);
  }
  dropAll(): void {
    for (const n of [...this.made]) this.drop(n);
  }
}

export const exec = (ns: string) => ["ip", "netns", "exec", ns];
const dnats = (rules: string) => (rules.match(/ -j DNAT /g) ?? []).length;
/** Blocks for `t` ms (between rounds, outside any time). */
export const pause = (t: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, t);

/** Per round: ours / (a + b); the median, and in how many rounds it was at most `limit`. */
export function ratioTo(ours: Measure, parts: Measure[], limit: number): { ratio: number; within: number; rounds: number } {
  const ratios = ours.perRound.map((t, i) => t / parts.reduce((s, p) => s + p.perRound[i]!, 0));
  return { ratio: median(ratios), within: ratios.filter((r) => r <= limit).length, rounds: ratios.length };
}

export interface ApplyResult {
  lines: string[];
  target: string;
}

/** Issue #16: dockwall apply of `containers` containers against plain iptables-restore / ip6tables-restore. */
export function benchApply(ctx: Ctx, containers = 2000): ApplyResult {
  const sub = join(ctx.dir, `apply${containers}`);
  mkdirSync(sub, { recursive: true });
  const facts = join(sub, "facts.json");
  const policy = join(sub, "p.dw");
  writeFileSync(facts, JSON.stringify(engineFacts(containers)));
  writeFileSync(policy, enginePolicy(containers));
  const v4 = join(sub, "rules.v4");
  const v6 = join(sub, "rules.v6");
  must([ctx.bin, "compile", policy, "--facts", facts, "-f", "iptables", "-o", v4]);
  must([ctx.bin, "compile", policy, "--facts", facts, "-f", "ip6tables", "-o", v6]);
  const rules = (f: string) => readFileSync(f, "utf8").split("\n").filter((l) => l.startsWith("-A ")).length;
  const ns = new Namespaces();
  try {
    const again = ns.fresh("apply");
    // No SSH_CONNECTION: the lockout guard does not run (as in the tests).
    const env = (state: string) => ["env", "-u", "SSH_CONNECTION", `DOCKWALL_STATE_DIR=${state}`];
    const state = join(sub, "state");
    const stateFirst = join(sub, "state-first");
    const apply = (n: string, st: string) => [...env(st), ...exec(n), ctx.bin, "apply", policy, "--facts", facts];
    // Once, checked: the apply loads every container's DNAT.
    must(apply(again, state));
    const loaded = must([...exec(again), "iptables-save"]);
    if (dnats(loaded) !== containers) throw new Error(`apply of ${containers} containers loaded ${dnats(loaded)} DNAT rules`);
    let firstNs = "";
    let firstNsRestore = "";
    const m = measureEach(
      {
        apply: { argv: apply(again, state) },
        restore4: { argv: [...exec(again), "iptables-restore", v4] },
        restore6: { argv: [...exec(again), "ip6tables-restore", v6] },
        first: {
          get argv() {
            return apply(firstNs, stateFirst);
          },
          before: () => {
            // Last round's namespaces go first; the kernel frees them in the background, so wait a little.
            if (firstNs) ns.drop(firstNs);
            if (firstNsRestore) ns.drop(firstNsRestore);
            rmSync(stateFirst, { recursive: true, force: true });
            pause(300);
            firstNs = ns.fresh("first");
            firstNsRestore = ns.fresh("first-restore");
          },
        },
        firstRestore4: {
          get argv() {
            return [...exec(firstNsRestore), "iptables-restore", v4];
          },
        },
        firstRestore6: {
          get argv() {
            return [...exec(firstNsRestore), "ip6tables-restore", v6];
          },
        },
        // What an apply does besides its own work, alone: the compile, the save and the test load.
        compile: { argv: [ctx.bin, "compile", policy, "--facts", facts, "-f", "iptables"] },
        save4: { argv: [...exec(again), "iptables-save"] },
        test4: { argv: [...exec(again), "iptables-restore", "--test", v4] },
      },
      { runs: containers >= 2000 ? ctx.bigRuns : ctx.runs, maxSteal: ctx.maxSteal },
    );
    ctx.noted(`apply, ${containers} containers`, m.rounds);
    const b = m.by;
    const again1 = ratioTo(b.apply, [b.restore4, b.restore6], 1.5);
    const first1 = ratioTo(b.first, [b.firstRestore4, b.firstRestore6], 1.5);
    const cpu = (x: Measure) => ms(x.cpuMs);
    const lines = [
      `dockwall apply POLICY --facts FILE of ${containers} containers (${rules(v4)} IPv4 rules, ${rules(v6)} IPv6; whole process: save, merge, --test, load; in a scratch namespace), ${b.apply.runs} rounds:`,
      `| load | dockwall apply | iptables-restore | ip6tables-restore | apply / (both restores), median of the rounds | within 1.5× |`,
      `| --- | --- | --- | --- | --- | --- |`,
      `| the same rules again (re-apply) | ${fmt(b.apply)} | ${fmt(b.restore4)} | ${fmt(b.restore6)} | ${again1.ratio.toFixed(2)}× | ${again1.within} of ${again1.rounds} rounds |`,
      `| into an empty namespace (first apply) | ${fmt(b.first)} | ${fmt(b.firstRestore4)} | ${fmt(b.firstRestore6)} | ${first1.ratio.toFixed(2)}× | ${first1.within} of ${first1.rounds} rounds |`,
      `CPU time (user + system, every thread): apply ${cpu(b.apply)} (first ${cpu(b.first)}), iptables-restore ${cpu(b.restore4)} (first ${cpu(b.firstRestore4)}), ip6tables-restore ${cpu(b.restore6)}; ` +
        `apply / iptables-restore alone: ${ratioTo(b.apply, [b.restore4], 1.5).ratio.toFixed(2)}× (re-apply), ${ratioTo(b.first, [b.firstRestore4], 1.5).ratio.toFixed(2)}× (first)`,
      `the parts of an apply, each alone in the same rounds: compile --facts FILE -f iptables (to a pipe) ${fmt(b.compile)}, iptables-save of the loaded rules ${fmt(b.save4)}, ` +
        `iptables-restore --test ${fmt(b.test4)}, iptables-restore ${fmt(b.restore4)}, ip6tables-restore ${fmt(b.restore6)}: together ${ms(b.compile.medianMs + b.save4.medianMs + b.test4.medianMs + b.restore4.medianMs + b.restore6.medianMs)} ` +
        `(an apply also saves IPv6 and tests it); without the test load and the save an apply could take ${ms(b.compile.medianMs + b.restore4.medianMs + b.restore6.medianMs)}, ` +
        `${((b.compile.medianMs + b.restore4.medianMs + b.restore6.medianMs) / (b.restore4.medianMs + b.restore6.medianMs)).toFixed(2)}× the restores`,
    ];
    const target =
      `apply of ${containers} containers within 1.5× of iptables-restore + ip6tables-restore: re-apply ${again1.ratio.toFixed(2)}× (${again1.ratio <= 1.5 ? "met" : "not met"}), ` +
      `first apply ${first1.ratio.toFixed(2)}× (${first1.ratio <= 1.5 ? "met" : "not met"})${m.rounds.contended ? ", NOT QUIET" : ""}; peak memory ${mb(Math.max(b.apply.peakKb, b.first.peakKb))}`;
    return { lines, target };
  } finally {
    ns.dropAll();
  }
}

/** A running `dockwall watch`, its stderr read line by line. */
export class WatchProcess {
  readonly pid: number;
  private readonly waiters: { re: RegExp; ok: (t: number) => void }[] = [];
  readonly tail: string[] = [];
  private readonly exited: Promise<number | null>;
  private readonly child;

  constructor(argv: string[], env: NodeJS.ProcessEnv, onStdout?: (line: string) => void) {
    this.child = spawn(argv[0]!, argv.slice(1), { env, stdio: ["ignore", onStdout ? "pipe" : "ignore", "pipe"] });
    if (onStdout) createInterface({ input: this.child.stdout! }).on("line", onStdout);
    this.pid = this.child.pid!;
    this.exited = new Promise((r) => this.child.once("exit", (code) => r(code)));
    createInterface({ input: this.child.stderr! }).on("line", (line) => {
      const t = performance.now();
      this.tail.push(line);
      if (this.tail.length > (process.env.BENCH_VERBOSE === "all" ? 1000 : 40)) this.tail.shift();
      for (let i = 0; i < this.waiters.length; i++) {
        if (this.waiters[i]!.re.test(line)) {
          this.waiters[i]!.ok(t);
          this.waiters.splice(i--, 1);
        }
      }
    });
  }

  /** When a line matching `re` is read (set up before what makes it be written). */
  line(re: RegExp, timeoutMs: number): Promise<number> {
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`dockwall watch wrote no line like ${re} in ${timeoutMs / 1000} s; its last lines:\n${this.tail.join("\n")}`)), timeoutMs);
      this.waiters.push({ re, ok: (t) => (clearTimeout(timer), ok(t)) });
      void this.exited.then((code) => fail(new Error(`dockwall watch exited (${code}); its last lines:\n${this.tail.join("\n")}`)));
    });
  }

  /** VmHWM and VmRSS of the process, in kB. */
  memory(): { hwm: number; rss: number } {
    const s = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN);
    return { hwm: kb("VmHWM"), rss: kb("VmRSS") };
  }

  async stop(): Promise<void> {
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

export const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
/** Nearest rank. */
export const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)]!;
export const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

interface Latencies {
  quiet: number[];
  noisy: number;
  stealPct: number;
}

interface WatchRun {
  latencies: [string, Latencies][];
  /** ms from `iptables -F DOCKER-USER` to the watcher's line saying it loaded the chain again. */
  healed: number[];
  full: { file: Measure; docker: Measure; rounds: Rounds };
  reconcileHint: string;
}

/**
 * Issue #15 at `containers` containers: a watcher per debounce setting, `events` quiet start
 * events each (one container more each time; an event during which the hypervisor took more
 * than maxSteal of the CPU is set aside and another one made, up to four times as many), then
 * the full-ruleset path of the state they left.
 */
async function watchAt(ctx: Ctx, containers: number, events: number, debounces: (number | undefined)[], heals = 10): Promise<WatchRun> {
  const sub = join(ctx.dir, `watch${containers}`);
  mkdirSync(sub, { recursive: true });
  const most = events * 5 * debounces.length + 2;
  const all = engineFacts(containers + most).containers;
  const server = await startFakeEngine(sub, engineAnswers(engineFacts(containers)));
  const ns = new Namespaces();
  let added = 0;
  try {
    const policy = join(sub, "p.dw");
    writeFileSync(policy, enginePolicy(containers));
    const env = { ...process.env, DOCKER_HOST: server.dockerHost, DOCKWALL_STATE_DIR: join(sub, "state") };
    const latencies: [string, Latencies][] = [];
    const healed: number[] = [];
    for (const debounce of debounces) {
      const label = debounce === undefined ? "default" : String(debounce);
      const wns = ns.fresh(`watch-${label}`);
      const w = new WatchProcess([...exec(wns), ctx.bin, "watch", policy, ...(debounce === undefined ? [] : ["--debounce", String(debounce)])], env);
      try {
        await w.line(/^applied: containers \+/, 60_000);
        const quiet: number[] = [];
        let noisy = 0;
        let steal = 0;
        let total = 0;
        for (let tries = 0; quiet.length < events && tries <= 5 * events; tries++) {
          const i = containers + added++;
          const name = containerName(i);
          const done = w.line(new RegExp(`^applied: containers .*\\+${escape(name)}[ ;]`), 30_000);
          const before = cpuTicks();
          const t0 = performance.now();
          if ((await server.start(all[i]!)) !== 1) throw new Error(`the start event of ${name} went to no watcher`);
          const t1 = await done;
          const after = cpuTicks();
          // The rule is in the kernel (the line is written after iptables-restore returned).
          const nat = must([...exec(wns), "iptables", "-t", "nat", "-S", "DOCKER"]);
          if (!nat.includes(`--dport ${FIRST_PORT + i} -j DNAT`)) throw new Error(`after the watcher's line for ${name}, its DNAT rule is not in the kernel`);
          const st = before && after ? after.steal - before.steal : 0;
          const tot = before && after ? after.total - before.total : 0;
          if (tries === 0) continue; // warm-up
          if (tot > 0 && (100 * st) / tot > ctx.maxSteal) noisy++;
          else {
            quiet.push(t1 - t0);
            steal += st;
            total += tot;
          }
          await sleep(200);
        }
        const l = { quiet, noisy, stealPct: total > 0 ? (100 * steal) / total : 0 };
        latencies.push([label, l]);
        // Issue #26: drift put back with no Docker event — `iptables -F DOCKER-USER` (as a
        // netfilter-persistent or ufw reload would) to the watcher's line saying it loaded it again.
        if (debounce === undefined) {
          for (let k = 0; k <= heals; k++) {
            const done = w.line(/^applied: IPv4: filter DOCKER-USER \+/, 30_000);
            const t0 = performance.now();
            must([...exec(wns), "iptables", "-F", "DOCKER-USER"]);
            const t1 = await done;
            if (k > 0) healed.push(t1 - t0); // the first: warm-up
            await sleep(200);
          }
        }
        ctx.noted(`watch, ${containers} containers, --debounce ${label}`, { quiet: quiet.length, noisy, stealPct: l.stealPct, contended: quiet.length < 3 });
      } finally {
        await w.stop();
      }
      ns.drop(wns);
    }
    // The full-ruleset path of the same state: a fresh compile of every rule, loaded whole.
    const facts = join(sub, "facts.json");
    writeFileSync(facts, JSON.stringify({ ...engineFacts(0), containers: all.slice(0, containers + added) }));
    const fns = ns.fresh("full");
    const dockerEnv = `DOCKER_HOST=${server.dockerHost}`;
    const pipe = (source: string) => ({ argv: ["sh", "-c", `set -e; env ${dockerEnv} ${ctx.bin} compile ${policy} ${source} -f iptables 2>/dev/null | ${exec(fns).join(" ")} iptables-restore`] });
    const m = measureEach({ file: pipe(`--facts ${facts}`), docker: pipe("--docker") }, { runs: containers >= 2000 ? ctx.bigRuns : ctx.runs, maxSteal: ctx.maxSteal });
    ctx.noted(`full-ruleset path, ${containers} containers`, m.rounds);
    const loaded = must([...exec(fns), "iptables-save", "-t", "nat"]);
    if (dnats(loaded) !== containers + added) throw new Error(`the full path loaded ${dnats(loaded)} DNAT rules, not ${containers + added}`);
    // What a reconcile does besides reading and compiling: iptables-save of the loaded rules.
    const save = measureEach({ save: { argv: [...exec(fns), "iptables-save"] } }, { runs: ctx.runs, maxSteal: ctx.maxSteal });
    return { latencies, healed, full: { ...m.by, rounds: m.rounds }, reconcileHint: `iptables-save of these rules alone: ${fmt(save.by.save)}` };
  } finally {
    ns.dropAll();
    server.close();
  }
}

/** The memory of one watcher over `reconciles` reconciles (a new container started, then stopped, in turns: churn). */
export interface MemoryRun {
  samples: { n: number; hwm: number; rss: number }[];
  /** The live JS heap after each full collection (MB), and after how many reconciles (--trace-gc only). */
  heap: { n: number; mb: number }[];
  perReconcile: number;
}

/**
 * One watcher over `reconciles` reconciles (a container started and stopped in turns, each
 * reconcile changing the kernel): VmRSS and VmHWM at the start and after each quarter. With
 * `traced`, the bundle runs as a script with bin/dockwall's flags and --trace-gc (the snapshot
 * loads only with the flags it was built with), and the heap left after each full collection
 * is read from the trace: RSS alone rises until V8 first collects the old generation.
 */
export async function watchMemory(ctx: Ctx, containers: number, reconciles: number, traced = false, points = 4): Promise<MemoryRun> {
  const sub = join(ctx.dir, `watchmem${containers}${traced ? "-traced" : ""}`);
  mkdirSync(sub, { recursive: true });
  const all = engineFacts(containers + 1).containers;
  const template = JSON.stringify(all[containers]!);
  const templateId = all[containers]!.Id as string;
  const templateIp = (all[containers]!.NetworkSettings as { Networks: { bridge: { IPAddress: string } } }).Networks.bridge.IPAddress;
  const templateName = containerName(containers);
  /** Churn: every start is a new container (its own id, name and address, as Docker hands them out), so nothing kept per container is reused. */
  const churned = (k: number): { c: Record<string, unknown>; name: string } => {
    const id = createHash("sha256").update(`churn ${k}`).digest("hex");
    const m = k % 30_000;
    const name = `churn${k}`;
    const text = template.replaceAll(templateId, id).replaceAll(templateId.slice(0, 12), id.slice(0, 12)).replaceAll(`"${templateIp}"`, `"172.17.${100 + Math.floor(m / 254)}.${(m % 254) + 1}"`).replaceAll(`/${templateName}"`, `/${name}"`);
    return { c: JSON.parse(text) as Record<string, unknown>, name };
  };
  let extra = churned(0);
  const server = await startFakeEngine(sub, engineAnswers(engineFacts(containers)));
  const ns = new Namespaces();
  let n = 0;
  const heap: { n: number; mb: number }[] = [];
  try {
    const policy = join(sub, "p.dw");
    writeFileSync(policy, enginePolicy(containers));
    const env = { ...process.env, DOCKER_HOST: server.dockerHost, DOCKWALL_STATE_DIR: join(sub, "state") };
    let command = [ctx.bin];
    if (traced) {
      const root = join(dirname(ctx.bin), "..");
      const flags = /^flags="([^"]*)"/m.exec(readFileSync(ctx.bin, "utf8"))?.[1]?.split(/\s+/).filter(Boolean) ?? [];
      command = [process.execPath, ...flags, "--trace-gc", join(root, "dist", "dockwall.cjs")];
    }
    const onStdout = (line: string) => {
      const m = /Mark-Compact [\d.]+ \([\d.]+\) -> ([\d.]+) \(/.exec(line);
      if (m) heap.push({ n, mb: Number(m[1]) });
    };
    const w = new WatchProcess([...exec(ns.fresh(`watch-memory${traced ? "-traced" : ""}`)), ...command, "watch", policy, "--debounce", "0"], env, traced ? onStdout : undefined);
    try {
      await w.line(/^applied: containers \+/, 60_000);
      const comm = readFileSync(`/proc/${w.pid}/comm`, "utf8").trim();
      if (comm !== "node") throw new Error(`the watcher's process is ${comm}, not node`);
      const samples = [{ n: 0, ...w.memory() }];
      const every = Math.max(1, Math.floor(reconciles / points));
      const t0 = performance.now();
      for (n = 1; n <= reconciles; n++) {
        const up = n % 2 === 1;
        if (up) extra = churned(n);
        const done = w.line(new RegExp(`^applied: containers ${up ? "\\+" : "-"}${escape(extra.name)};`), 30_000);
        if (up) await server.start(extra.c);
        else await server.die(extra.c.Id as string);
        await done;
        if (n % every === 0 || n === reconciles) samples.push({ n, ...w.memory() });
      }
      return { samples, heap, perReconcile: (performance.now() - t0) / reconciles };
    } finally {
      await w.stop();
    }
  } finally {
    ns.dropAll();
    server.close();
  }
}

/** The memory lines and verdict: flat when the heap left by full collections in the second half is at most 20% above the first half's. */
export function memoryReport(containers: number, real: MemoryRun, traced: MemoryRun): { lines: string[]; flat: boolean | undefined } {
  const reconciles = traced.samples[traced.samples.length - 1]!.n;
  const rss = (r: MemoryRun) => r.samples.map((s) => `${s.n}: ${(s.rss / 1024).toFixed(0)}/${(s.hwm / 1024).toFixed(0)}`).join(", ");
  const after = traced.heap.filter((h) => h.n >= 1);
  const firstHalf = after.filter((h) => h.n <= reconciles / 2).map((h) => h.mb);
  const secondHalf = after.filter((h) => h.n > reconciles / 2).map((h) => h.mb);
  const flat = firstHalf.length && secondHalf.length ? Math.max(...secondHalf) <= 1.2 * Math.max(...firstHalf) : undefined;
  const range = (xs: number[]) => (xs.length ? `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} MB` : "none");
  return {
    flat,
    lines: [
      `memory of one watcher (${containers} containers, --debounce 0, a new container started, then stopped, in turns (churn), each reconcile changing the kernel, ${real.perReconcile.toFixed(0)} ms each), ` +
        `RSS/peak RSS in MB after N reconciles: bin/dockwall ${rss(real)}; the bundle as a script with --trace-gc ${rss(traced)}`,
      `JS heap left by each full collection (--trace-gc): ${after.length} collections, ${range(firstHalf)} in the first ${reconciles / 2} reconciles, ${range(secondHalf)} in the last ${reconciles / 2} ` +
        `(${flat === undefined ? "too few full collections to tell" : flat ? "flat" : "GROWING"})`,
    ],
  };
}

export interface WatchResult {
  lines: string[];
  target: string;
}

/** Issue #15: event → rule latency at 200 and 2,000 containers, and a long-running watcher's memory. */
export async function benchWatch(ctx: Ctx, opts: { sizes?: number[]; events?: number; reconciles?: number } = {}): Promise<WatchResult> {
  const sizes = opts.sizes ?? [200, 2000];
  const events = opts.events ?? Number(process.env.BENCH_WATCH_EVENTS ?? 20);
  const reconciles = opts.reconciles ?? Number(process.env.BENCH_WATCH_RECONCILES ?? 1000);
  const rows: string[][] = [];
  const hints: string[] = [];
  const heals: string[] = [];
  let p95at2000: number | undefined;
  let quietAt2000 = true;
  for (const containers of sizes) {
    const r = await watchAt(ctx, containers, events, [undefined, 0]);
    for (const [label, l] of r.latencies) {
      const p50 = percentile(l.quiet, 50);
      const p95 = percentile(l.quiet, 95);
      if (containers === 2000 && label === "default") {
        p95at2000 = p95;
        quietAt2000 = l.quiet.length >= 10;
      }
      rows.push([
        String(containers),
        label === "default" ? "20 (default)" : label,
        `${l.quiet.length} (${l.noisy} set aside)`,
        ms(p50),
        ms(p95),
        ms(Math.max(...l.quiet)),
        label === "default" ? `${fmt(r.full.file)}` : "",
        label === "default" ? `${fmt(r.full.docker)}` : "",
      ]);
    }
    hints.push(`${containers} containers: ${r.reconcileHint}`);
    if (r.healed.length) heals.push(`| ${containers} | ${r.healed.length} | ${ms(percentile(r.healed, 50))} | ${ms(percentile(r.healed, 95))} | ${ms(Math.max(...r.healed))} |`);
  }
  const header = ["containers", "--debounce (ms)", "events", "p50 event → rule", "p95", "max", "full path: compile --facts FILE -f iptables, piped to iptables-restore", "the same with compile --docker"];
  // V8 collects the old generation only every few hundred reconciles: the traced watcher runs three times as long.
  const mem = reconciles > 0 ? memoryReport(20, await watchMemory(ctx, 20, reconciles), await watchMemory(ctx, 20, 3 * reconciles, true)) : undefined;
  const lines = [
    `dockwall watch against the fake Engine API (its own process), one container started per event (a 200 ms pause between events), the time from the start event to the watcher's 'applied: containers +NAME' line (rule checked in the kernel after each):`,
    ...[header, header.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`),
    ...hints,
    `drift put back with no Docker event (issue #26): \`iptables -F DOCKER-USER\` in the watcher's namespace to its 'applied: IPv4: filter DOCKER-USER' line (nft monitor's report, default debounce; Docker itself puts nothing back):`,
    "| containers | flushes | p50 flush → rules back | p95 | max |",
    "| --- | --- | --- | --- | --- |",
    ...heals,
    ...(mem ? mem.lines : []),
  ];
  const target =
    `watch, p95 from a start event to its rule in the kernel < 250 ms at 2,000 containers (default debounce): ${p95at2000 === undefined ? "n/a" : `${ms(p95at2000)} (${p95at2000 < 250 ? "met" : "not met"}${quietAt2000 ? "" : ", fewer than 10 quiet events"})`}` +
    (mem ? `; a watcher's memory over ${reconciles} (and ${3 * reconciles}) reconciles stays flat (the heap after full collections): ${mem.flat === undefined ? "n/a" : mem.flat ? "met" : "not met"}` : "");
  return { lines, target };
}
