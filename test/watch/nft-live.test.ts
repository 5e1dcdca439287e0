// `dockwall watch -f nft` on a real dockerd 20.10 ("iptables": false, userland-proxy off, IPv6
// on): the --format nft file (Docker's tables as dockerd 29.7 writes them, and dockwall's) kept
// equal to the policy with Docker's facts as containers come and go, loaded with nft -f, and
// judged with real connections, IPv4 and IPv6. Drift in its tables is put back at once (nft
// monitor); --save-nft keeps a boot file with nothing for any one container. No iptables rule is
// loaded at any point.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { IMAGE_REF } from "../lab/image.js";

const LAB_TIMEOUT = 120_000;
const bin = process.env.DOCKWALL_BIN || new URL("../../bin/dockwall", import.meta.url).pathname;

const POLICY = `docker { version 29.7; iptables off; ip6tables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; from 2001:db8:77::/64; }
allow lan to web;
`;

describeDocker("dockwall watch -f nft on a real dockerd: the nft file stays what the policy says while Docker changes", () => {
  let lab: Lab;
  let dir: string;
  let watcher: ChildProcess | undefined;
  let log = "";

  const start = async () => {
    log = "";
    // (A home of its own: nft -i writes its history there if it is told to keep one.)
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", join(dir, "host.dw"), "-f", "nft", "--save-nft", join(dir, "dockwall.nft"), "--verbose"], { env: { ...process.env, DOCKER_HOST: lab.dockerHost, HOME: join(dir, "home") }, stdio: ["ignore", "ignore", "pipe"] });
    watcher.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    watcher.on("error", (e) => (log += `spawn: ${e.message}\n`));
    await until(() => /^applied: |^watching/m.test(log), 10_000, () => log);
  };
  const stop = async (): Promise<number | null> => {
    const w = watcher!;
    if (w.exitCode !== null) return w.exitCode;
    const exited = new Promise<number | null>((r) => w.on("exit", (code) => r(code)));
    w.kill("SIGTERM");
    watcher = undefined;
    return exited;
  };
  /** The watcher's child running `args` (below `ip netns exec` and bin/dockwall), by its pid; NaN if none or several. */
  const childOf = (watcherPid: number, args = "nft -i"): number => {
    const ps = lab.host.run(["ps", "-e", "-o", "pid=,ppid=,args="]).stdout.trim().split("\n").map((l) => l.trim().split(/\s+/));
    const below = (pid: string): string[] => ps.filter(([, pp]) => pp === pid).flatMap(([p, , ...a]) => (a.join(" ") === args ? [p!] : below(p!)));
    return Number(below(String(watcherPid)).join(" "));
  };
  /** Whether the process is gone: no such pid, a zombie not reaped yet (its parent gone too), or another program given the pid. */
  const gone = (pid: number): boolean => {
    const [stat = "", ...args] = lab.host.run(["ps", "-o", "stat=,args=", "-p", String(pid)]).stdout.trim().split(/\s+/);
    return stat === "" || stat.startsWith("Z") || !/^nft /.test(args.join(" "));
  };
  const docker = async (...args: string[]) => {
    const r = await lab.docker(args);
    if (r.status !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const reach = async (from: "lan" | "wan", addr: string, port: number, want: string | "closed", ms = 10_000): Promise<number> => {
    const t0 = Date.now();
    let last = "";
    while (Date.now() - t0 < ms) {
      const r = await lab.probe(from, addr, port, "tcp", { timeout: 0.5 });
      last = r.open ? (r.answeredBy ?? "?") : "closed";
      if (last === want) return Date.now() - t0;
    }
    throw new Error(`${from} → ${addr}:${port}: ${last}, not ${want}, after ${ms} ms\nwatcher log:\n${log}`);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-watch-nft-"));
    writeFileSync(join(dir, "host.dw"), POLICY);
    lab = await startLab({ userlandProxy: false, ipv6: true, containers: [] });
    // No rules at all but the watcher's: nothing of iptables.
    lab.host.run(["nft", "flush", "ruleset"]);
    await start();
  }, LAB_TIMEOUT);
  afterAll(async () => {
    if (watcher) await stop();
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("docker run -p: the lan reaches it on IPv4 and IPv6 (its own address kept), the wan and routing straight to it do not", async () => {
    await docker("run", "-d", "--name", "web", "-p", "8080:80", IMAGE_REF, "listen", "web", "tcp:80");
    await reach("lan", ADDR.hostLan, 8080, "web");
    await reach("lan", ADDR.hostLan6, 8080, "web");
    expect(await lab.probe("lan", ADDR.hostLan, 8080, "tcp")).toMatchObject({ clientAddr: ADDR.lan });
    await reach("wan", ADDR.hostWan, 8080, "closed", 1000);
    await reach("wan", ADDR.hostWan6, 8080, "closed", 1000);
    await reach("lan", "172.17.0.2", 80, "closed", 1000);
    expect(log).toMatch(/^applied: nft: ip docker-bridges \(table made\), ip6 docker-bridges \(table made\), inet dockwall \(table made\)$/m);
    expect(log).toMatch(/^applied: containers \+web; nft: ip docker-bridges chain nat-prerouting-and-output \+1, /m);
    // Only nft tables: iptables holds nothing.
    expect(lab.host.run(["nft", "list", "tables"]).stdout.split("\n").filter(Boolean).sort()).toEqual(["table inet dockwall", "table ip docker-bridges", "table ip6 docker-bridges"]);
    const diff = lab.host.run(["env", `DOCKER_HOST=${lab.dockerHost}`, bin, "diff", join(dir, "host.dw"), "--docker", "-f", "nft"]);
    expect(diff.stdout).toMatch(/no changes/);
  }, LAB_TIMEOUT);

  it("drift: a hand deleting dockwall's table is put back at once (nft monitor), and the wan stays out", async () => {
    const before = log.length;
    lab.host.run(["nft", "delete", "table", "inet", "dockwall"]);
    await until(() => /^the tables were changed \(.*inet dockwall \(table deleted\) \(by nft, pid \d+\)\): putting back what the policy says\napplied: nft: inet dockwall \(table made\)$/m.test(log.slice(before)), 5000, () => log);
    await reach("wan", ADDR.hostWan, 8080, "closed", 1000);
    await reach("lan", ADDR.hostLan, 8080, "web", 2000);
    // A hand-made accept for the wan, in a chain the watcher knows from its last load: reported, read again, taken out.
    const at = log.length;
    lab.host.run(["nft", "insert", "rule", "inet", "dockwall", "docker-user-ip", "iifname", "eth0", "return"]);
    await until(() => /^applied: nft: inet dockwall chain docker-user-ip -1$/m.test(log.slice(at)), 5000, () => log);
    await reach("wan", ADDR.hostWan, 8080, "closed", 1000);
    expect(lab.host.run(["nft", "list", "chain", "inet", "dockwall", "docker-user-ip"]).stdout).not.toContain('iifname "eth0" return');
  }, LAB_TIMEOUT);

  it("docker rm -f, then a new container takes the freed address: the old DNAT is gone; the boot file opens nothing for any container", async () => {
    const from = log.length;
    await docker("rm", "-f", "web");
    await docker("run", "-d", "--name", "other", "-p", "9999:80", IMAGE_REF, "listen", "other", "tcp:80");
    expect(await docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "other")).toBe("172.17.0.2");
    await reach("lan", ADDR.hostLan, 8080, "closed", 3000);
    await reach("lan", ADDR.hostLan, 9999, "closed", 1000); // published, but no allow names it
    const boot = readFileSync(join(dir, "dockwall.nft"), "utf8");
    expect(boot).not.toMatch(/dnat|172\.17\.0\.2\b/);
    expect(lab.host.run(["nft", "-c", "-f", join(dir, "dockwall.nft")]).status).toBe(0);
    // The changes were deltas, through the watcher's one nft -i, which it knows as its own in nft monitor's reports.
    await until(() => /^applied: containers \+other/m.test(log.slice(from)), 3000, () => log);
    expect(log.slice(from)).not.toMatch(/tables were changed|tables changed|whole file|refused/);
    const pid = childOf(watcher!.pid!);
    expect(pid).toBeGreaterThan(0);
    expect(await stop()).toBe(0);
    // It is gone with the watcher.
    await until(() => gone(pid), 5000);
    // A watcher killed outright: its nft -i ends with it (its input ends), and writes no history of the deltas anywhere.
    mkdirSync(join(dir, "home"), { recursive: true });
    await start();
    const at = log.length;
    await docker("rm", "-f", "other");
    await until(() => /^applied: containers -other/m.test(log.slice(at)), 3000, () => log);
    const session = childOf(watcher!.pid!);
    const monitor = childOf(watcher!.pid!, "nft monitor");
    expect(session).toBeGreaterThan(0);
    watcher!.kill("SIGKILL");
    watcher = undefined;
    await until(() => gone(session), 5000);
    expect(readdirSync(join(dir, "home"))).toEqual([]);
    // (nft monitor outlives a watcher killed outright, until it next writes: this test's own is ended here.)
    if (monitor > 0) lab.host.run(["kill", String(monitor)]);
    // The rules stay after SIGTERM.
    expect(lab.host.run(["nft", "list", "tables"]).stdout).toContain("table inet dockwall");
  }, LAB_TIMEOUT);
});

async function until(cond: () => boolean, ms: number, show: () => string = () => ""): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out; log:\n${show()}`);
}
