// With userland-proxy on, docker-proxy listens on a new container's published port as soon as
// the container's endpoint is made, before its network `connect` event reaches `dockwall watch`.
// Measured with real packets on a real dockerd: without a host block the port may answer anyone
// until the watcher's reconcile at that event closes it (tens of ms; it may be too short for the
// probes to see); once closed it stays closed; with a host block (INPUT's policy DROP) it never
// answers. The window's length is printed (tests never assert timings; the README gives the
// numbers measured).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { IMAGE_REF } from "../lab/image.js";

const LAB_TIMEOUT = 120_000;
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;

describeDocker("userland-proxy on: the window before the watcher's first reconcile of a new container", () => {
  let lab: Lab;
  let dir: string;
  let watcher: ChildProcess | undefined;
  let log = "";

  const watch = async (policy: string) => {
    if (watcher) await unwatch(); // one left by a test that failed half-way
    writeFileSync(join(dir, "host.dw"), policy);
    log = "";
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", join(dir, "host.dw")], { env: { ...process.env, DOCKER_HOST: lab.dockerHost }, stdio: ["ignore", "ignore", "pipe"] });
    watcher.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    for (let i = 0; i < 200 && !/^watching/m.test(log); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
  };
  async function unwatch(): Promise<void> {
    const w = watcher!;
    watcher = undefined;
    if (w.exitCode !== null) return;
    const done = new Promise((r) => w.on("exit", r));
    w.kill("SIGTERM");
    await done;
  }
  /**
   * Starts NAME publishing PORT while a loop in the wan namespace tries a TCP handshake with
   * the host's wan address every few milliseconds (bash's /dev/tcp: a handshake with
   * docker-proxy is a connection that reaches the container). How many handshakes succeeded,
   * and when, after `docker run` began.
   */
  const window = async (name: string, port: number): Promise<{ everOpen: boolean; answered: number; probes: number; firstOpenAt: number; lastOpenAt: number }> => {
    const loop = `end=$(( $(date +%s%N) + 5000000000 )); while [ $(date +%s%N) -lt $end ]; do t=$(date +%s%N); if timeout 0.2 bash -c 'exec 3<>/dev/tcp/${ADDR.hostWan}/${port}' 2>/dev/null; then echo "open $t"; else echo "closed $t"; fi; done`;
    const prober = spawn("ip", ["netns", "exec", lab.wan.name, "bash", "-c", loop], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    prober.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    const finished = new Promise((r) => prober.on("exit", r));
    await new Promise((r) => setTimeout(r, 300));
    const wall0 = BigInt(Date.now()) * 1_000_000n;
    await lab.docker(["run", "-d", "--name", name, "-p", `${port}:80`, IMAGE_REF, "listen", name, "tcp:80"]);
    await finished;
    const rows = out.trim().split("\n").map((l) => l.split(" ")).map(([r, t]) => ({ open: r === "open", at: Number((BigInt(t!) - wall0) / 1_000_000n) })).filter((r) => r.at >= 0);
    const open = rows.filter((r) => r.open).map((r) => r.at);
    return { everOpen: open.length > 0, answered: open.length, probes: rows.length, firstOpenAt: open[0] ?? 0, lastOpenAt: open.at(-1) ?? 0 };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-proxy-"));
    lab = await startLab({ userlandProxy: true, containers: [] });
  }, LAB_TIMEOUT);
  afterAll(async () => {
    if (watcher) await unwatch();
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("without a host block: docker-proxy may answer the wan until the reconcile, then not", async () => {
    await watch("docker { version 20.10; iptables off; userland-proxy on; }\nzone lan { interface eth1; }\nallow lan to keep;\n");
    const w = await window("p1", 8081);
    console.log(`proxy window without a host block: ${w.everOpen ? `${w.answered} of ${w.probes} probes answered, sent ${w.firstOpenAt}-${w.lastOpenAt} ms after 'docker run' began` : `none of ${w.probes} probes answered`}`);
    if ((await lab.probe("wan", ADDR.hostWan, 8081, "tcp")).open) console.log(log, lab.save(4), lab.listeners());
    expect(w.probes).toBeGreaterThan(10);
    expect(await lab.probe("wan", ADDR.hostWan, 8081, "tcp")).toEqual({ open: false });
    // Closed, it stays closed: nothing after the last answer (the reconcile) answers again.
    expect(w.lastOpenAt).toBeLessThan(1000);
    await unwatch();
  }, LAB_TIMEOUT);

  it("with a host block (INPUT policy DROP): never answers the wan", async () => {
    await watch("docker { version 20.10; iptables off; userland-proxy on; }\nzone lan { interface eth1; }\nallow lan to keep;\nhost { allow lan tcp 22; }\n");
    const w = await window("p2", 8082);
    console.log(`proxy window with a host block: ${w.everOpen ? `${w.answered} of ${w.probes} probes answered` : `none of ${w.probes} probes answered`}`);
    expect(w.everOpen).toBe(false);
    await unwatch();
  }, LAB_TIMEOUT);
});
