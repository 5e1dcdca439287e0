// While `apply --confirm` waits, the watcher keeps that apply's policy in step with Docker (a
// review, on a real dockerd: it loaded nothing, and a removed container's DNAT reached the next
// container Docker gave its address, for the whole wait). Real dockerd 20.10 ("iptables": false),
// `dockwall watch` and `dockwall apply` as a user runs them: web removed during the wait, another
// container given its address; the lan's port 8080 is then closed, not answered by it.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { IMAGE_REF } from "../lab/image.js";

const LAB_TIMEOUT = 120_000;
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;

const POLICY = `docker { version auto; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.77.0/24; }
allow lan to web:8080;
`;
/** What the apply that waits loads: one allow more. */
const APPLIED = `${POLICY}allow wan to db:5432;\n`;

describeDocker("watch while an apply waits for confirmation (real dockerd)", () => {
  let lab: Lab;
  let dir: string;
  let watcher: ChildProcess | undefined;
  let log = "";
  const env = () => ({ ...process.env, DOCKER_HOST: lab.dockerHost, DOCKWALL_STATE_DIR: join(dir, "state") });
  async function until(test: () => boolean, ms: number): Promise<void> {
    const t0 = Date.now();
    while (!test()) {
      if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms; watcher log:\n${log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-pending-"));
    writeFileSync(join(dir, "host.dw"), POLICY);
    writeFileSync(join(dir, "applied.dw"), APPLIED);
    lab = await startLab({
      userlandProxy: false,
      containers: [
        { name: "web", publish: ["8080:80"], listen: ["tcp:80"] },
        { name: "db", publish: ["5432:5432"], listen: ["tcp:5432"] },
      ],
    });
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", join(dir, "host.dw"), "--verbose"], { env: env(), stdio: ["ignore", "ignore", "pipe"] });
    watcher.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    await until(() => /^(applied: |reconciled: nothing to change)/m.test(log), 20_000);
  }, LAB_TIMEOUT);
  afterAll(async () => {
    if (watcher && watcher.exitCode === null) {
      const exited = new Promise((r) => watcher!.on("exit", r));
      watcher.kill("SIGTERM");
      await exited;
    }
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("a container removed during the wait loses its DNAT at once: the next container given its address is not reached through it", async () => {
    const webAddr = lab.containers.web!.networks.bridge!.ip!;
    const apply = spawnSync("ip", ["netns", "exec", lab.host.name, bin, "apply", join(dir, "applied.dw"), "--docker", "--confirm", "120", "--no-wait"], { env: env(), encoding: "utf8" });
    expect(apply.status, apply.stderr).toBe(0);
    expect((await lab.probe("wan", ADDR.hostWan, 5432, "tcp")).answeredBy, log).toBe("db");
    expect((await lab.probe("lan", ADDR.hostLan, 8080, "tcp")).answeredBy).toBe("web");
    expect((await lab.docker(["rm", "-f", "web"])).status).toBe(0);
    const run = await lab.docker(["run", "-d", "--name", "other", IMAGE_REF, "listen", "other", "tcp:80"]);
    expect(run.status, run.stderr).toBe(0);
    const addr = JSON.parse((await lab.docker(["inspect", "other"])).stdout)[0].NetworkSettings.Networks.bridge.IPAddress as string;
    expect(addr).toBe(webAddr); // Docker hands the freed address to the next container
    await until(() => /^applied: containers .*-web.*\(the waiting apply's policy\)$/m.test(log), 10_000);
    expect(log).toMatch(/waits for confirmation: keeping its rules in step with Docker until it ends$/m);
    expect((await lab.probe("lan", ADDR.hostLan, 8080, "tcp")).open).toBe(false);
    // The apply's own allow stays while it waits.
    expect((await lab.probe("wan", ADDR.hostWan, 5432, "tcp")).answeredBy).toBe("db");
    // Rolled back by hand: the watcher's own policy again.
    const back = spawnSync("ip", ["netns", "exec", lab.host.name, bin, "rollback"], { env: env(), encoding: "utf8" });
    expect(back.status, back.stderr).toBe(0);
    await until(() => /^the apply that waited has ended: reconciling$/m.test(log), 10_000);
    expect((await lab.probe("wan", ADDR.hostWan, 5432, "tcp")).open).toBe(false);
  }, LAB_TIMEOUT);
});
