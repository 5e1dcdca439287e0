// Process helpers shared by the test lab (kernel.ts, dockerlab.ts, image.ts).
//
// Everything the lab creates carries the prefix `dwt-<pid>-<token>-`, where <pid> is the
// Node process that created it.  Leftovers of a dead process (crash, SIGKILL) are found by
// that prefix and removed by cleanupLeftovers(); objects of live processes (e.g. other
// vitest workers running in parallel) are never touched.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PREFIX = 'dwt-';
/** Unique per process (and per vitest worker thread, thanks to the random token). */
export const OWNER = `${PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;

let counter = 0;
/** A fresh name `dwt-<pid>-<token>-<n><suffix>`. */
export function uniqueName(suffix = ''): string {
  counter += 1;
  return `${OWNER}-${counter}${suffix}`;
}

/** PATH with the sbin directories (dockerd looks for docker-proxy/containerd in PATH). */
export const PATH_ENV = [
  ...new Set([...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin']),
].join(':');

export function which(name: string): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  for (const dir of PATH_ENV.split(':')) {
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  /** Extra environment; a value of undefined removes the variable. */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

export function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: PATH_ENV, LC_ALL: 'C' };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Synchronous run (argv[0] looked up in PATH_ENV). Never throws on a non-zero exit. */
export function run(argv: string[], opts: RunOptions = {}): RunResult {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    input: opts.input ?? '',
    env: baseEnv(opts.env),
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const err = r.error ? `${argv[0]}: ${r.error.message}\n` : '';
  return { status: r.status, stdout: r.stdout ?? '', stderr: err + (r.stderr ?? '') };
}

/** Like run() but throws with stderr when the exit status is not 0. */
export function runOk(argv: string[], opts: RunOptions = {}): string {
  const r = run(argv, opts);
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${argv.join(' ')}\n${r.stderr.trim()}`);
  return r.stdout;
}

export interface AsyncRunOptions extends RunOptions {
  /** Resolve (and kill the process) as soon as this returns true for the stdout seen so far. */
  doneWhen?: (stdout: string) => boolean;
}

/** Asynchronous run: does not block the event loop (vitest timeouts keep working). */
export function runAsync(argv: string[], opts: AsyncRunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const child = spawn(argv[0]!, argv.slice(1), { env: baseEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    const finish = (status: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      stderr += `\n(timeout after ${opts.timeoutMs ?? 60_000} ms)`;
      finish(null);
    }, opts.timeoutMs ?? 60_000);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      stdout += d;
      if (opts.doneWhen?.(stdout)) {
        child.kill('SIGKILL');
        finish(0);
      }
    });
    child.stderr.on('data', (d: string) => (stderr += d));
    child.on('error', (e) => {
      stderr += `${argv[0]}: ${e.message}\n`;
      finish(null);
    });
    child.on('close', (code) => finish(code));
    child.stdin.on('error', () => {}); // EPIPE when the child exits early
    child.stdin.end(opts.input ?? '');
  });
}

export async function runAsyncOk(argv: string[], opts: RunOptions = {}): Promise<string> {
  const r = await runAsync(argv, opts);
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${argv.join(' ')}\n${r.stderr.trim()}`);
  return r.stdout;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** PIDs whose command line contains `needle` (a unique work-dir path of ours). */
export function pidsWithCmdline(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    if (pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) out.push(pid);
    } catch {
      // process went away
    }
  }
  return out;
}

/** Lazily unmount everything mounted below dir (overlay, shm, nsfs of a dead dockerd). */
export function umountBelow(dir: string): void {
  const d = dir.endsWith('/') ? dir : dir + '/';
  let mounts: string[];
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .map((m) => m.replace(/\\040/g, ' '))
      .filter((m) => m.startsWith(d));
  } catch {
    return;
  }
  for (const m of mounts.sort().reverse()) run(['umount', '-l', m]);
}

/** rm -rf that never crosses into a (still) mounted file system. */
export function removeDir(dir: string): void {
  if (!existsSync(dir)) return;
  umountBelow(dir);
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    run(['rm', '-rf', '--one-file-system', dir]);
  }
}

export function netnsList(): string[] {
  try {
    return readdirSync('/var/run/netns');
  } catch {
    return [];
  }
}

let leftoversDone = false;
/**
 * Remove what dead processes of ours left behind: processes running from their work dirs
 * (dockerd, containerd, shims), mounts, work dirs under os.tmpdir() and network
 * namespaces.  Only names `dwt-<pid>-...` whose <pid> is no longer alive are touched.
 * Runs once per process unless force is set.
 */
export function cleanupLeftovers(force = false): string[] {
  if (leftoversDone && !force) return [];
  leftoversDone = true;
  const removed: string[] = [];
  const dead = (name: string) => {
    const m = /^dwt-(\d+)-/.exec(name);
    return m !== null && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
  };
  const tmp = tmpdir();
  let dirs: string[] = [];
  try {
    dirs = readdirSync(tmp).filter((n) => dead(n));
  } catch {
    // no tmp dir listing
  }
  for (const n of dirs) {
    const dir = join(tmp, n);
    killDockerTree(dir);
    removeDir(dir);
    removed.push(dir);
  }
  for (const ns of netnsList().filter(dead)) {
    run(['ip', 'netns', 'del', ns]);
    removed.push(`netns ${ns}`);
  }
  return removed;
}

/**
 * SIGKILL everything a dockerd with data/exec roots under workDir started: dockerd,
 * containerd and shims (their command lines name workDir), and the container processes
 * (found by the container ids of workDir/data/containers in /proc/PID/cgroup; once a shim
 * is gone they are orphans that nothing else would stop).  Then remove the containers'
 * now empty cgroup directories.
 */
export function killDockerTree(workDir: string): void {
  for (const p of pidsWithCmdline(workDir + '/')) killQuiet(p, 'SIGKILL');
  let ids: string[] = [];
  try {
    ids = readdirSync(join(workDir, 'data', 'containers')).filter((d) => /^[0-9a-f]{64}$/.test(d));
  } catch {
    return;
  }
  if (!ids.length) return;
  const victims: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cg = readFileSync(`/proc/${d}/cgroup`, 'utf8');
      if (ids.some((id) => cg.includes(id))) victims.push(Number(d));
    } catch {
      // gone
    }
  }
  for (const p of victims) killQuiet(p, 'SIGKILL');
  const deadline = Date.now() + 2000;
  while (victims.some(pidAlive) && Date.now() < deadline) spawnSync('sleep', ['0.05']);
  removeContainerCgroups(ids);
}

function removeContainerCgroups(ids: string[]): void {
  const root = '/sys/fs/cgroup';
  const bases = [root];
  try {
    for (const d of readdirSync(root)) bases.push(join(root, d));
  } catch {
    return;
  }
  for (const b of bases) {
    for (const id of ids) {
      for (const p of [join(b, 'docker', id), join(b, 'system.slice', `docker-${id}.scope`)]) {
        if (existsSync(p)) run(['rmdir', p]);
      }
    }
  }
}

export function killQuiet(pid: number, sig: NodeJS.Signals = 'SIGTERM'): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
