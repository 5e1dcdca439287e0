// Issues #15 and #26's reaction time on a real dockerd (BENCH_ONLY=lab): from `docker run -d -p
// PORT:80` returning to the container's DNAT rule being in the kernel (a loop reads the nat table
// every few ms; 0: the rule was there before `docker run` returned), and to the first answer to a
// connection the lab's lan neighbour starts as soon as `docker run` returns, 20 starts each:
// dockerd writing its own rules ("iptables": true); dockwall watch beside them (published closed:
// DOCKER-USER drops the port until watch allows it); dockwall watch writing every rule
// ("iptables": false). A stall is a connection of that client that completed the handshake and
// was never answered (dockerd's own socket on the port) or was not answered within 1 s. The lab (test/lab/dockerlab.ts) runs dockerd
// in its own network namespaces; the root namespace is never touched.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADDR, dockerSupport, startLab, type Lab } from "../test/lab/dockerlab.js";
import { firstConnection } from "../test/lab/firstconn.js";
import { IMAGE_REF } from "../test/lab/image.js";

export interface Reaction {
  /** ms from `docker run` returning to the DNAT rule in the kernel, per run (0: before it returned). */
  runs: number[];
  p50: number;
  p95: number;
  /** ms from `docker run` returning to the first answer to a connection from the lan, per run (test/lab/firstconn.ts). */
  first: number[];
  /** Connections of those clients that stalled: completed the handshake and were never answered, or had no handshake within 1 s. */
  stalls: number;
}

export interface LabResult {
  docker: Reaction;
  watch: Reaction;
  /** dockwall watch beside dockerd's own rules ("iptables": true, published closed: DOCKER-USER). */
  coexist: Reaction;
}

export const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)]!;

/**
 * A loop in the host's namespace that reads the nat table every few milliseconds until the
 * DNAT rule of PORT is there, and prints when (the kernel's own clock, in ns).
 */
function ruleWatch(lab: Lab, port: number): { firstAt: Promise<number>; stop: () => void } {
  const loop = `end=$(( $(date +%s%N) + 10000000000 )); while [ $(date +%s%N) -lt $end ]; do if iptables -t nat -S DOCKER 2>/dev/null | grep -q -- '--dport ${port} '; then date +%s%N; exit 0; fi; done; exit 1`;
  const child = spawn("ip", ["netns", "exec", lab.host.name, "bash", "-c", loop], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  const firstAt = new Promise<number>((resolve, reject) =>
    child.on("exit", (code) => (code === 0 ? resolve(Number(BigInt(out.trim()) / 1_000_000n)) : reject(new Error(`no DNAT rule for port ${port} within 10 s`)))),
  );
  return { firstAt, stop: () => child.kill() };
}

async function reaction(lab: Lab, runs: number, base: number): Promise<Reaction> {
  const out: number[] = [];
  const first: number[] = [];
  let stalls = 0;
  for (let i = 0; i < runs; i++) {
    const name = `r${i}`;
    const port = base + i;
    const rule = ruleWatch(lab, port);
    // A client in the lan, ready before docker run, that connects as soon as it returns.
    const client = await firstConnection(lab.lan.name, ADDR.hostLan, port);
    await new Promise((r) => setTimeout(r, 200));
    const r = await lab.docker(["run", "-d", "--name", name, "-p", `${port}:80`, IMAGE_REF, "listen", name, "tcp:80"]);
    const since = Date.now();
    const answered = client.go();
    if (r.status !== 0) throw new Error(`docker run: ${r.stderr}`);
    try {
      out.push(Math.max(0, (await rule.firstAt) - since));
    } finally {
      rule.stop();
    }
    const a = await answered;
    if (!a.reply.includes(name)) throw new Error(`${name}:${port}: the lan's connection was answered by '${a.reply}'`);
    first.push(Math.round(a.ms));
    stalls += a.hung + a.dropped;
    await lab.docker(["rm", "-f", name]);
  }
  return { runs: out, p50: percentile(out, 50), p95: percentile(out, 95), first, stalls };
}

async function withWatcher<T>(lab: Lab, bin: string, policy: string, fn: () => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "dwb-lab-"));
  let watcher: ChildProcess | undefined;
  try {
    writeFileSync(join(dir, "host.dw"), policy);
    let log = "";
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", join(dir, "host.dw")], { env: { ...process.env, DOCKER_HOST: lab.dockerHost }, stdio: ["ignore", "ignore", "pipe"] });
    watcher.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    for (let i = 0; i < 200 && !/^applied: /m.test(log); i++) await new Promise((r) => setTimeout(r, 50));
    if (!/^applied: /m.test(log)) throw new Error(`the watcher did not start:\n${log}`);
    return await fn();
  } finally {
    watcher?.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Why not, when the lab cannot run here (no root, no dockerd): the bench says so. */
export async function benchLab(bin: string, runs = 20): Promise<LabResult | string> {
  const support = dockerSupport();
  if (!support.ok) return support.reason;
  const names = Array.from({ length: runs }, (_, i) => `r${i}`).join(", ");
  // Docker's own rules: dockerd writes them before `docker run` returns.
  let lab = await startLab({ iptables: true, userlandProxy: false, containers: [] });
  let docker: Reaction;
  let coexist: Reaction;
  try {
    docker = await reaction(lab, runs, 9100);
    // dockwall beside them: DOCKER-USER closes every published port until watch allows it.
    coexist = await withWatcher(lab, bin, `docker { version auto; iptables on; userland-proxy off; published closed; }\nzone lan { interface eth1; }\nallow lan to ${names};\n`, () => reaction(lab, runs, 9200));
  } finally {
    await lab.stop();
  }
  // dockwall watch: dockerd writes nothing; the watcher follows its events.
  lab = await startLab({ userlandProxy: false, containers: [] });
  try {
    const watch = await withWatcher(lab, bin, `docker { version auto; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to ${names};\n`, () => reaction(lab, runs, 9100));
    return { docker, watch, coexist };
  } finally {
    await lab.stop();
  }
}
