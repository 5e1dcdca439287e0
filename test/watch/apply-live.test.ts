// apply and watch know each other (issue 22, item 8), on a real dockerd 20.10 ("iptables":
// false) with real connections: an apply of the watched policy file is not undone at the next
// Docker event (apply tells the watcher to read the file again), and a SIGHUP with a policy
// that would refuse an SSH session open now (a real TCP connection to a process called sshd)
// is not used.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { IMAGE_REF } from "../lab/image.js";
import { which } from "../lab/proc.js";

const LAB_TIMEOUT = 120_000;
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;

const BASE = `docker { version auto; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; }
`;

async function until(test: () => boolean, ms: number, what: () => string): Promise<void> {
  const t0 = Date.now();
  while (!test()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out; ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeDocker("apply and watch know each other (real dockerd)", () => {
  let lab: Lab;
  let dir: string;
  let watcher: ChildProcess | undefined;
  let sshd: ChildProcess | undefined;
  let session: ChildProcess | undefined;
  let log = "";
  const env = () => ({ ...process.env, DOCKER_HOST: lab.dockerHost, DOCKWALL_STATE_DIR: join(dir, "state"), SSH_CONNECTION: "" });
  const policy = () => join(dir, "host.dw");
  const docker = async (...args: string[]) => {
    const r = await lab.docker(args);
    if (r.status !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
  };
  const reaches = async (from: "lan" | "wan", port: number) => (await lab.probe(from, from === "wan" ? ADDR.hostWan : ADDR.hostLan, port, "tcp", { timeout: 1, retries: 1 })).open;
  /** A new TCP connection from the wan to the host's port 22 completes (the fake sshd accepts it). */
  const sshFromWan = () => spawnSync("ip", ["netns", "exec", lab.wan.name, "socat", "-T1", "/dev/null", `TCP:${ADDR.hostWan}:22,connect-timeout=2`]).status === 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-applywatch-"));
    writeFileSync(policy(), `${BASE}allow lan to web;\nhost { policy accept; allow wan tcp 22; }\n`);
    lab = await startLab({ userlandProxy: false, containers: [{ name: "web", publish: ["8080:80"], listen: ["tcp:80"] }] });
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", policy()], { env: env(), stdio: ["ignore", "ignore", "pipe"] });
    watcher.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    await until(() => /^applied: /m.test(log), 20_000, () => log);
  }, LAB_TIMEOUT);
  afterAll(async () => {
    for (const p of [session, sshd]) p?.kill("SIGKILL");
    if (watcher && watcher.exitCode === null) {
      const exited = new Promise((r) => watcher!.on("exit", r));
      watcher.kill("SIGTERM");
      await exited;
    }
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("an apply of the watched file tells the watcher, and the next Docker event does not undo it", async () => {
    expect(await reaches("wan", 8080)).toBe(false);
    writeFileSync(policy(), `${BASE}allow lan, wan to web;\nhost { policy accept; allow wan tcp 22; }\n`);
    const a = spawnSync("ip", ["netns", "exec", lab.host.name, bin, "apply", policy(), "--docker"], { env: env(), encoding: "utf8" });
    expect(a.stderr).toMatch(/^dockwall: told the watcher \(pid \d+\) to read .*host\.dw again$/m);
    expect(a.status).toBe(0);
    await until(() => /SIGHUP: read .*host\.dw again/.test(log), 5_000, () => log);
    expect(await reaches("wan", 8080)).toBe(true);
    // A Docker event: the watcher reconciles with the policy apply loaded, not the one it started with.
    await docker("run", "-d", "--name", "other", "-p", "9999:80", IMAGE_REF, "listen", "other", "tcp:80");
    await until(() => /^applied: containers \+other/m.test(log), 10_000, () => log);
    expect(await reaches("wan", 8080)).toBe(true);
    expect(await reaches("wan", 9999)).toBe(false);
  }, LAB_TIMEOUT);

  it("SIGHUP with a policy that would refuse the SSH session open from the wan: not used, and the wan's next connection still gets in", async () => {
    // A process called sshd on port 22, and a session to it from the wan, held open.
    const fake = join(dir, "sshd");
    copyFileSync(which("socat")!, fake);
    sshd = spawn("nsenter", [`--net=${lab.host.path}`, fake, "TCP-LISTEN:22,fork,reuseaddr", "SYSTEM:cat"], { stdio: "ignore" });
    await until(() => spawnSync("ip", ["netns", "exec", lab.host.name, "ss", "-Htlnp"], { encoding: "utf8" }).stdout.includes('"sshd"'), 5_000, () => "no sshd listening");
    session = spawn("ip", ["netns", "exec", lab.wan.name, "socat", "-", `TCP:${ADDR.hostWan}:22`], { stdio: ["pipe", "ignore", "ignore"] });
    await until(() => spawnSync("ip", ["netns", "exec", lab.host.name, "ss", "-Htn", "state", "established"], { encoding: "utf8" }).stdout.includes(`${ADDR.wan}:`), 5_000, () => "no session");
    expect(sshFromWan()).toBe(true);
    writeFileSync(policy(), `${BASE}allow lan, wan to web;\nhost { allow lan tcp 22; }\n`);
    watcher!.kill("SIGHUP");
    await until(() => /SIGHUP: .*host\.dw not applied: it would not accept the next connection of the SSH session from 198\.51\.100\.2/.test(log), 10_000, () => log);
    expect(log).toMatch(/error: the new rules would not accept your SSH session's next connection \(198\.51\.100\.2 → 198\.51\.100\.1:22 on eth0\)/);
    expect(sshFromWan()).toBe(true);
    expect(lab.save(4)).toMatch(/^:INPUT ACCEPT/m);
  }, LAB_TIMEOUT);
});
