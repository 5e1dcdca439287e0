// Issue 22, item 3, on a real dockerd 20.10 ("iptables": false, userland-proxy on, no host
// block), with real connections over IPv4 and IPv6: `web` is redeployed on another port than
// the one the policy's allow names. That allow is left out (a warning in the log) and every
// other change is still applied: a container started afterwards gets its rules, and web's new
// port stays closed to the wan — where docker-proxy would otherwise answer on 0.0.0.0 and ::.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, probeMatrix, startLab, type Lab } from "../lab/dockerlab.js";
import { IMAGE_REF } from "../lab/image.js";

const LAB_TIMEOUT = 120_000;
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;

const POLICY = `docker { version auto; iptables off; userland-proxy on; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24, 2001:db8:77::/64; }
allow lan to web:8080;
allow lan to api;
`;

describeDocker("dockwall watch on a real dockerd: one fact that breaks an allow costs only that allow", () => {
  let lab: Lab;
  let dir: string;
  let watcher: ChildProcess | undefined;
  let log = "";

  const docker = async (...args: string[]) => {
    const r = await lab.docker(args);
    if (r.status !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
  };
  const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 10_000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await cond()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${what}: not within ${ms} ms\nwatcher log:\n${log}`);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-facts-"));
    writeFileSync(join(dir, "host.dw"), POLICY);
    lab = await startLab({ userlandProxy: true, linkIpv6: true, containers: [] });
  }, LAB_TIMEOUT);
  afterAll(async () => {
    if (watcher && watcher.exitCode === null) {
      const exited = new Promise((r) => watcher!.on("exit", r));
      watcher.kill("SIGTERM");
      await exited;
    }
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("web redeployed on 9090 (the allow names 8080), then api started: api's rules are applied, web's 9090 is closed, the log says which allow was left out", async () => {
    await docker("run", "-d", "--name", "web", "-p", "8080:80", IMAGE_REF, "listen", "web", "tcp:80");
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", join(dir, "host.dw")], { env: { ...process.env, DOCKER_HOST: lab.dockerHost }, stdio: ["ignore", "ignore", "pipe"] });
    watcher.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    await until("the first reconcile", () => /^applied: containers \+web; /m.test(log));

    await docker("rm", "-f", "web");
    await docker("run", "-d", "--name", "web", "-p", "9090:80", IMAGE_REF, "listen", "web", "tcp:80");
    await docker("run", "-d", "--name", "api", "-p", "7070:80", IMAGE_REF, "listen", "api", "tcp:80");
    // docker-proxy answers the wan on api's port from the start: until the watcher closes it.
    await until("api's port closed to the wan", async () => !(await lab.probe("wan", ADDR.hostWan, 7070, "tcp", { timeout: 0.5 })).open);

    const probes = [
      { from: "lan", addr: ADDR.hostLan, port: 7070 },
      { from: "lan", addr: ADDR.hostLan6, port: 7070 },
      { from: "wan", addr: ADDR.hostWan, port: 7070 },
      { from: "wan", addr: ADDR.hostWan6, port: 7070 },
      { from: "wan", addr: ADDR.hostWan, port: 9090 },
      { from: "wan", addr: ADDR.hostWan6, port: 9090 },
      { from: "lan", addr: ADDR.hostLan, port: 9090 },
      { from: "lan", addr: ADDR.hostLan6, port: 9090 },
    ] as const;
    expect(await probeMatrix(lab, probes.map((p) => ({ ...p, proto: "tcp" as const })))).toEqual([
      `lan -> ${ADDR.hostLan}:7070/tcp : open  # tcp api ${ADDR.lan}`, // DNAT: api's rules are in
      `lan -> [${ADDR.hostLan6}]:7070/tcp : open  # tcp api ${ADDR.bridgeGw}`, // docker-proxy on ::, let through for lan
      `wan -> ${ADDR.hostWan}:7070/tcp : closed`,
      `wan -> [${ADDR.hostWan6}]:7070/tcp : closed`,
      `wan -> ${ADDR.hostWan}:9090/tcp : closed`,
      `wan -> [${ADDR.hostWan6}]:9090/tcp : closed`,
      `lan -> ${ADDR.hostLan}:9090/tcp : closed`, // the allow names 8080: it admits nothing
      `lan -> [${ADDR.hostLan6}]:9090/tcp : closed`,
    ]);
    expect(log).toContain(
      "host.dw:4:14: warning: container 'web' does not publish port 8080; web:8080 is left out of this allow until it does (it admits nothing meanwhile)\n" +
        "4 | allow lan to web:8080;\n" +
        "  |              ^^^^^^^^\n" +
        "  = help: allow names host ports; 'web' publishes 9090/tcp\n",
    );
    expect(log).not.toMatch(/rules in place stay/);
  }, LAB_TIMEOUT);
});
