// Two iptables backends at once (issue 22, item 7), on a real dockerd 20.10 ("iptables":
// false): ferm loads through iptables-legacy, while iptables-save / iptables-restore are
// iptables-nft. dockwall reads and writes the backend that holds the rules; when both hold
// rules it refuses and says exactly what to empty.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ADDR, describeDocker, startLab, type Lab } from "../lab/dockerlab.js";

const LAB_TIMEOUT = 120_000;
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;

describeDocker("two iptables backends: dockwall uses the one that holds the rules, and refuses when both do", () => {
  let lab: Lab;
  let dir: string;
  let policy: string;
  const dockwall = (args: string[]) => {
    const r = spawnSync("ip", ["netns", "exec", lab.host.name, bin, ...args], { encoding: "utf8", env: { ...process.env, DOCKER_HOST: lab.dockerHost, DOCKWALL_STATE_DIR: join(dir, "state"), SSH_CONNECTION: "" } });
    return { status: r.status, stderr: r.stderr, stdout: r.stdout };
  };
  const ns = (argv: string[], input?: string) => {
    const r = spawnSync("ip", ["netns", "exec", lab.host.name, ...argv], { encoding: "utf8", input });
    if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const rulesIn = (save: string) => ns([save]).split("\n").filter((l) => l.startsWith("-A "));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-backends-"));
    lab = await startLab({
      userlandProxy: false,
      containers: [
        { name: "web", publish: ["8080:80"], listen: ["tcp:80"] },
        { name: "db", publish: ["5432:5432"], listen: ["tcp:5432"] },
      ],
    });
    policy = join(dir, "host.dw");
    writeFileSync(policy, `docker { version auto; iptables off; userland-proxy off; }\nzone wan { interface eth0; }\nallow wan to web:8080;\n`);
  }, LAB_TIMEOUT);
  afterAll(async () => {
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("the rules are in iptables-legacy (as ferm loads them): apply finds nothing to change there and writes nothing into iptables-nft", async () => {
    for (const [format, restore] of [["iptables", "iptables-legacy-restore"], ["ip6tables", "ip6tables-legacy-restore"]]) {
      const out = dockwall(["compile", policy, "--docker", "-f", format!]);
      expect(out.status).toBe(0);
      ns([restore!], out.stdout);
    }
    expect(rulesIn("iptables-nft-save")).toEqual([]);
    const a = dockwall(["apply", policy, "--docker"]);
    expect(a.stderr).toMatch(/applied .*host\.dw: nothing to change/);
    expect(a.status).toBe(0);
    expect(rulesIn("iptables-nft-save")).toEqual([]);
    expect(rulesIn("ip6tables-nft-save")).toEqual([]);
    expect((await lab.probe("wan", ADDR.hostWan, 8080, "tcp")).answeredBy).toBe("web");
    expect((await lab.probe("wan", ADDR.hostWan, 5432, "tcp")).open).toBe(false);
  }, LAB_TIMEOUT);

  it("a stale DNAT in the other backend (Docker's from before \"iptables\": false) is seen: apply refuses and names it; emptied as it says, apply goes on", async () => {
    // Docker's own nft rules, left from when dockerd wrote them: 5432 to db.
    const db = lab.containers.db!.ip!;
    ns(["iptables-nft-restore", "--noflush"], `*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-A DOCKER -p tcp -m tcp --dport 5432 -j DNAT --to-destination ${db}:5432\nCOMMIT\n*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n`);
    const a = dockwall(["apply", policy, "--docker"]);
    expect(a.status).toBe(2);
    expect(a.stderr).toContain("dockwall: not applied: both iptables backends hold IPv4 rules, and the kernel filters every packet through both: iptables-nft holds nat PREROUTING (1 rule), DOCKER (user chain, 1 rule)");
    expect(a.stderr).toContain("Empty it: iptables-nft -t nat -F; iptables-nft -t nat -X");
    const d = dockwall(["diff", policy, "--docker"]);
    expect(d.stdout).toMatch(/^warning: both iptables backends hold IPv4 rules/m);
    for (const cmd of ["iptables-nft -t nat -F", "iptables-nft -t nat -X"]) ns(cmd.split(" "));
    expect(dockwall(["apply", policy, "--docker"]).status).toBe(0);
    expect((await lab.probe("wan", ADDR.hostWan, 5432, "tcp")).open).toBe(false);
    expect((await lab.probe("wan", ADDR.hostWan, 8080, "tcp")).answeredBy).toBe("web");
  }, LAB_TIMEOUT);
});
