// A kernel's iptables tables in memory, and a machine (SystemIo) around it, for apply and
// rollback tests that need no namespace. iptables-save prints what it holds; iptables-restore
// loads as the real one does: without --noflush the tables named are replaced whole; with it,
// a ':' line flushes a user chain that exists (or creates it) and sets a built-in chain's
// policy, and -A, -I N, -D (by rule), -F and -X change one chain. A whole input is one
// transaction; a jump to a chain that does not exist, -X of a chain in use or of a built-in
// one, -D of a rule that is not there: refused, nothing changed — as the kernel would.
import type { SystemIo } from "../../src/apply/command.js";

const BUILTIN: Record<string, string[]> = {
  raw: ["PREROUTING", "OUTPUT"],
  mangle: ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
  nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
  filter: ["INPUT", "FORWARD", "OUTPUT"],
};
const TARGETS = new Set(["ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "SNAT", "MASQUERADE", "LOG", "REDIRECT", "MARK", "CONNMARK", "CT", "NOTRACK", "TCPMSS"]);

type Chain = { policy: string; rules: string[] };
type Tables = Map<string, Map<string, Chain>>;

function fresh(name: string): Map<string, Chain> {
  const t = new Map<string, Chain>();
  for (const c of BUILTIN[name] ?? []) t.set(c, { policy: "ACCEPT", rules: [] });
  return t;
}

function clone(t: Map<string, Chain>): Map<string, Chain> {
  return new Map([...t].map(([n, c]) => [n, { policy: c.policy, rules: [...c.rules] }]));
}

const targetOf = (rule: string) => / -[jg] (\S+)/.exec(rule)?.[1];

export class MemoryKernel {
  readonly tables: Record<4 | 6, Tables> = { 4: new Map(), 6: new Map() };
  /** Every load (not --test), as `iptables-restore --noflush`. */
  readonly loads: string[] = [];

  save(f: 4 | 6): string {
    const out: string[] = [];
    for (const [name, t] of this.tables[f]) {
      out.push(`*${name}`);
      const builtins = BUILTIN[name] ?? [];
      const order = [...builtins.filter((c) => t.has(c)), ...[...t.keys()].filter((c) => !builtins.includes(c)).sort()];
      for (const c of order) out.push(`:${c} ${builtins.includes(c) ? t.get(c)!.policy : "-"} [0:0]`);
      for (const c of order) out.push(...t.get(c)!.rules);
      out.push("COMMIT");
    }
    return out.length ? out.join("\n") + "\n" : "";
  }

  restore(f: 4 | 6, input: string, opts: { noflush: boolean; test: boolean }): void {
    const staged: Tables = new Map();
    let name: string | undefined;
    let t: Map<string, Chain> | undefined;
    const fail = (n: number, why: string): never => {
      throw new Error(`${f === 4 ? "iptables" : "ip6tables"}-restore: line ${n} failed: ${why}`);
    };
    input.split("\n").forEach((raw, i) => {
      const n = i + 1;
      const line = raw.trim();
      if (!line || line.startsWith("#")) return;
      if (line.startsWith("*")) {
        name = line.slice(1);
        const have = this.tables[f].get(name);
        t = opts.noflush && have ? clone(have) : fresh(name);
        return;
      }
      if (!t || !name) return fail(n, "outside a table");
      const builtins = BUILTIN[name] ?? [];
      if (line === "COMMIT") {
        for (const [c, chain] of t) for (const r of chain.rules) {
          const to = targetOf(r);
          if (to && !TARGETS.has(to) && !t.has(to)) fail(n, `${c} jumps to ${to}, which does not exist`);
        }
        staged.set(name, t);
        t = undefined;
        return;
      }
      const m = /^:(\S+) (\S+)/.exec(line);
      if (m) {
        const [, c, policy] = m as unknown as [string, string, string];
        if (builtins.includes(c)) t.get(c)!.policy = policy;
        else t.set(c, { policy: "-", rules: [] });
        return;
      }
      const [cmd, c, ...rest] = line.split(" ");
      const chain = c ? t.get(c) : undefined;
      if (!chain) return fail(n, `no chain ${c}`);
      if (cmd === "-A") chain.rules.push(line);
      else if (cmd === "-I") {
        const at = /^\d+$/.test(rest[0] ?? "") ? Number(rest.shift()) - 1 : 0;
        chain.rules.splice(at, 0, `-A ${c} ${rest.join(" ")}`);
      } else if (cmd === "-D") {
        const at = chain.rules.indexOf(`-A ${c} ${rest.join(" ")}`);
        if (at < 0) fail(n, `no such rule in ${c}`);
        chain.rules.splice(at, 1);
      } else if (cmd === "-F") chain.rules = [];
      else if (cmd === "-X") {
        if (builtins.includes(c!)) fail(n, `${c} is built in`);
        for (const [o, other] of t) if (o !== c && other.rules.some((r) => targetOf(r) === c)) fail(n, `${c} is in use by ${o}`);
        t.delete(c!);
      } else fail(n, `unknown command ${cmd}`);
    });
    if (opts.test) return;
    for (const [nm, tb] of staged) this.tables[f].set(nm, tb);
    this.loads.push(`${f === 4 ? "iptables" : "ip6tables"}-restore${opts.noflush ? " --noflush" : ""}`);
  }
}

export interface Machine {
  io: SystemIo;
  kernel: MemoryKernel;
  files: Map<string, string>;
  /** The programs apply started (the detached rollback of --confirm): recorded, not run. */
  spawned: string[][];
  /** Called on each io.sleep with the time: what happens meanwhile (a container starts). */
  onSleep?: (now: number) => void;
  /** The processes that are there (a watcher's pid), and the signals sent to them. */
  processes: Set<number>;
  signals: string[];
}

/** A host in memory: its kernel, the state directory /state, a clock that io.sleep moves. */
export function machine(kernel = new MemoryKernel()): Machine {
  const files = new Map<string, string>();
  let now = Date.UTC(2025, 0, 1);
  const m: Machine = {
    kernel,
    files,
    spawned: [],
    processes: new Set(),
    signals: [],
    io: {
      run: (cmd, args, input) => {
        const f = cmd.startsWith("ip6") ? 6 : 4;
        if (/^ip6?tables-save$/.test(cmd)) return kernel.save(f);
        if (/^ip6?tables-restore$/.test(cmd)) {
          kernel.restore(f, input ?? "", { noflush: args.includes("--noflush"), test: args.includes("--test") });
          return "";
        }
        throw new Error(`spawnSync ${cmd} ENOENT`);
      },
      runAsync: async (cmd, args) => m.io.run(cmd, args),
      env: {},
      stateDir: "/state",
      readFile: (p) => files.get(p),
      writeFile: (p, t) => void files.set(p, t),
      removeFile: (p) => void files.delete(p),
      rename: (a, b) => {
        const t = files.get(a);
        if (t === undefined) return false;
        files.delete(a);
        files.set(b, t);
        return true;
      },
      pid: 4242,
      signal: (pid, sig) => {
        if (!m.processes.has(pid)) return false;
        if (sig !== 0) m.signals.push(`${sig} ${pid}`);
        return true;
      },
      spawnDockwall: async (args) => void m.spawned.push(args),
      now: () => now,
      sleep: async (ms) => {
        now += ms;
        m.onSleep?.(now);
      },
      readLine: async () => undefined,
      stdinIsTTY: false,
    },
  };
  return m;
}
