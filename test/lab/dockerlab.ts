// Packet lab: a real dockerd 20.10 in its own network namespace, with "iptables": false, so
// the rules under test are the only ones in the kernel; real clients on a "wan" and a "lan"
// link; probes with real packets (TCP/UDP via socat) that report who answered and which
// client address the server saw.  Mirrors /work/shared/oracle/probe.sh (mode b).
//
// Topology (every namespace created here, named dwt-<pid>-<token>-<n>{-h,-w,-l}):
//
//   wan ns  eth0 198.51.100.2/24 [2001:db8:100::2/64] -- veth -- host ns eth0 198.51.100.1/24 [2001:db8:100::1/64]
//   lan ns  eth0 192.168.77.2/24 [2001:db8:77::2/64]  -- veth -- host ns eth1 192.168.77.1/24 [2001:db8:77::1/64]
//   host ns: dockerd (nsenter --net=..., NOT `ip netns exec`, which remounts /sys and hides
//            the cgroup mounts), ip_forward=1 (and IPv6 forwarding), docker bridges.
//
//   wan and lan: default routes via the host (so they can address container IPs directly,
//   as a neighbour with a static route would).  lan additionally routes 127.0.0.0/8 via the
//   host: its own 127.0.0.1/8 is removed from lo (otherwise replies from 127.0.0.1 are
//   martians) and route_localnet=1 is set on its eth0 - this tests "a port published on
//   127.0.0.1 is reachable from a LAN neighbour" (Docker's DNAT happens before the host's
//   martian check).  Hence lan has no usable loopback.
//   wan and lan run egress listeners: tcp 7000 (HTTP, "tcp wan|lan <client addr>") and
//   udp 7001 ("udp wan|lan <client addr>"), on all their addresses.
//   Nothing is linked to the root namespace.
//
// The host ns starts with empty rule sets (all policies ACCEPT); the lab adds no rules:
// only what load()/loadNoflush() is given.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, deleteNetns, describeIf, kernelSupport, type Family, type Netns, type Support } from './kernel.js';
import { cgiId, IMAGE_REF, imageTarball, UDPREPLY_SH } from './image.js';
import {
  baseEnv,
  cleanupLeftovers,
  killDockerTree,
  killQuiet,
  OWNER,
  pidAlive,
  pidsWithCmdline,
  removeDir,
  run,
  runAsync,
  sleep,
  which,
  type RunResult,
} from './proc.js';

// ------------------------------------------------------------------ types ----

export interface LabNetwork {
  name: string;
  /** Linux bridge name (com.docker.network.bridge.name), max 15 chars. */
  bridge: string;
  subnet: string;
  subnet6?: string;
  internal?: boolean;
  /** false -> -o com.docker.network.bridge.enable_icc=false */
  icc?: boolean;
}

export interface LabContainer {
  name: string;
  /** Network name; default: Docker's default bridge (docker0, 172.17.0.0/16). */
  network?: string;
  /** Fixed address (--ip).  On the default bridge Docker refuses --ip: there the address is
   *  only checked after start (Docker hands out .2, .3, ... in start order). */
  ip?: string;
  ip6?: string;
  /** `docker run -p` values, e.g. "8080:80", "127.0.0.1:9000:9000", "5353:53/udp". */
  publish?: string[];
  /** Servers in the container: "tcp:80", "udp:53". */
  listen: string[];
}

export interface LabSpec {
  /** dockerd --userland-proxy (default true, as Docker's default). */
  userlandProxy?: boolean;
  /** dockerd --ipv6 --fixed-cidr-v6 2001:db8:1::/64, plus IPv6 on the wan/lan links. */
  ipv6?: boolean;
  /** IPv6 addresses on the wan/lan links even without dockerd --ipv6 (default: = ipv6).
   *  Lets a test reach docker-proxy's [::] listener from outside. */
  linkIpv6?: boolean;
  networks?: LabNetwork[];
  containers: LabContainer[];
  /** More dockerd flags (rarely needed). */
  dockerdArgs?: string[];
  /** "iptables": true: dockerd writes its own rules into the lab's host namespace (what dockwall
   *  must reproduce). Default false, as on a host where dockwall writes them. */
  iptables?: boolean;
}

export type ProbeFrom = 'wan' | 'lan' | 'host' | `ctr:${string}`;
export type Proto = 'tcp' | 'udp';

export interface ProbeResult {
  /** An application reply came back (for udp: a reply datagram). */
  open: boolean;
  /** NAME in the reply: container name, or 'wan' / 'lan' for the egress listeners. */
  answeredBy?: string;
  /** Client address the server saw (DNAT keeps it; docker-proxy / MASQUERADE replace it). */
  clientAddr?: string;
  /** The reply line, e.g. "tcp web 198.51.100.2". */
  reply?: string;
  /** TCP connected but nothing answered (e.g. dockerd's port-reserving socket). */
  handshakeOnly?: boolean;
}

