// Facts from a live dockerd 20.10 (the lab's, in its own network namespace, "iptables": true so
// that it writes its own rules): a policy with only a docker block, compiled with
// `--docker`, is rule for rule what dockerd wrote — after a compose project with two
// replicas, a container on two networks, `-P`, a name that starts with a digit, and networks
// with docker-named bridges (br-<id>). `dockwall facts` then `--facts` gives the same.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeDocker, startLab, type Lab } from "../lab/dockerlab.js";
import { IMAGE_REF } from "../lab/image.js";

const LAB_TIMEOUT = 120_000;
const bin = new URL("../../bin/dockwall", import.meta.url).pathname;

const COMPOSE = `version: "2.4"
services:
  web:
    image: ${IMAGE_REF}
    command: ["listen", "web", "tcp:80"]
    ports: ["80"]
`;

describeDocker("facts from a live dockerd (iptables on): compile --docker = what dockerd wrote", () => {
  let lab: Lab;
  let dir: string;
  const dockwall = (args: string[]) =>
    execFileSync(bin, args, { cwd: dir, encoding: "utf8", env: { ...process.env, DOCKER_HOST: lab.dockerHost }, stdio: ["ignore", "pipe", "pipe"] });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-live-"));
    lab = await startLab({ iptables: true, containers: [{ name: "web", publish: ["8080:80"], listen: ["tcp:80"] }] });
    const steps = [
      ["network", "create", "--subnet", "172.27.0.0/16", "front"],
      ["network", "create", "--subnet", "172.28.0.0/16", "zback"],
      ["run", "-d", "--name", "1app", "--network", "front", "--ip", "172.27.0.10", "-p", "9090:80", IMAGE_REF, "listen", "1app", "tcp:80"],
      ["network", "connect", "--ip", "172.28.0.10", "zback", "1app"],
      ["run", "-d", "--name", "rnd", "--expose", "80", "--expose", "443", "-P", IMAGE_REF, "listen", "rnd", "tcp:80", "tcp:443"],
      ["run", "-d", "--name", "dns", "-p", "127.0.0.1:5353:53/udp", IMAGE_REF, "listen", "dns", "udp:53"],
    ];
    for (const s of steps) {
      const r = await lab.docker(s);
      if (r.status !== 0) throw new Error(`docker ${s.join(" ")}: ${r.stderr}`);
    }
    writeFileSync(join(dir, "docker-compose.yml"), COMPOSE);
    // One replica at a time: compose starts them in parallel otherwise, and then the order in
    // which dockerd writes their rules follows that race (seen: web_2's before web_1's), not
    // the start order the API reports. Which rule comes first changes nothing between two
    // containers' different ports; the exact-order comparison needs one order.
    const env = { ...process.env, DOCKER_HOST: lab.dockerHost };
    for (const scale of ["1", "2"]) execFileSync("docker-compose", ["-p", "shop", "up", "-d", "--scale", `web=${scale}`], { cwd: dir, env, stdio: "pipe" });
    writeFileSync(join(dir, "policy.dw"), "docker { version auto; iptables off; published open; }\n");
  }, LAB_TIMEOUT);
  afterAll(async () => {
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("compile --docker gives exactly the rules dockerd wrote, in order", () => {
    const wrote = lab.save(4);
    expect(wrote).toMatch(/-A DOCKER ! -i br-[0-9a-f]{12} -p tcp -m tcp --dport 9090 -j DNAT --to-destination 172.27.0.10:80/);
    const compiled = dockwall(["compile", "policy.dw", "--docker", "-f", "iptables"]);
    const rules = (t: string) => t.split("\n").filter((l) => /^[*:-]|^COMMIT/.test(l)).map((l) => l.replace(/ \[\d+:\d+\]$/, ""));
    expect(rules(compiled)).toEqual(rules(wrote));
  });

  it("dockwall facts, then --facts, gives the same", () => {
    writeFileSync(join(dir, "host.json"), dockwall(["facts"]));
    // DOCKWALL_CAPTURE=1 keeps them as the unit tests' fixture of a real compose project.
    if (process.env.DOCKWALL_CAPTURE === "1") writeFileSync(new URL("./compose/state.json", import.meta.url).pathname, readFileSync(join(dir, "host.json"), "utf8"));
    const saved = JSON.parse(readFileSync(join(dir, "host.json"), "utf8")) as { containers: { Name: string }[] };
    expect(saved.containers.map((c) => c.Name).sort()).toEqual(["/1app", "/dns", "/rnd", "/shop_web_1", "/shop_web_2", "/web"]);
    expect(dockwall(["compile", "policy.dw", "--facts", "host.json", "-f", "iptables"])).toBe(dockwall(["compile", "policy.dw", "--docker", "-f", "iptables"]));
  });

  it("a policy that names the compose service and the digit-named container, with no address anywhere", () => {
    writeFileSync(
      join(dir, "named.dw"),
      "docker { version auto; iptables off; }\nzone lan { interface eth1; from 192.168.77.0/24; }\nallow lan to shop/web, 1app:9090;\n",
    );
    const out = dockwall(["compile", "named.dw", "--docker", "-f", "iptables"]);
    const allowed = out.split("\n").filter((l) => l.startsWith("-A DOCKER-USER") && l.includes("-s 192.168.77.0/24"));
    expect(allowed.length, out).toBe(3);
    expect(allowed.join("\n")).toContain("-d 172.27.0.10/32");
  });
});

