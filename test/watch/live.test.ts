// `dockwall watch` on a real dockerd 20.10 ("iptables": false, userland-proxy off), started
// before any container, run as a user runs it (bin/dockwall in the host's namespace), and
// judged with real connections from the lab's lan and wan.
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { fermCompile } from "../lab/kernel.js";
import { IMAGE_REF } from "../lab/image.js";

const LAB_TIMEOUT = 120_000;
const bin = process.env.DOCKWALL_BIN || new URL("../../bin/dockwall", import.meta.url).pathname;

const POLICY = `docker { version auto; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; }
allow lan to web, api;
`;

describeDocker("dockwall watch on a real dockerd: the policy stays true while Docker changes", () => {
  let lab: Lab;
  let dir: string;
  let watcher: ChildProcess | undefined;
  let log = "";

  const start = async () => {
    if (watcher) await stop(); // one left by a test that failed half-way
    log = "";
    const save = ["--save-v4", join(dir, "rules.v4"), "--save-ferm", join(dir, "ferm.conf")];
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", join(dir, "host.dw"), ...save], { env: { ...process.env, DOCKER_HOST: lab.dockerHost }, stdio: ["ignore", "ignore", "pipe"] });
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
  const docker = async (...args: string[]) => {
    const r = await lab.docker(args);
    if (r.status !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  };
  /** Polls until a probe gives `want` (open by NAME, or closed); the time it took in ms. */
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
    dir = mkdtempSync(join(tmpdir(), "dockwall-watch-"));
    writeFileSync(join(dir, "host.dw"), POLICY);
    lab = await startLab({ userlandProxy: false, containers: [] });
    await start();
  }, LAB_TIMEOUT);
  afterAll(async () => {
    if (watcher) await stop();
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("docker run -p: the allowed zone reaches it, the others and routing straight to it do not", async () => {
    await docker("run", "-d", "--name", "web", "-p", "8080:80", IMAGE_REF, "listen", "web", "tcp:80");
    await reach("lan", ADDR.hostLan, 8080, "web");
    expect(await lab.probe("lan", ADDR.hostLan, 8080, "tcp")).toMatchObject({ clientAddr: ADDR.lan });
    await reach("wan", ADDR.hostWan, 8080, "closed", 1000);
    await reach("lan", "172.17.0.2", 80, "closed", 1000);
    expect(log).toMatch(/^applied: containers \+web; IPv4: /m);
  }, LAB_TIMEOUT);

  it("docker rm -f, then a new container takes the freed address: the old DNAT is gone", async () => {
    await docker("rm", "-f", "web");
    await docker("run", "-d", "--name", "other", "-p", "9999:80", IMAGE_REF, "listen", "other", "tcp:80");
    expect(await docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "other")).toBe("172.17.0.2");
    await reach("lan", ADDR.hostLan, 8080, "closed", 3000);
    await reach("lan", ADDR.hostLan, 9999, "closed", 1000); // published, but no allow names it
  }, LAB_TIMEOUT);

  it("a network created after the watcher started: its container is reachable as allowed and reaches the outside (masquerade)", async () => {
    await docker("network", "create", "--subnet", "172.30.0.0/16", "late");
    await docker("run", "-d", "--name", "api", "--network", "late", "-p", "9090:80", IMAGE_REF, "listen", "api", "tcp:80");
    await reach("lan", ADDR.hostLan, 9090, "api");
    // The lab probes from a container's own namespace: tell it where api's is.
    lab.containers.api = { name: "api", id: "", pid: Number(await docker("inspect", "-f", "{{.State.Pid}}", "api")), networks: {} };
    const out = await lab.probe("ctr:api", ADDR.wan, ADDR.egressTcp, "tcp");
    expect(out).toMatchObject({ open: true, answeredBy: "wan", clientAddr: ADDR.hostWan });
  }, LAB_TIMEOUT);

  it("SIGTERM: exit 0, rules left in place; restarted after a change, it catches up", async () => {
    expect(await stop()).toBe(0);
    await reach("lan", ADDR.hostLan, 9090, "api", 2000);
    await docker("rm", "-f", "api");
    await docker("run", "-d", "--name", "web", "-p", "8080:80", IMAGE_REF, "listen", "web", "tcp:80");
    await start();
    await reach("lan", ADDR.hostLan, 8080, "web");
    await reach("lan", ADDR.hostLan, 9090, "closed", 2000);
  }, LAB_TIMEOUT);

  it("SIGHUP: a policy with errors is logged and not applied; a good one is", async () => {
    writeFileSync(join(dir, "host.dw"), POLICY.replace("allow lan to web, api;", "allow lan to web api;"));
    watcher!.kill("SIGHUP");
    await until(() => /has errors; not applied/.test(log), 5000);
    expect(log).toMatch(/host\.dw:4:\d+: error: /);
    await reach("lan", ADDR.hostLan, 8080, "web", 2000);
    writeFileSync(join(dir, "host.dw"), POLICY.replace("allow lan to web, api;", "allow wan to web;"));
    watcher!.kill("SIGHUP");
    await reach("wan", ADDR.hostWan, 8080, "web");
    await reach("lan", ADDR.hostLan, 8080, "closed", 2000);
  }, LAB_TIMEOUT);

  it("dockerd restarts with a --restart always container: the rules stay meanwhile, the watcher reconnects and catches up", async () => {
    // The policy now (after SIGHUP): allow wan to web.
    await docker("rm", "-f", "web");
    await docker("run", "-d", "--restart", "always", "--name", "web", "-p", "8080:80", IMAGE_REF, "listen", "web", "tcp:80");
    await docker("run", "-d", "--name", "gone", "-p", "7070:80", IMAGE_REF, "listen", "gone", "tcp:80");
    await reach("wan", ADDR.hostWan, 8080, "web");
    await lab.restartDaemon();
    // Stopped and started again by dockerd: web (restart always) is back, and reachable.
    await reach("wan", ADDR.hostWan, 8080, "web");
    expect(log).toMatch(/the daemon's event stream ended \(dockerd stopped or restarted\); the rules in place stay; reconnecting/);
    expect(log).toMatch(/the daemon is back: catching up/);
    expect(await docker("ps", "--format", "{{.Names}}")).toBe("web");
    expect(lab.save(4)).not.toContain("--dport 7070");
  }, LAB_TIMEOUT);

  it("the saved ruleset is closed where it would be stale: after a dockerd restart, rules.v4 or ferm.conf loaded alone (as at boot) open no published port and no container; the watcher then opens what the policy allows", async () => {
    // The policy now (after SIGHUP): allow wan to web. web runs (--restart always).
    await until(() => /-A DOCKER-USER .*-o docker0 -j DROP/.test(readFileSync(join(dir, "rules.v4"), "utf8")), 5000);
    const v4 = readFileSync(join(dir, "rules.v4"), "utf8");
    // Nothing for any one container: no DNAT, no allow to its port, no hairpin MASQUERADE.
    expect(v4).not.toMatch(/-j DNAT|--ctorigdstport|172\.17\.0\.\d+\/32/);
    expect(v4).toMatch(/^-A POSTROUTING -s 172\.17\.0\.0\/16 ! -o docker0 -j MASQUERADE$/m); // the network's own rules stay
    expect(await stop()).toBe(0);
    await lab.restartDaemon();
    const web = (await docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web")).trim();
    const closedAll = async () => {
      for (const from of ["wan", "lan"] as const) {
        await reach(from, from === "wan" ? ADDR.hostWan : ADDR.hostLan, 8080, "closed", 2000);
        await reach(from, web, 80, "closed", 2000);
      }
    };
    // A reboot: the saved rules.v4, loaded before any watcher has read a fact.
    lab.reset();
    lab.load(v4);
    await closedAll();
    // The same with the saved ferm.conf.
    const ferm = fermCompile(readFileSync(join(dir, "ferm.conf"), "utf8"));
    expect(ferm.ok, ferm.stderr).toBe(true);
    expect(ferm.v4).not.toMatch(/-j DNAT|--ctorigdstport/);
    lab.reset();
    lab.load(ferm.v4, ferm.v6 || undefined);
    await closedAll();
    // The watcher reads the facts: what the policy allows is open again, and only that.
    await start();
    await reach("wan", ADDR.hostWan, 8080, "web");
    await reach("lan", ADDR.hostLan, 8080, "closed", 2000);
    const diff = execFileSync("ip", ["netns", "exec", lab.host.name, bin, "diff", join(dir, "host.dw"), "--docker"], { encoding: "utf8", env: { ...process.env, DOCKER_HOST: lab.dockerHost } });
    expect(diff).toMatch(/no changes/);
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