export interface ProbeOptions {
  /** Seconds for connect / reply (default 1). */
  timeout?: number;
  /** Retry a non-open result this many times (default 0). */
  retries?: number;
}

export interface ContainerInfo {
  name: string;
  id: string;
  pid: number;
  /** First IPv4 / IPv6 address, and all addresses by network name. */
  ip?: string;
  ip6?: string;
  networks: Record<string, { ip?: string; ip6?: string }>;
}

export interface Lab {
  readonly host: Netns;
  readonly wan: Netns;
  readonly lan: Netns;
  /** unix:///.../docker.sock of this lab's dockerd. */
  readonly dockerHost: string;
  readonly dockerdPid: number;
  readonly workDir: string;
  readonly containers: Record<string, ContainerInfo>;
  /** Bridge name of each network ('bridge' -> docker0). */
  readonly bridges: Record<string, string>;
  /** Run the docker CLI against this lab's daemon. */
  docker(args: string[], input?: string): Promise<RunResult>;
  /**
   * Stops dockerd (SIGTERM: its containers stop too) and starts it again with the same flags.
   * `crash`: SIGKILL instead (its containers keep running until the new dockerd restores them);
   * `meanwhile` runs between the stop and the new dockerd's start.
   */
  restartDaemon(opts?: { crash?: boolean; meanwhile?: () => Promise<void> }): Promise<void>;
  /** iptables-restore (and ip6tables-restore when v6 is given) into the host ns, flushing. Throws with stderr. */
  load(v4: string, v6?: string): void;
  /** Same with --noflush. */
  loadNoflush(v4: string, v6?: string): void;
  /** Empty every existing table of both families (builtin chains ACCEPT, no user chains).
   *  load() only replaces the tables its text names - as iptables-restore does on a host. */
  reset(): void;
  /** iptables-save of the host ns (normalised like the corpus). */
  save(family: Family): string;
  /** Replace `br-{NAME}` (the corpus' *.norm form) by the lab's bridge of network NAME. */
  mapBridges(rules: string): string;
  /** Listening sockets in the host ns, e.g. ["tcp 0.0.0.0:8080", "tcp [::]:8080"]. */
  listeners(): string[];
  /** A service of the host itself (INPUT): tcp PORT answering "tcp NAME <client addr>" like the containers. */
  serveOnHost(port: number, name: string): Promise<void>;
  /** docker-proxy command lines (children of dockerd), sorted. */
  proxies(): string[];
  probe(from: ProbeFrom, addr: string, port: number, proto: Proto, opts?: ProbeOptions): Promise<ProbeResult>;
  stop(): Promise<void>;
}

export const ADDR = {
  hostWan: '198.51.100.1',
  wan: '198.51.100.2',
  hostLan: '192.168.77.1',
  lan: '192.168.77.2',
  hostWan6: '2001:db8:100::1',
  wan6: '2001:db8:100::2',
  hostLan6: '2001:db8:77::1',
  lan6: '2001:db8:77::2',
  /** default bridge (docker0) */
  bridgeGw: '172.17.0.1',
  /** --fixed-cidr-v6 of docker0 when spec.ipv6 */
  fixedCidrV6: '2001:db8:1::/64',
  /** egress listener ports in wan and lan */
  egressTcp: 7000,
  egressUdp: 7001,
} as const;

// ---------------------------------------------------------------- support ----

let dockerCli: string | undefined;
/** The docker client whose major.minor matches dockerd (/usr/local/bin/docker may be 28.x). */
export function dockerClient(): string {
  if (dockerCli) return dockerCli;
  const want = /Docker version (\d+\.\d+)\./.exec(run(['dockerd', '--version']).stdout)?.[1];
  if (!want) throw new Error('dockerd --version: no version');
  const candidates = ['/usr/bin/docker', ...(process.env.PATH ?? '').split(':').map((d) => join(d, 'docker'))];
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    if (new RegExp(`^Docker version ${want.replace('.', '\\.')}\\.`).test(run([c, '--version']).stdout)) return (dockerCli = c);
  }
  throw new Error(`no docker client with version ${want}.x (dockerd's) found`);
}

let dockerSupportCache: Support | undefined;
/** kernelSupport() + dockerd, containerd, runc, docker-proxy, a matching client, socat,
 *  nsenter, busybox-static, and the image tarball can be built. Cached per process. */