// The policy of live.md (../spec/live/02-example.dw), unchanged but for the lan's source
// range (the lab's lan is 192.168.77.0/24), on a host whose dockerd runs with "iptables":
// false and "userland-proxy": false: compiled with --docker, loaded, and probed with real
// packets. No address or bridge name is written anywhere.
describeDocker("live.md's example on a real dockerd (iptables off): compile --docker, load, probe", () => {
  let lab: Lab;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-live-"));
    lab = await startLab({
      userlandProxy: false,
      linkIpv6: true, // the same questions over IPv6
      containers: [
        { name: "web", publish: ["8080:80"], listen: ["tcp:80"] },
        { name: "grafana", publish: ["3000:3000"], listen: ["tcp:3000"] },
        { name: "db", publish: ["5432:5432"], listen: ["tcp:5432"] },
      ],
    });
    const example = readFileSync(new URL("../spec/live/02-example.dw", import.meta.url).pathname, "utf8");
    writeFileSync(join(dir, "host.dw"), example.replace("192.168.1.0/24", "192.168.77.0/24, 2001:db8:77::/64"));
    const env = { ...process.env, DOCKER_HOST: lab.dockerHost };
    const compile = (f: string) => execFileSync(bin, ["compile", "host.dw", "--docker", "-f", f], { cwd: dir, encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] });
    lab.load(compile("iptables"), compile("ip6tables"));
  }, LAB_TIMEOUT);
  afterAll(async () => {
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("lan reaches web:8080 and every port grafana publishes; wan reaches neither; db is closed to both", async () => {
    const { ADDR } = await import("../lab/dockerlab.js");
    const web = lab.containers.web!.ip!;
    const results = await Promise.all([
      lab.probe("lan", ADDR.hostLan, 8080, "tcp"),
      lab.probe("lan", ADDR.hostLan, 3000, "tcp"),
      lab.probe("wan", ADDR.hostWan, 8080, "tcp"),
      lab.probe("wan", ADDR.hostWan, 3000, "tcp"),
      lab.probe("lan", ADDR.hostLan, 5432, "tcp"),
      lab.probe("wan", ADDR.hostWan, 5432, "tcp"),
      lab.probe("lan", web, 80, "tcp"), // routed straight to the container
    ]);
    expect(results.map((r) => (r.open ? `open ${r.answeredBy} ${r.clientAddr}` : "closed"))).toEqual([
      `open web ${ADDR.lan}`,
      `open grafana ${ADDR.lan}`,
      "closed",
      "closed",
      "closed",
      "closed",
      "closed",
    ]);
  }, LAB_TIMEOUT);

  it("the host's own services: ssh from lan only, over IPv4 and IPv6", async () => {
    const { ADDR } = await import("../lab/dockerlab.js");
    await lab.serveOnHost(22, "sshd");
    expect((await lab.probe("lan", ADDR.hostLan, 22, "tcp")).answeredBy).toBe("sshd");
    expect((await lab.probe("wan", ADDR.hostWan, 22, "tcp")).open).toBe(false);
    expect((await lab.probe("lan", ADDR.hostLan6, 22, "tcp")).answeredBy).toBe("sshd");
    expect((await lab.probe("wan", ADDR.hostWan6, 22, "tcp")).open).toBe(false);
  }, LAB_TIMEOUT);
});

