// Rules in place before the container runs (issue 26, item 2), on a real dockerd 20.10 with
// "iptables": false and userland-proxy off: `dockwall watch` loads a new container's rules at
// its network `connect` event, about 200 ms before its process runs, as dockerd has its own.
// Measured with real packets: when `docker run -d` returns, the DNAT rule is in the kernel; the
// allowed lan's first connection is answered without ever landing on dockerd's socket (which
// completes the handshake and never answers); the wan, which the policy does not allow, never
// completes a handshake at any moment; and the start event's reconcile finds nothing to change,
// IPv4 or IPv6: what was loaded early is what the running container needs.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { firstConnection } from "../lab/firstconn.js";
import { IMAGE_REF } from "../lab/image.js";
import { run } from "../lab/proc.js";

const LAB_TIMEOUT = 180_000;
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;
const STARTS = 5;

describeDocker("dockwall watch: a new container's rules are in place before it runs", () => {
  let lab: Lab;
  let dir: string;
  let watcher: ChildProcess | undefined;
  let log = "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-prestart-"));
    lab = await startLab({ userlandProxy: false, ipv6: true, containers: [] });
    const names = Array.from({ length: STARTS }, (_, i) => `s${i}`).join(", ");
    writeFileSync(join(dir, "host.dw"), `docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to ${names};\nhost { allow lan tcp 22; }\n`);
    watcher = spawn("ip", ["netns", "exec", lab.host.name, bin, "watch", "--verbose", join(dir, "host.dw")], { env: { ...process.env, DOCKER_HOST: lab.dockerHost }, stdio: ["ignore", "ignore", "pipe"] });
    watcher.stderr!.on("data", (c: Buffer) => (log += c.toString()));
    for (let i = 0; i < 200 && !/^applied: /m.test(log); i++) await new Promise((r) => setTimeout(r, 50));
    expect(log).toMatch(/^applied: /m);
  }, LAB_TIMEOUT);
  afterAll(async () => {
    if (watcher && watcher.exitCode === null) {
      const done = new Promise((r) => watcher!.on("exit", r));
      watcher.kill("SIGTERM");
      await done;
    }
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  /** A loop in the wan namespace that tries a TCP handshake with the host's wan address every few ms for `ms`: how many completed. */
  const scan = (port: number, ms: number) => {
    const loop = `end=$(( $(date +%s%N) + ${ms}000000 )); n=0; open=0; while [ $(date +%s%N) -lt $end ]; do n=$((n+1)); if timeout 0.2 bash -c 'exec 3<>/dev/tcp/${ADDR.hostWan}/${port}' 2>/dev/null; then open=$((open+1)); fi; done; echo "$open $n"`;
    const child = spawn("ip", ["netns", "exec", lab.wan.name, "bash", "-c", loop], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    return new Promise<{ open: number; probes: number }>((r) => child.on("exit", () => {
      const [open, probes] = out.trim().split(" ").map(Number);
      r({ open: open ?? -1, probes: probes ?? 0 });
    }));
  };

  it(`${STARTS} docker runs: each DNAT rule is in the kernel when docker run returns; the lan's first connection never stalls; the wan never completes a handshake`, async () => {
    for (let i = 0; i < STARTS; i++) {
      const name = `s${i}`;
      const port = 8200 + i;
      const client = await firstConnection(lab.lan.name, ADDR.hostLan, port);
      const wan = scan(port, 2500);
      await new Promise((r) => setTimeout(r, 300));
      const r = await lab.docker(["run", "-d", "--name", name, "-p", `${port}:80`, IMAGE_REF, "listen", name, "tcp:80"]);
      const answered = client.go();
      const nat = run(["ip", "netns", "exec", lab.host.name, "iptables", "-t", "nat", "-S", "DOCKER"]);
      expect(r.status, r.stderr).toBe(0);
      const first = await answered;
      const scanned = await wan;
      console.log(`${name}: answered ${first.ms.toFixed(0)} ms after docker run returned (${first.hung} hung, ${first.dropped} dropped); wan: ${scanned.open} of ${scanned.probes} handshakes`);
      expect(nat.stdout, log).toMatch(new RegExp(`--dport ${port} -j DNAT`));
      expect(first).toMatchObject({ hung: 0, dropped: 0, reply: expect.stringContaining(name) });
      expect(scanned.probes).toBeGreaterThan(5);
      expect(scanned.open).toBe(0);
    }
  }, LAB_TIMEOUT);

  it("without a host block: dockerd's own socket may answer the wan's handshake until the reconcile at the connect event (measured, printed); from when docker run returns, never", async () => {
    // A host block taken away over the DROP it set is refused (the host would accept nothing), and under watch INPUT's policy set
    // by hand is drift the watcher puts back: the way out is `host { policy accept; }` first (INPUT handed back open), then no
    // host block (docs/language.md).
    const reload = async (text: string) => {
      writeFileSync(join(dir, "host.dw"), text);
      const before = (log.match(/^applied: /gm) ?? []).length;
      watcher!.kill("SIGHUP");
      for (let i = 0; i < 100 && (log.match(/^applied: /gm) ?? []).length === before; i++) await new Promise((r) => setTimeout(r, 50));
      expect((log.match(/^applied: /gm) ?? []).length, log).toBeGreaterThan(before);
    };
    await reload(`docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to s9;\nhost { policy accept; }\n`);
    await reload(`docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to s9;\n`);
    for (const f of ["iptables", "ip6tables"]) expect(run(["ip", "netns", "exec", lab.host.name, f, "-S", "INPUT"]).stdout).toMatch(/^-P INPUT ACCEPT$/m);
    const port = 8209;
    const wan = scan(port, 1500);
    await new Promise((r) => setTimeout(r, 300));
    const r = await lab.docker(["run", "-d", "--name", "s9", "-p", `${port}:80`, IMAGE_REF, "listen", "s9", "tcp:80"]);
    expect(r.status, r.stderr).toBe(0);
    const after = await (async () => {
      let open = 0;
      for (let i = 0; i < 5; i++) if ((await lab.probe("wan", ADDR.hostWan, port, "tcp", { timeout: 0.3 })).handshakeOnly) open++;
      return open;
    })();
    const scanned = await wan;
    console.log(`no host block: the wan completed ${scanned.open} of ${scanned.probes} handshakes around docker run`);
    expect(after).toBe(0);
    expect(await lab.probe("wan", ADDR.hostWan, port, "tcp", { timeout: 0.5 })).toEqual({ open: false });
    expect((await lab.probe("lan", ADDR.hostLan, port, "tcp")).answeredBy).toBe("s9");
  }, LAB_TIMEOUT);

  it("each container's rules were loaded before its start event, and the start event's reconcile changed nothing (IPv4 and IPv6)", () => {
    for (let i = 0; i < STARTS; i++) {
      const lines = log.split("\n");
      const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
      const applied = at(new RegExp(`^applied: containers \\+s${i}\\b`));
      const started = at(new RegExp(`^event: container start s${i}$`));
      expect(applied, log).toBeGreaterThan(at(new RegExp(`^event: network connect bridge$`)));
      expect(applied, log).toBeLessThan(started);
      // From the start event to the next event (or SIGHUP): no change loaded.
      const next = lines.findIndex((l, k) => k > started + 1 && /^(event: |SIGHUP)/.test(l));
      expect(lines.slice(started, next < 0 ? undefined : next).filter((l) => /^applied: /.test(l)), log).toEqual([]);
    }
  });
});
