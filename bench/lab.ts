// Issue #15's reaction time on a real dockerd (BENCH_ONLY=lab): from `docker run -d -p PORT:80`
// returning to the container's DNAT rule being in the kernel (a loop reads the nat table every
// few ms; then a connection from the lab's lan neighbour must reach the container), side by
// side with dockerd writing its own rules ("iptables": true) on the same kind of lab. 0: the
// rule was there before `docker run` returned. With
// `"iptables": false`, nothing answers until `dockwall watch` has seen the start event,
// reconciled and loaded the container's rules. The lab (test/lab/dockerlab.ts) runs dockerd
// in its own network namespaces; the root namespace is never touched.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADDR, dockerSupport, startLab, type Lab } from "../test/lab/dockerlab.js";
import { IMAGE_REF } from "../test/lab/image.js";

export interface Reaction {
  /** ms from `docker run` returning to the DNAT rule in the kernel, per run (0: before it returned). */
  runs: number[];
  p50: number;
  p95: number;
}

export interface LabResult {
  docker: Reaction;
  watch: Reaction;
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)]!;

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
  for (let i = 0; i < runs; i++) {
    const name = `r${i}`;
    const port = base + i;
    const rule = ruleWatch(lab, port);
    await new Promise((r) => setTimeout(r, 200));
    const r = await lab.docker(["run", "-d", "--name", name, "-p", `${port}:80`, IMAGE_REF, "listen", name, "tcp:80"]);
    const since = Date.now();
    if (r.status !== 0) throw new Error(`docker run: ${r.stderr}`);
    try {
      out.push(Math.max(0, (await rule.firstAt) - since));
    } finally {
      rule.stop();
    }
    // The rule is there: the allowed neighbour reaches the container through it.
    const answer = await lab.probe("lan", ADDR.hostLan, port, "tcp", { timeout: 1, retries: 3 });
    if (answer.answeredBy !== name) throw new Error(`${name}:${port} does not answer the lan once its rule is loaded`);
    await lab.docker(["rm", "-f", name]);
  }
  return { runs: out, p50: percentile(out, 50), p95: percentile(out, 95) };
}

/** Why not, when the lab cannot run here (no root, no dockerd): the bench says so. */
export async function benchLab(bin: string, runs = 12): Promise<LabResult | string> {
  const support = dockerSupport();
  if (!support.ok) return support.reason;
  // Docker's own rules: dockerd writes them before `docker run` returns.
  let lab = await startLab({ iptables: true, userlandProxy: false, containers: [] });
  let docker: Reaction;
  try {
    docker = await reaction(lab, runs, 9100);
  } finally {
    await lab.stop();
  }
  // dockwall watch: dockerd writes nothing; the watcher follows its events.
  const dir = mkdtempSync(join(tmpdir(), "dwb-lab-"));
  lab = await startLab({ userlandProxy: false, containers: [] });
  let watcher: ChildProcess | undefined;
  try {
    const names = Array.from({ length: runs }, (_, i) => `r${i}`).join(", ");
    writeFileSync(join(dir, "host.dw"), `docker { version auto; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to ${names};\n`);
    let log = "";
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", join(dir, "host.dw")], { env: { ...process.env, DOCKER_HOST: lab.dockerHost }, stdio: ["ignore", "ignore", "pipe"] });
    watcher.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    for (let i = 0; i < 200 && !/^applied: /m.test(log); i++) await new Promise((r) => setTimeout(r, 50));
    const watch = await reaction(lab, runs, 9100);
    return { docker, watch };
  } finally {
    watcher?.kill("SIGTERM");
    await lab.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