// `dockwall init --docker` on a host as Docker leaves it ("iptables": true, the default): the
// starter policy, applied, leaves every published port exactly as reachable as before.
describeDocker("dockwall init --docker: applied, every published port is as reachable as before", () => {
  let lab: Lab;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-init-"));
    lab = await startLab({
      iptables: true,
      containers: [
        { name: "web", publish: ["8080:80"], listen: ["tcp:80"] },
        { name: "db", publish: ["5432:5432"], listen: ["tcp:5432"] },
        { name: "api", publish: ["127.0.0.1:9000:9000"], listen: ["tcp:9000"] },
        { name: "dns", publish: ["5353:53/udp"], listen: ["udp:53"] },
      ],
    });
  }, LAB_TIMEOUT);
  afterAll(async () => {
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("the same probe matrix before and after, for every published port; routing straight to a container is closed", async () => {
    const { ADDR, probeMatrix } = await import("../lab/dockerlab.js");
    const lines = (["lan", "wan"] as const).flatMap((from) => {
      const host = from === "lan" ? ADDR.hostLan : ADDR.hostWan;
      return [
        { from, addr: host, port: 8080, proto: "tcp" as const },
        { from, addr: host, port: 5432, proto: "tcp" as const },
        { from, addr: host, port: 9000, proto: "tcp" as const },
        { from, addr: host, port: 5353, proto: "udp" as const },
        { from, addr: lab.containers.web!.ip!, port: 80, proto: "tcp" as const },
      ];
    });
    const before = await probeMatrix(lab, lines);
    // Docker's own rules: published ports open from both sides (the 127.0.0.1 one from the lan too: finding 3).
    expect(before.filter((l) => !/closed/.test(l)).length).toBeGreaterThan(4);
    const env = { ...process.env, DOCKER_HOST: lab.dockerHost, DOCKWALL_STATE_DIR: join(dir, "state") };
    const policy = execFileSync(bin, ["init", "--docker"], { encoding: "utf8", env });
    writeFileSync(join(dir, "host.dw"), policy);
    execFileSync("ip", ["netns", "exec", lab.host.name, bin, "apply", join(dir, "host.dw"), "--docker"], { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] });
    expect(lab.save(4)).toMatch(/-A DOCKER-USER .*--ctorigdstport 8080 -j RETURN/);
    const after = await probeMatrix(lab, lines);
    const published = (m: string[]) => m.filter((l) => !l.includes(lab.containers.web!.ip!));
    expect(published(after)).toEqual(published(before));
    // Not a published port: the leak of Docker before 28 (a neighbour routing via the host
    // reaches the container's address), which dockwall closes, as its comments say.
    expect(before.filter((l) => l.includes(lab.containers.web!.ip!)).every((l) => / : open /.test(l))).toBe(true);
    expect(after.filter((l) => l.includes(lab.containers.web!.ip!)).every((l) => / : closed$/.test(l))).toBe(true);
  }, LAB_TIMEOUT);
});

