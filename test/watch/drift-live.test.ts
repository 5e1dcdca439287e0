// Drift healed without a Docker event (issue 26, item 1), on a real dockerd 20.10 ("iptables":
// false) with `dockwall watch` as a user runs it: a flushed DOCKER-USER or FORWARD is put back
// on the kernel's own report (nft monitor; how fast: npm run bench), the wan closed again; other tools' own chains wake no
// reconcile; rules held in iptables-legacy are put back by the full check (--recheck).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";

const LAB_TIMEOUT = 120_000;
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;

const POLICY = `docker { version auto; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; }
allow lan to web:8080;
`;

describeDocker("watch puts drift back without a Docker event (real dockerd)", () => {
  let lab: Lab;
  let dir: string;
  let watcher: ChildProcess | undefined;
  let log = "";
  const ns = (argv: string[], input?: string) => {
    const r = spawnSync("ip", ["netns", "exec", lab.host.name, ...argv], { encoding: "utf8", input });
    if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const userRules = (save: string) => ns([save]).split("\n").filter((l) => l.startsWith("-A DOCKER-USER "));
  const start = async (extra: string[]) => {
    log = "";
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", join(dir, "host.dw"), "--verbose", ...extra], { env: { ...process.env, DOCKER_HOST: lab.dockerHost, DOCKWALL_STATE_DIR: join(dir, "state") }, stdio: ["ignore", "ignore", "pipe"] });
    watcher.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    await until(() => /^(applied: |reconciled: nothing to change)/m.test(log), 20_000);
  };
  const stop = async () => {
    const w = watcher!;
    watcher = undefined;
    if (w.exitCode !== null) return;
    const exited = new Promise((r) => w.on("exit", r));
    w.kill("SIGTERM");
    await exited;
  };
  async function until(test: () => boolean, ms: number): Promise<number> {
    const t0 = Date.now();
    while (!test()) {
      if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms; watcher log:\n${log}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return Date.now() - t0;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-drift-"));
    writeFileSync(join(dir, "host.dw"), POLICY);
    lab = await startLab({
      userlandProxy: false,
      containers: [
        { name: "web", publish: ["8080:80"], listen: ["tcp:80"] },
        { name: "db", publish: ["5432:5432"], listen: ["tcp:5432"] },
      ],
    });
    await start(["--recheck", "0"]);
  }, LAB_TIMEOUT);
  afterAll(async () => {
    if (watcher) await stop();
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("iptables -F DOCKER-USER: put back, the log says what changed and what was put back; the wan is closed again", async () => {
    const good = userRules("iptables-save");
    expect(good.length).toBeGreaterThan(3);
    expect((await lab.probe("wan", ADDR.hostWan, 5432, "tcp")).open).toBe(false);
    ns(["iptables", "-F", "DOCKER-USER"]);
    // --recheck 0 and no Docker event: only the kernel's report can bring it back (how fast: npm run bench).
    await until(() => userRules("iptables-save").length === good.length, 5_000);
    expect(userRules("iptables-save")).toEqual(good);
    await until(() => /^applied: IPv4: filter DOCKER-USER/m.test(log), 5_000);
    expect(log).toMatch(/^the tables were changed \(ip filter DOCKER-USER -\d+ \(by iptables, pid \d+\)\): putting back what the policy says$/m);
    expect(log).toMatch(/^applied: IPv4: filter DOCKER-USER \+\d+$/m);
    expect((await lab.probe("wan", ADDR.hostWan, 5432, "tcp")).open).toBe(false);
    expect((await lab.probe("lan", ADDR.hostLan, 8080, "tcp")).answeredBy).toBe("web");
  }, LAB_TIMEOUT);

  it("ip6tables -F DOCKER-USER: put back too (IPv6)", async () => {
    const good = userRules("ip6tables-save");
    expect(good.length).toBeGreaterThan(0);
    ns(["ip6tables", "-F", "DOCKER-USER"]);
    await until(() => userRules("ip6tables-save").length === good.length, 5_000);
    expect(userRules("ip6tables-save")).toEqual(good);
    await until(() => /^the tables were changed \(ip6 filter DOCKER-USER -\d+ \(by ip6tables, pid \d+\)\)/m.test(log), 5_000);
  }, LAB_TIMEOUT);

  it("iptables -F FORWARD (the jump to DOCKER-USER and Docker's rules with it): put back", async () => {
    const forward = () => ns(["iptables-save"]).split("\n").filter((l) => l.startsWith("-A FORWARD "));
    const good = forward();
    ns(["iptables", "-F", "FORWARD"]);
    await until(() => forward().length === good.length, 5_000);
    expect(forward()).toEqual(good);
    expect(forward()[0]).toBe("-A FORWARD -j DOCKER-USER");
  }, LAB_TIMEOUT);

  it("iptables -P FORWARD ACCEPT (the host would route between all its interfaces): put back to DROP, IPv4 and IPv6", async () => {
    const policy = (save: string) => /^:FORWARD (\S+)/m.exec(ns([save]))?.[1];
    expect([policy("iptables-save"), policy("ip6tables-save")]).toEqual(["DROP", "DROP"]);
    ns(["iptables", "-P", "FORWARD", "ACCEPT"]);
    ns(["ip6tables", "-P", "FORWARD", "ACCEPT"]);
    await until(() => policy("iptables-save") === "DROP" && policy("ip6tables-save") === "DROP", 5_000);
  }, LAB_TIMEOUT);

  it("another tool's own chain changing all day wakes no reconcile; its jump into INPUT, one, which leaves it where it is", async () => {
    const reconciles = () => (log.match(/^(applied: |reconciled: nothing to change)/gm) ?? []).length;
    ns(["iptables", "-N", "f2b-sshd"]);
    ns(["iptables", "-I", "INPUT", "-p", "tcp", "--dport", "22", "-j", "f2b-sshd"]);
    await new Promise((r) => setTimeout(r, 500));
    const after = reconciles();
    for (let i = 0; i < 20; i++) ns(["iptables", "-I", "f2b-sshd", "-s", `203.0.113.${i + 1}`, "-j", "REJECT"]);
    for (let i = 0; i < 20; i++) ns(["iptables", "-D", "f2b-sshd", "-s", `203.0.113.${i + 1}`, "-j", "REJECT"]);
    await new Promise((r) => setTimeout(r, 500));
    expect(reconciles(), log).toBe(after);
    expect(ns(["iptables-save"])).toContain("-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd\n");
    expect(log).not.toMatch(/the tables were changed \(ip filter f2b-sshd/);
    // Its own loads come back from the kernel too (by its pid): they wake nothing either.
    expect(log).toMatch(/^applied: /m);
    expect(log).not.toMatch(/^dirty: the tables changed: .*\(by ip6?tables-(nft-)?re/m);
  }, LAB_TIMEOUT);

  it("with a host block (its IPv6 neighbour discovery rules match icmp6, which stops xtables-monitor 1.8.9): drift is still reported and put back", async () => {
    await stop();
    writeFileSync(join(dir, "host.dw"), `${POLICY}host { allow lan tcp 22; }\n`);
    try {
      await start(["--recheck", "0"]);
      expect(ns(["ip6tables-save"])).toContain("--icmpv6-type 135");
      await new Promise((r) => setTimeout(r, 300));
      const good = userRules("iptables-save");
      ns(["iptables", "-F", "DOCKER-USER"]);
      await until(() => userRules("iptables-save").length === good.length, 5_000);
      expect(userRules("iptables-save")).toEqual(good);
      // The rules are in the kernel before the watcher logs what it put back: wait for the line.
      await until(() => /^applied: IPv4: filter DOCKER-USER/m.test(log), 5_000);
      expect(log).not.toMatch(/cannot follow the kernel's changes/);
      expect(log).toMatch(/^the tables were changed \(ip filter DOCKER-USER -\d+ \(by iptables, pid \d+\)\): putting back what the policy says$/m);
    } finally {
      await stop();
      writeFileSync(join(dir, "host.dw"), POLICY);
      // INPUT back to what the tests after this one expect: no host block's policy or rules.
      for (const f of ["iptables", "ip6tables"]) for (const a of [["-F", "INPUT"], ["-P", "INPUT", "ACCEPT"]]) ns([f, ...a]);
      await start(["--recheck", "0"]);
    }
  }, LAB_TIMEOUT);

  it("rules held in iptables-legacy (no change reports there): the full check puts a flushed DOCKER-USER back (--recheck 1)", async () => {
    await stop();
    // Move the rules to iptables-legacy, as ferm would have loaded them.
    const v4 = ns(["iptables-save"]);
    ns(["iptables-legacy-restore"], v4);
    for (const t of ["filter", "nat"]) for (const c of ["-F", "-X"]) ns(["iptables-nft", "-t", t, c]);
    ns(["iptables-nft", "-P", "FORWARD", "ACCEPT"]);
    await start(["--recheck", "1"]);
    const good = userRules("iptables-legacy-save");
    expect(userRules("iptables-nft-save")).toEqual([]);
    ns(["iptables-legacy", "-F", "DOCKER-USER"]);
    await until(() => userRules("iptables-legacy-save").length === good.length, 5_000);
    expect(userRules("iptables-legacy-save")).toEqual(good);
    expect(userRules("iptables-nft-save")).toEqual([]);
  }, LAB_TIMEOUT);
});