export function dockerSupport(): Support {
  if (dockerSupportCache) return dockerSupportCache;
  const k = kernelSupport();
  if (!k.ok) return (dockerSupportCache = k);
  const tools = ['dockerd', 'containerd', 'containerd-shim-runc-v2', 'runc', 'docker-proxy', 'nsenter', 'socat', 'busybox', 'tar', 'ldd', 'ss'];
  const missing = tools.filter((t) => !which(t));
  if (missing.length) return (dockerSupportCache = { ok: false, reason: `missing tools: ${missing.join(', ')}` });
  try {
    dockerClient();
    imageTarball();
  } catch (e) {
    return (dockerSupportCache = { ok: false, reason: (e as Error).message.split('\n')[0]! });
  }
  if (!existsSync('/sys/fs/cgroup/cgroup.controllers') && !existsSync('/sys/fs/cgroup/memory')) {
    return (dockerSupportCache = { ok: false, reason: 'no cgroup file system mounted at /sys/fs/cgroup' });
  }
  return (dockerSupportCache = { ok: true });
}

/** describe() for tests that need the packet lab; prints `docker tests skipped: <reason>`
 *  once and skips, or fails with the reason when DOCKWALL_REQUIRE_KERNEL=1. */
export function describeDocker(name: string, fn: () => void): void {
  // without kernel support, say so (one "kernel tests skipped" line for both kinds)
  if (!kernelSupport().ok) describeIf(kernelSupport, 'kernel', name, fn);
  else describeIf(dockerSupport, 'docker', name, fn);
}

// ------------------------------------------------------------ concurrency ----

const MAX_PARALLEL_PROBES = 16;
let active = 0;
const waiting: (() => void)[] = [];
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  if (active >= MAX_PARALLEL_PROBES) await new Promise<void>((r) => waiting.push(r));
  active += 1;
  try {
    return await fn();
  } finally {
    active -= 1;
    waiting.shift()?.();
  }
}

// ------------------------------------------------------------------ probes ---

/** Parse "tcp NAME ADDR" / "udp NAME ADDR"; IPv6 addresses are put in canonical form
 *  (socat reports them uncompressed: 2001:0db8:0000:...). */
function parseReply(raw: string): Pick<ProbeResult, 'reply' | 'answeredBy' | 'clientAddr'> {
  const m = /^(tcp|udp) (\S+) (\S+)$/.exec(raw);
  if (!m) return { reply: raw };
  const addr = canonicalIp(m[3]!);
  return { reply: `${m[1]} ${m[2]} ${addr}`, answeredBy: m[2], clientAddr: addr };
}

/** RFC 5952 text form of an IPv6 address (IPv4 and IPv4-mapped: dotted quad). */
export function canonicalIp(addr: string): string {
  let a = addr.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (!a.includes(':')) return a;
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a)) return a.slice(7);
  // expand to 8 groups
  let tail: string[] = [];
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4) {
    const n = v4.slice(1).map(Number);
    tail = [((n[0]! << 8) | n[1]!).toString(16), ((n[2]! << 8) | n[3]!).toString(16)];
    a = a.slice(0, v4.index) + '0:0';
  }
  const [head, rest] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined ? (rest ? rest.split(':') : []) : [];
  const missing = 8 - h.length - r.length;
  let groups = rest !== undefined ? [...h, ...Array<string>(missing).fill('0'), ...r] : h;
  if (tail.length) groups = [...groups.slice(0, 6), ...tail];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) return addr;
  const g = groups.map((x) => parseInt(x, 16).toString(16));
  // longest run (>= 2) of zero groups becomes ::
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return g.join(':');
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}

async function probeOnce(nsPath: string, addr: string, port: number, proto: Proto, timeout: number): Promise<ProbeResult> {
  const v6 = addr.includes(':');
  const host = v6 ? `[${addr}]` : addr;
  const fam = v6 ? '6' : '4';
  if (proto === 'tcp') {
    // -t: after our request is sent, wait this long for the server to finish (an answering
    // server closes at once; only a silent one costs the full time).
    const r = await runAsync(
      ['nsenter', `--net=${nsPath}`, 'socat', `-t${timeout * 2}`, `-T${timeout * 2}`, '-', `TCP${fam}:${host}:${port},connect-timeout=${timeout}`],
      {
        input: 'GET /cgi-bin/id HTTP/1.0\r\n\r\n',
        timeoutMs: timeout * 3000 + 2000,
        doneWhen: (out) => /\r?\n\r?\n(tcp \S+ \S+)\r?\n/.test(out),
      },
    );
    const lines = r.stdout.replace(/\r/g, '').split('\n');
    if (lines[0]?.startsWith('HTTP/1')) {
      return { open: true, ...parseReply(lines.filter((l) => l.trim() !== '').pop() ?? '') };
    }
    return r.status === 0 ? { open: false, handshakeOnly: true } : { open: false };
  }
  const r = await runAsync(['nsenter', `--net=${nsPath}`, 'socat', `-t${timeout}`, `-T${timeout}`, '-', `UDP${fam}:${host}:${port}`], {
    input: 'ping\n',
    timeoutMs: timeout * 1000 + 3000,
    doneWhen: (out) => out.includes('\n'),
  });
  const reply = r.stdout.split('\n')[0]?.trim() ?? '';
  return reply ? { open: true, ...parseReply(reply) } : { open: false };
}