// Docker settings dockwall does not reproduce, on a real dockerd 20.10: a container on a
// macvlan network (its parent a veth inside the lab's host namespace) and one on the host's
// network are refused by name — never compiled as if they were absent.
describeDocker("a macvlan container and a host-network container on a real dockerd: refused, each named", () => {
  let lab: Lab;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-refused-"));
    lab = await startLab({ iptables: true, containers: [{ name: "web", publish: ["8080:80"], listen: ["tcp:80"] }] });
    for (const argv of [["ip", "link", "add", "dwpar0", "type", "veth", "peer", "name", "dwpar1"], ["ip", "link", "set", "dwpar0", "up"]]) {
      const r = lab.host.run(argv);
      if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    }
    const steps = [
      ["network", "create", "-d", "macvlan", "-o", "parent=dwpar0", "--subnet", "10.99.0.0/24", "lan"],
      ["run", "-d", "--name", "mac", "--network", "lan", IMAGE_REF, "listen", "mac", "tcp:80"],
      // Docker discards -p with host networking (and says so): the port is the host's own.
      ["run", "-d", "--name", "hostnet", "--network", "host", "-p", "9100:9100", IMAGE_REF, "listen", "hostnet", "tcp:9100"],
    ];
    for (const s of steps) {
      const r = await lab.docker(s);
      if (r.status !== 0) throw new Error(`docker ${s.join(" ")}: ${r.stderr}`);
    }
    writeFileSync(join(dir, "host.dw"), "docker { version auto; iptables on; published open; }\n");
  }, LAB_TIMEOUT);
  afterAll(async () => {
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, LAB_TIMEOUT);

  it("check, compile, diff and apply --docker exit 2, naming the containers and the network; the rules stay", () => {
    const env = { ...process.env, DOCKER_HOST: lab.dockerHost, DOCKWALL_STATE_DIR: join(dir, "state") };
    const before = lab.save(4);
    for (const command of [["check"], ["compile"], ["diff"], ["apply"]]) {
      const r = spawnSync("ip", ["netns", "exec", lab.host.name, bin, ...command, join(dir, "host.dw"), "--docker"], { encoding: "utf8", env });
      expect(r.status, r.stderr).toBe(2);
      const errors = r.stderr.split("\n").filter((l) => l.includes(": error: "));
      expect(errors).toEqual([
        expect.stringMatching(/^unix:\/\/\S+: container 'mac' \([0-9a-f]{12}\): error: container 'mac' is on macvlan network 'lan': its traffic goes in and out through the host interface dwpar0 /),
        expect.stringMatching(/^unix:\/\/\S+: container 'hostnet' \([0-9a-f]{12}\): error: container 'hostnet' runs on the host's network \(--network host\): its ports \(9100\/tcp: published or exposed\) are sockets of the host's own, and without a host block nothing restricts them/),
      ]);
      expect(r.stderr).toMatch(/: network 'lan' \([0-9a-f]{12}\): note: the macvlan network \(parent dwpar0\)\n/);
    }
    expect(lab.save(4)).toBe(before);
    // With a host block the host-network container is a warning; the macvlan one stays an error.
    writeFileSync(join(dir, "hosted.dw"), "docker { version auto; iptables on; published open; }\nhost { allow any tcp 22; }\n");
    const r = spawnSync(bin, ["check", join(dir, "hosted.dw"), "--docker"], { encoding: "utf8", env });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/container 'hostnet' \([0-9a-f]{12}\): warning: container 'hostnet' runs on the host's network/);
    expect(r.stderr.match(/: error: /g)).toHaveLength(1);
  }, LAB_TIMEOUT);

  it("dockwall facts records the daemon's /info (no FirewallBackend before Docker 29), and --facts refuses the same", () => {
    const env = { ...process.env, DOCKER_HOST: lab.dockerHost };
    writeFileSync(join(dir, "host.json"), execFileSync(bin, ["facts"], { encoding: "utf8", env }));
    const saved = JSON.parse(readFileSync(join(dir, "host.json"), "utf8")) as { info: unknown };
    expect(saved.info).toEqual({});
    const r = spawnSync(bin, ["check", join(dir, "host.dw"), "--facts", join(dir, "host.json")], { encoding: "utf8", env });
    expect(r.status).toBe(2);
    expect(r.stderr.match(/: error: /g)).toHaveLength(2);
  }, LAB_TIMEOUT);
});
