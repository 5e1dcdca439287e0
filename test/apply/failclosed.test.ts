// Fail closed where nobody planned (issue 22), on a real dockerd 20.10 with real connections:
//  1. coexist ("iptables": true): a network dockwall has not seen (no watcher) is closed to
//     the outside, its containers still talk among themselves and out;
//  2. the jump to DOCKER-USER is Docker's and can vanish (iptables -F FORWARD): diff says so
//     (exit 1), apply puts it back;
//  5. coexist with dockerd --ipv6 and ip6tables off (20.10's default): the wan must not reach
//     containers' global IPv6 addresses, nor closed ports through docker-proxy on ::;
//  6. iptables off: after the host block goes, dockwall's old ACCEPTs in INPUT must not open
//     docker-proxy's ports, nor may a hand-made ACCEPT there: the guard goes first.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { IMAGE_REF } from "../lab/image.js";

const LAB_TIMEOUT = 180_000;
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;

function dockwallIn(lab: Lab, dir: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync("ip", ["netns", "exec", lab.host.name, bin, ...args], {
    encoding: "utf8",
    env: { ...process.env, DOCKER_HOST: lab.dockerHost, DOCKWALL_STATE_DIR: join(dir, "state"), SSH_CONNECTION: "" },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function docker(lab: Lab, ...args: string[]): Promise<string> {
  const r = await lab.docker(args);
  if (r.status !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

async function addressOf(lab: Lab, name: string, network: string, v6 = false): Promise<string> {
  const field = v6 ? "GlobalIPv6Address" : "IPAddress";
  return docker(lab, "inspect", "-f", `{{(index .NetworkSettings.Networks "${network}").${field}}}`, name);
}

const opened = async (lab: Lab, from: "wan" | "lan" | `ctr:${string}`, addr: string, port: number) => (await lab.probe(from, addr, port, "tcp", { timeout: 1, retries: 1 })).open;
const closed = async (lab: Lab, from: "wan" | "lan", addr: string, port: number) => (await lab.probe(from, addr, port, "tcp", { timeout: 1 })).open === false;

describeDocker("coexist (iptables on): fail closed where dockwall has not looked", () => {
  let lab: Lab;
  let dir: string;
  let policy: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-failclosed-"));
    lab = await startLab({ iptables: true, ipv6: true, containers: [{ name: "web", publish: ["8080:80"], listen: ["tcp:80"] }] });
    policy = join(dir, "host.dw");
    writeFileSync(policy, `docker { iptables on; }
zone wan { interface eth0; }
zone lan { interface eth1; }
allow lan to web:8080;
`);
    const r = dockwallIn(lab, dir, ["apply", policy, "--docker"]);
    expect(r.stderr).toMatch(/applied/);
    expect(r.status).toBe(0);
  }, LAB_TIMEOUT);
  afterAll(async () => {
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("the policy holds for web, IPv4 and IPv6: the lan reaches 8080, the wan neither 8080 nor web's own addresses", async () => {
    const web6 = await addressOf(lab, "web", "bridge", true);
    expect(web6).toMatch(/^2001:db8:1::/);
    expect(await opened(lab, "lan", ADDR.hostLan, 8080)).toBe(true);
    expect(await opened(lab, "lan", ADDR.hostLan6, 8080)).toBe(true); // docker-proxy on ::, for the lan
    expect(await closed(lab, "wan", ADDR.hostWan, 8080)).toBe(true);
    expect(await closed(lab, "wan", lab.containers.web!.ip!, 80)).toBe(true);
    // Item 5: dockerd writes no IPv6 rules (ip6tables off), yet routes its IPv6 network.
    expect(await closed(lab, "wan", web6, 80)).toBe(true);
    expect(await closed(lab, "lan", web6, 80)).toBe(true);
    expect(await closed(lab, "wan", ADDR.hostWan6, 8080)).toBe(true); // docker-proxy on ::, not for the wan
  }, LAB_TIMEOUT);

  it("a network created after the apply, with no watcher, is closed to the outside; its containers reach each other and out", async () => {
    await docker(lab, "network", "create", "unwatched");
    await docker(lab, "run", "-d", "--name", "late", "--network", "unwatched", "-p", "8400:80", IMAGE_REF, "listen", "late", "tcp:80");
    await docker(lab, "run", "-d", "--name", "peer", "--network", "unwatched", IMAGE_REF, "listen", "peer", "tcp:81");
    const late = await addressOf(lab, "late", "unwatched");
    // Probes from these containers run in their network namespaces.
    for (const name of ["late", "peer"]) {
      const pid = Number(await docker(lab, "inspect", "-f", "{{.State.Pid}}", name));
      (lab.containers as Record<string, { name: string; id: string; pid: number; networks: Record<string, never> }>)[name] = { name, id: name, pid, networks: {} };
    }
    for (const from of ["wan", "lan"] as const) {
      expect(await closed(lab, from, from === "wan" ? ADDR.hostWan : ADDR.hostLan, 8400)).toBe(true);
      expect(await closed(lab, from, late, 80)).toBe(true);
    }
    // Docker's own rules still serve the network's containers: to each other, and out to the wan.
    expect(await opened(lab, "ctr:peer", late, 80)).toBe(true);
    expect(await opened(lab, "ctr:late", ADDR.wan, ADDR.egressTcp)).toBe(true);
  }, LAB_TIMEOUT);

  it("iptables -F FORWARD takes Docker's jump to DOCKER-USER: diff exits 1 naming it, apply puts it back first, and the wan is closed again", async () => {
    // A host whose FORWARD policy is ACCEPT (ip_forward was on before dockerd started: Docker leaves it so).
    lab.host.run(["iptables", "-P", "FORWARD", "ACCEPT"]);
    lab.host.run(["iptables", "-F", "FORWARD"]);
    expect(await opened(lab, "wan", ADDR.hostWan, 8080)).toBe(true); // what the issue saw: everything open
    const d = dockwallIn(lab, dir, ["diff", policy, "--docker", "--no-color"]);
    expect(d.stdout).toMatch(/^@@ ip filter FORWARD @@$/m);
    expect(d.stdout).toMatch(/^\+ -A FORWARD -j DOCKER-USER$/m);
    expect(d.status).toBe(1);
    const a = dockwallIn(lab, dir, ["apply", policy, "--docker"]);
    expect(a.status).toBe(0);
    expect(lab.save(4).split("\n").filter((l) => l.startsWith("-A FORWARD "))[0]).toBe("-A FORWARD -j DOCKER-USER");
    expect(await closed(lab, "wan", ADDR.hostWan, 8080)).toBe(true);
    // FORWARD's policy is DROP again (dockwall sets it with iptables on), and dockerd's own FORWARD rules are gone until it
    // writes them again: the lan's allowed port is closed too (closed, not open), and diff says that Docker's chains differ.
    expect(lab.save(4)).toMatch(/^:FORWARD DROP /m);
    expect(await closed(lab, "lan", ADDR.hostLan, 8080)).toBe(true);
    const after = dockwallIn(lab, dir, ["diff", policy, "--docker"]);
    expect(after.status).toBe(0);
    expect(after.stdout).toMatch(/^warning: Docker's own chains \(IPv4\) are not what dockerd \S+ writes for this policy: filter FORWARD differ /m);
  }, LAB_TIMEOUT);
});

describeDocker("iptables off: docker-proxy's guard goes first in INPUT", () => {
  let lab: Lab;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-proxyfirst-"));
    lab = await startLab({ linkIpv6: true, containers: [{ name: "web", publish: ["8080:80"], listen: ["tcp:80"] }] });
  }, LAB_TIMEOUT);
  afterAll(async () => {
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  const base = `docker { iptables off; }
zone wan { interface eth0; }
zone lan { interface eth1; }
allow lan to web:8080;
`;

  it("after the host block is removed, dockwall's old ACCEPTs leave INPUT and the wan cannot reach 8080 through docker-proxy (IPv4, IPv6)", async () => {
    const file = join(dir, "host.dw");
    writeFileSync(file, `${base}host { policy accept; allow any tcp 22; }\n`);
    expect(dockwallIn(lab, dir, ["apply", file, "--docker"]).status).toBe(0);
    expect(lab.save(6)).toMatch(/-A INPUT -p tcp -m tcp --dport 8080 -m comment --comment dockwall -j ACCEPT/);
    writeFileSync(file, base);
    const d = dockwallIn(lab, dir, ["diff", file, "--docker", "--no-color"]);
    expect(d.stdout).toMatch(/^- -A INPUT -p tcp -m tcp --dport 8080 -m comment --comment dockwall -j ACCEPT$/m);
    expect(d.status).toBe(1);
    expect(dockwallIn(lab, dir, ["apply", file, "--docker"]).status).toBe(0);
    for (const f of [4, 6] as const) expect(lab.save(f).split("\n").filter((l) => l.startsWith("-A INPUT "))).toEqual(["-A INPUT -j DOCKWALL-PROXY"]);
    expect(await closed(lab, "wan", ADDR.hostWan, 8080)).toBe(true);
    expect(await closed(lab, "wan", ADDR.hostWan6, 8080)).toBe(true);
    expect(await opened(lab, "lan", ADDR.hostLan, 8080)).toBe(true);
    expect(await opened(lab, "lan", ADDR.hostLan6, 8080)).toBe(true);
  }, LAB_TIMEOUT);

  it("a hand-made ACCEPT for 8080 inserted at the top of INPUT does not open it: apply puts the guard above it, and the host's rule stays", async () => {
    const file = join(dir, "host.dw");
    writeFileSync(file, base);
    for (const tool of ["iptables", "ip6tables"]) lab.host.run([tool, "-I", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "ACCEPT"]);
    const d = dockwallIn(lab, dir, ["diff", file, "--docker", "--no-color"]);
    // The guard stays where apply put it, first; the hand-made rule is what moves, below it.
    expect(d.stdout).toMatch(/^~ -A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT +\(moved from position 1 to 2\)$/m);
    expect(d.status).toBe(1);
    expect(dockwallIn(lab, dir, ["apply", file, "--docker"]).status).toBe(0);
    for (const f of [4, 6] as const) {
      expect(lab.save(f).split("\n").filter((l) => l.startsWith("-A INPUT "))).toEqual(["-A INPUT -j DOCKWALL-PROXY", "-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT"]);
    }
    expect(await closed(lab, "wan", ADDR.hostWan, 8080)).toBe(true);
    expect(await closed(lab, "wan", ADDR.hostWan6, 8080)).toBe(true);
    expect(await opened(lab, "lan", ADDR.hostLan6, 8080)).toBe(true);
  }, LAB_TIMEOUT);
});