// -------------------------------------------------------- oracle matrices ----

export interface ReachLine {
  from: ProbeFrom;
  addr: string;
  port: number;
  proto: Proto;
  open: boolean;
  /** Text after '#': the reply ("tcp web 172.17.0.1") or "handshake-only". */
  note?: string;
}

/** Parse the oracle's reach*.txt: `<from> -> <addr>:<port>/<proto> : open|closed  [# note]`. */
export function parseReach(text: string): ReachLine[] {
  const out: ReachLine[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^(\S+) -> \[?([^\s\]]+?)\]?:(\d+)\/(tcp|udp) : (open|closed)(?:\s+#\s*(.*))?$/.exec(line);
    if (!m) throw new Error(`unparsable reach line: ${line}`);
    out.push({ from: m[1] as ProbeFrom, addr: m[2]!, port: Number(m[3]), proto: m[4] as Proto, open: m[5] === 'open', ...(m[6] ? { note: m[6].trim() } : {}) });
  }
  return out;
}

/** Format one probe the way the oracle's reach*.txt does. */
export function formatReach(l: Pick<ReachLine, 'from' | 'addr' | 'port' | 'proto'>, r: ProbeResult): string {
  const a = l.addr.includes(':') ? `[${l.addr}]` : l.addr;
  const note = r.open ? r.reply : r.handshakeOnly ? 'handshake-only' : undefined;
  return `${l.from} -> ${a}:${l.port}/${l.proto} : ${r.open ? 'open' : 'closed'}${note ? `  # ${note}` : ''}`;
}

/** Run every probe of `lines` (in parallel) and return the formatted matrix lines in order. */
export async function probeMatrix(lab: Lab, lines: Pick<ReachLine, 'from' | 'addr' | 'port' | 'proto'>[], opts?: ProbeOptions): Promise<string[]> {
  return Promise.all(lines.map(async (l) => formatReach(l, await lab.probe(l.from, l.addr, l.port, l.proto, opts))));
}

// --------------------------------------------------------------------- lab ---

const liveLabs = new Set<LabImpl>();
let exitHook = false;

class LabImpl implements Lab {
  host!: Netns;
  wan!: Netns;
  lan!: Netns;
  dockerHost: string;
  dockerdPid = 0;
  workDir: string;
  containers: Record<string, ContainerInfo> = {};
  bridges: Record<string, string> = {};
  private nets: Netns[] = [];
  private dockerd?: ChildProcess;
  private dockerdExited = false;
  private listenerPids: number[] = [];
  private stopped = false;
  private env: Record<string, string | undefined>;

  constructor(readonly spec: LabSpec) {
    this.workDir = mkdtempSync(join(tmpdir(), `${OWNER}-lab`));
    this.dockerHost = `unix://${this.workDir}/docker.sock`;
    this.env = {
      DOCKER_HOST: this.dockerHost,
      DOCKER_CONFIG: join(this.workDir, 'cli'),
      DOCKER_CONTEXT: undefined,
      DOCKER_TLS_VERIFY: undefined,
      DOCKER_CERT_PATH: undefined,
    };
  }

  docker(args: string[], input?: string): Promise<RunResult> {
    return runAsync([dockerClient(), ...args], { input, env: this.env, timeoutMs: 120_000 });
  }

  private async dockerOk(args: string[], input?: string): Promise<string> {
    const r = await this.docker(args, input);
    if (r.status !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.status}):\n${r.stderr.trim()}${this.logTail()}`);
    return r.stdout;
  }

  private logTail(): string {
    try {
      const log = readFileSync(join(this.workDir, 'dockerd.log'), 'utf8').trim().split('\n');
      return `\n--- dockerd.log (tail) ---\n${log.slice(-15).join('\n')}`;
    } catch {
      return '';
    }
  }

  private ns(n: Netns, argv: string[]): void {
    const r = n.run(argv);
    if (r.status !== 0) throw new Error(`[${n.name}] ${argv.join(' ')}: ${r.stderr.trim()}`);
  }

  private ip(n: Netns, ...args: string[]): void {
    const r = run(['ip', '-n', n.name, ...args]);
    if (r.status !== 0) throw new Error(`ip -n ${n.name} ${args.join(' ')}: ${r.stderr.trim()}`);
  }

  async start(): Promise<void> {
    const spec = this.spec;
    const linkV6 = spec.linkIpv6 ?? spec.ipv6 ?? false;
    const tar = imageTarball();

    // --- namespaces and links
    this.host = createNetns('-h');
    this.nets.push(this.host);
    this.wan = createNetns('-w');
    this.nets.push(this.wan);
    this.lan = createNetns('-l');
    this.nets.push(this.lan);
    const H = this.host;
    // No IPv6 duplicate address detection in the host ns: otherwise the bridge addresses
    // Docker assigns (e.g. 2001:db8:1::1) stay "tentative" for 1-2 s after start-up and
    // IPv6 through the bridges fails in the meantime.
    this.ns(H, ['sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    const links: [Netns, string, string, string, string, string][] = [
      [this.wan, 'eth0', ADDR.hostWan, ADDR.wan, ADDR.hostWan6, ADDR.wan6],
      [this.lan, 'eth1', ADDR.hostLan, ADDR.lan, ADDR.hostLan6, ADDR.lan6],
    ];
    for (const [C, hdev, h4, c4, h6, c6] of links) {
      this.ip(H, 'link', 'add', hdev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', C.name);
      this.ip(H, 'addr', 'add', `${h4}/24`, 'dev', hdev);
      this.ip(C, 'addr', 'add', `${c4}/24`, 'dev', 'eth0');
      if (linkV6) {
        this.ip(H, 'addr', 'add', `${h6}/64`, 'dev', hdev, 'nodad');
        this.ip(C, 'addr', 'add', `${c6}/64`, 'dev', 'eth0', 'nodad');
      }
      this.ip(H, 'link', 'set', hdev, 'up');
      this.ip(C, 'link', 'set', 'eth0', 'up');
      this.ip(C, 'route', 'add', 'default', 'via', h4);
      if (linkV6) this.ip(C, '-6', 'route', 'add', 'default', 'via', h6);
    }
    // lan routes 127.0.0.0/8 through the host (see the header comment)
    this.ip(this.lan, 'addr', 'del', '127.0.0.1/8', 'dev', 'lo');
    this.ns(this.lan, ['sysctl', '-qw', 'net.ipv4.conf.eth0.route_localnet=1']);
    this.ip(this.lan, 'route', 'add', '127.0.0.0/8', 'via', ADDR.hostLan, 'dev', 'eth0');

    // --- egress listeners in wan and lan
    for (const [C, name] of [
      [this.wan, 'wan'],
      [this.lan, 'lan'],
    ] as const) {
      const www = join(this.workDir, `${name}-www`);
      mkdirSync(join(www, 'cgi-bin'), { recursive: true });
      writeFileSync(join(www, 'cgi-bin/id'), cgiId(name), { mode: 0o755 });
      const udpreply = join(this.workDir, 'udpreply');
      writeFileSync(udpreply, UDPREPLY_SH, { mode: 0o755 });
      this.spawnListener(C, ['busybox', 'httpd', '-f', '-p', String(ADDR.egressTcp), '-h', www]);
      this.spawnListener(C, ['socat', '-T1', `UDP4-RECVFROM:${ADDR.egressUdp},fork,reuseaddr`, `EXEC:${udpreply} ${name}`]);
      if (linkV6) this.spawnListener(C, ['socat', '-T1', `UDP6-RECVFROM:${ADDR.egressUdp},fork,reuseaddr,ipv6only=1`, `EXEC:${udpreply} ${name}`]);
    }

    // --- dockerd
    const cfg: Record<string, unknown> = { iptables: spec.iptables ?? false, ip6tables: false, 'shutdown-timeout': 2 };
    writeFileSync(join(this.workDir, 'daemon.json'), JSON.stringify(cfg) + '\n');
    mkdirSync(join(this.workDir, 'cli'), { recursive: true });
    const args = [
      `--net=${H.path}`,
      'dockerd',
      '--config-file',
      join(this.workDir, 'daemon.json'),
      '--data-root',
      join(this.workDir, 'data'),
      '--exec-root',
      join(this.workDir, 'exec'),
      '-H',
      this.dockerHost,
      '--pidfile',
      join(this.workDir, 'dockerd.pid'),
    ];
    if (spec.userlandProxy === false) args.push('--userland-proxy=false');
    if (spec.ipv6) args.push('--ipv6', '--fixed-cidr-v6', ADDR.fixedCidrV6);
    args.push(...(spec.dockerdArgs ?? []));
    this.dockerdArgs = args;
    await this.spawnDockerd();

    // forwarding in the host ns (dockerd would not touch it with iptables off anyway)
    this.ns(H, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    if (spec.ipv6 || linkV6) this.ns(H, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);

    // --- image, networks, containers
    await this.dockerOk(['import', tar, IMAGE_REF]);
    this.bridges.bridge = 'docker0';
    for (const n of spec.networks ?? []) {
      const a = ['network', 'create', '--driver', 'bridge', '--subnet', n.subnet, '-o', `com.docker.network.bridge.name=${n.bridge}`];
      if (n.subnet6) a.push('--ipv6', '--subnet', n.subnet6);
      if (n.internal) a.push('--internal');
      if (n.icc === false) a.push('-o', 'com.docker.network.bridge.enable_icc=false');
      await this.dockerOk([...a, n.name]);
      this.bridges[n.name] = n.bridge;
    }
    const ids: string[] = [];
    for (const c of spec.containers) {
      const onDefault = c.network === undefined || c.network === 'bridge';
      const a = ['run', '-d', '--name', c.name];
      if (!onDefault) a.push('--network', c.network!);
      if (c.ip && !onDefault) a.push('--ip', c.ip);
      if (c.ip6 && !onDefault) a.push('--ip6', c.ip6);
      for (const p of c.publish ?? []) a.push('-p', p);
      ids.push((await this.dockerOk([...a, IMAGE_REF, 'listen', c.name, ...c.listen])).trim());
    }
    if (ids.length) {
      const insp = JSON.parse(await this.dockerOk(['inspect', ...ids])) as DockerInspect[];
      for (const i of insp) {
        const name = i.Name.replace(/^\//, '');
        const networks: ContainerInfo['networks'] = {};
        for (const [n, v] of Object.entries(i.NetworkSettings.Networks ?? {})) {
          networks[n] = { ...(v.IPAddress ? { ip: v.IPAddress } : {}), ...(v.GlobalIPv6Address ? { ip6: v.GlobalIPv6Address } : {}) };
        }
        const first = Object.values(networks);
        const ip = first.find((x) => x.ip)?.ip;
        const ip6 = first.find((x) => x.ip6)?.ip6;
        this.containers[name] = { name, id: i.Id, pid: i.State.Pid, networks, ...(ip ? { ip } : {}), ...(ip6 ? { ip6 } : {}) };
      }
    }
    for (const c of spec.containers) {
      const info = this.containers[c.name];
      if (!info) throw new Error(`container ${c.name} missing after start`);
      if (c.ip && info.ip !== c.ip) throw new Error(`container ${c.name} got ${info.ip}, not the requested ${c.ip} (default bridge: addresses follow start order)`);
      if (c.ip6 && info.ip6 !== c.ip6) throw new Error(`container ${c.name} got ${info.ip6}, not the requested ${c.ip6}`);
    }
    await this.waitForServers();
    if (spec.ipv6 || linkV6 || (spec.networks ?? []).some((n) => n.subnet6)) await this.waitForNoTentative();
  }

  /** Wait until no IPv6 address in the host ns, and no global one in a container, is
   *  tentative (DAD pending; the containers' link-local addresses do not matter). */
  private async waitForNoTentative(): Promise<void> {
    const paths: [string, string[]][] = [
      [this.host.path, []],
      ...Object.values(this.containers).map((c): [string, string[]] => [`/proc/${c.pid}/ns/net`, ['scope', 'global']]),
    ];
    const deadline = Date.now() + 10_000;
    for (const [p, scope] of paths) {
      while ((await runAsync(['nsenter', `--net=${p}`, 'ip', '-6', 'addr', 'show', 'tentative', ...scope])).stdout.trim()) {
        if (Date.now() > deadline) throw new Error(`IPv6 addresses still tentative in ${p}`);
        await sleep(50);
      }
    }
  }

  private spawnListener(C: Netns, argv: string[]): void {
    const p = spawn('nsenter', [`--net=${C.path}`, ...argv], { detached: true, stdio: 'ignore', env: baseEnv() });
    p.on('error', () => {});
    p.unref();
    if (p.pid) this.listenerPids.push(p.pid);
  }

  private async waitForDaemon(): Promise<void> {
    const sock = join(this.workDir, 'docker.sock');
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.dockerdExited) throw new Error(`dockerd exited during start-up${this.logTail()}`);
      if (existsSync(sock) && (await ping(sock))) return;
      await sleep(50);
    }
    throw new Error(`dockerd did not answer within 60 s${this.logTail()}`);
  }

  /** Wait until every container listens on its ports (read from /proc/PID/net/*). */
  private async waitForServers(): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (const c of this.spec.containers) {
      const pid = this.containers[c.name]!.pid;
      for (const l of c.listen) {
        const [proto, port] = l.split(':') as [string, string];
        while (!listensOn(pid, proto, Number(port))) {
          if (Date.now() > deadline) throw new Error(`container ${c.name} does not listen on ${l}`);
          await sleep(30);
        }
      }
    }
    for (const [C, tcp, udp] of [
      [this.wan, ADDR.egressTcp, ADDR.egressUdp],
      [this.lan, ADDR.egressTcp, ADDR.egressUdp],
    ] as const) {
      while (!(C.run(['ss', '-Hlnt', `sport = :${tcp}`]).stdout.trim() && C.run(['ss', '-Hlnu', `sport = :${udp}`]).stdout.trim())) {
        if (Date.now() > deadline) throw new Error(`egress listeners in ${C.name} did not start`);
        await sleep(30);
      }
    }
  }

  private check(): void {
    if (this.stopped) throw new Error('lab already stopped');
  }

  load(v4: string, v6?: string): void {
    this.restore(v4, v6, false);
  }

  loadNoflush(v4: string, v6?: string): void {
    this.restore(v4, v6, true);
  }

  reset(): void {
    this.check();
    for (const fam of [4, 6] as const) {
      const text = this.host
        .save(fam)
        .split('\n')
        .filter((l) => l.startsWith('*') || l === 'COMMIT' || (l.startsWith(':') && !/ - \[/.test(l)))
        .map((l) => (l.startsWith(':') ? l.replace(/ \S+ \[0:0\]$/, ' ACCEPT [0:0]') : l))
        .join('\n');
      if (!text.trim()) continue;
      const r = this.host.restore(fam, text + '\n');
      if (!r.ok) throw new Error(`reset of IPv${fam} tables failed:\n${r.stderr.trim()}`);
    }
  }

  private restore(v4: string, v6: string | undefined, noflush: boolean): void {
    this.check();
    for (const [fam, text] of [
      [4, v4],
      [6, v6],
    ] as const) {
      if (text === undefined) continue;
      const r = this.host.restore(fam, text, { noflush });
      if (!r.ok) throw new Error(`${fam === 4 ? 'iptables' : 'ip6tables'}-restore${noflush ? ' --noflush' : ''} failed in the lab host ns:\n${r.stderr.trim()}`);
    }
  }

  save(family: Family): string {
    this.check();
    return this.host.save(family);
  }

  mapBridges(rules: string): string {
    return rules.replace(/br-\{([^}]+)\}/g, (m, name: string) => this.bridges[name] ?? m);
  }

  async serveOnHost(port: number, name: string): Promise<void> {
    const www = join(this.workDir, `host-${name}-${port}`);
    mkdirSync(join(www, 'cgi-bin'), { recursive: true });
    writeFileSync(join(www, 'cgi-bin/id'), cgiId(name), { mode: 0o755 });
    this.spawnListener(this.host, ['busybox', 'httpd', '-f', '-p', String(port), '-h', www]);
    for (let i = 0; i < 50 && !this.listeners().some((l) => l.endsWith(`:${port}`)); i++) await sleep(20);
  }

  listeners(): string[] {
    this.check();
    return this.host
      .run(['ss', '-Hlntu'])
      .stdout.split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const f = l.trim().split(/\s+/);
        return `${f[0]} ${f[4]}`;
      })
      .sort();
  }

  proxies(): string[] {
    const out: string[] = [];
    for (const pid of pidsWithCmdline('docker-proxy')) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid !== this.dockerdPid) continue;
        out.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '));
      } catch {
        // gone
      }
    }
    return out.sort();
  }

  private nsPathOf(from: ProbeFrom): string {
    if (from === 'host') return this.host.path;
    if (from === 'wan') return this.wan.path;
    if (from === 'lan') return this.lan.path;
    if (from.startsWith('ctr:')) {
      const c = this.containers[from.slice(4)];
      if (!c) throw new Error(`no container ${from.slice(4)} in this lab`);
      return `/proc/${c.pid}/ns/net`;
    }
    throw new Error(`bad probe source ${from}`);
  }

  async probe(from: ProbeFrom, addr: string, port: number, proto: Proto, opts: ProbeOptions = {}): Promise<ProbeResult> {
    this.check();
    const nsPath = this.nsPathOf(from);
    const timeout = opts.timeout ?? 1;
    let r = await limited(() => probeOnce(nsPath, addr, port, proto, timeout));
    for (let i = 0; i < (opts.retries ?? 0) && !r.open; i++) {
      await sleep(200);
      r = await limited(() => probeOnce(nsPath, addr, port, proto, timeout));
    }
    return r;
  }

  private dockerdArgs: string[] = [];

  private async spawnDockerd(): Promise<void> {
    const log = openSync(join(this.workDir, 'dockerd.log'), 'a');
    try {
      // nsenter without --fork execs dockerd: the child's pid is dockerd's pid
      this.dockerd = spawn('nsenter', this.dockerdArgs, { detached: true, stdio: ['ignore', log, log], env: baseEnv() });
    } finally {
      closeSync(log);
    }
    this.dockerdExited = false;
    const child = this.dockerd;
    child.on('exit', () => {
      if (this.dockerd === child) this.dockerdExited = true;
    });
    child.on('error', () => {
      if (this.dockerd === child) this.dockerdExited = true;
    });
    child.unref();
    this.dockerdPid = child.pid ?? 0;
    await this.waitForDaemon();
  }

  async restartDaemon(opts: { crash?: boolean; meanwhile?: () => Promise<void> } = {}): Promise<void> {
    this.check();
    killQuiet(this.dockerdPid, opts.crash ? 'SIGKILL' : 'SIGTERM');
    const deadline = Date.now() + 20_000;
    while (!this.dockerdExited && pidAlive(this.dockerdPid) && Date.now() < deadline) await sleep(50);
    if (pidAlive(this.dockerdPid)) throw new Error('dockerd did not stop within 20 s');
    if (opts.crash) {
      // The containerd dockerd ran dies with it once it writes to dockerd (and, nobody reaping it here, stays a
      // zombie whose pid in containerd.pid the new dockerd takes for a live containerd): killed now, its pid file
      // removed; the new dockerd starts another, which finds the containers' shims. (A host's containerd is a
      // service of its own that outlives dockerd.)
      const pidFile = join(this.workDir, 'exec', 'containerd', 'containerd.pid');
      const pid = Number(readFileSyncOr(pidFile).trim());
      if (pid > 0) {
        killQuiet(pid, 'SIGKILL');
        const gone = () => !existsSync(`/proc/${pid}`) || /^\S+ \(.*\) Z /.test(readFileSyncOr(`/proc/${pid}/stat`));
        const until = Date.now() + 5_000;
        while (Date.now() < until && !gone()) await sleep(20);
        rmSync(pidFile, { force: true });
      }
    }
    await opts.meanwhile?.();
    await this.spawnDockerd();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      if (this.dockerdPid && !this.dockerdExited && pidAlive(this.dockerdPid)) {
        const ids = Object.values(this.containers).map((c) => c.id);
        const ps = await this.docker(['ps', '-aq']);
        for (const id of ps.stdout.split('\n').filter(Boolean)) if (!ids.some((x) => x.startsWith(id))) ids.push(id);
        if (ids.length) await runAsync([dockerClient(), 'rm', '-f', ...ids], { env: this.env, timeoutMs: 30_000 });
        killQuiet(this.dockerdPid, 'SIGTERM');
        const deadline = Date.now() + 15_000;
        while (!this.dockerdExited && pidAlive(this.dockerdPid) && Date.now() < deadline) await sleep(50);
      }
    } finally {
      this.stopSync();
    }
  }

  /** Forceful, synchronous clean-up (also used from the process 'exit' hook). */
  stopSync(): void {
    this.stopped = true;
    if (this.dockerdPid && !this.dockerdExited && pidAlive(this.dockerdPid)) killQuiet(this.dockerdPid, 'SIGKILL');
    for (const pid of this.listenerPids) killQuiet(-pid, 'SIGKILL'); // their own process groups
    this.listenerPids = [];
    // containerd, shims, socat children, container processes: everything of our work dir
    for (const c of Object.values(this.containers)) if (c.pid > 0 && pidAlive(c.pid)) killQuiet(c.pid, 'SIGKILL');
    killDockerTree(this.workDir);
    for (const n of this.nets) deleteNetns(n.name);
    this.nets = [];
    removeDir(this.workDir);
    liveLabs.delete(this);
  }
}

interface DockerInspect {
  Id: string;
  Name: string;
  State: { Pid: number };
  NetworkSettings: { Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }> };
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

function readFileSyncOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function listensOn(pid: number, proto: string, port: number): boolean {
  const files = proto === 'tcp' ? ['tcp', 'tcp6'] : ['udp', 'udp6'];
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${f}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      if (!cols[1]!.endsWith(`:${hexPort}`)) continue;
      if (proto === 'tcp' ? cols[3] === '0A' : true) return true;
    }
  }
  return false;
}

/**
 * Start a packet lab (see the header comment).  Throws (after cleaning up everything it
 * created) when any step fails.  Always call lab.stop(), e.g. in afterAll.
 */
export async function startLab(spec: LabSpec): Promise<Lab> {
  cleanupLeftovers();
  const lab = new LabImpl(spec);
  liveLabs.add(lab);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const l of liveLabs) l.stopSync();
    });
  }
  try {
    await lab.start();
  } catch (e) {
    await lab.stop().catch(() => lab.stopSync());
    throw e;
  }
  return lab;
}
