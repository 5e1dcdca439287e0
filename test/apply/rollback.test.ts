// `dockwall rollback` and the rollback of an unconfirmed `apply --confirm`, with a machine in
// memory (test/support/memory-kernel.ts) and the command line run in process: Docker's facts
// change between the apply and its rollback (issue 22: a container removed and another given
// its address, one started meanwhile), and the rollback must load the previous policy compiled
// with the facts as they are then — never a snapshot of Docker's chains.
import { readFileSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import { run } from "../../src/cli.js";
import { memoryIo } from "../support/io.js";
import { MemoryKernel, machine, type Machine } from "../support/memory-kernel.js";

const corpus = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8")) as { networks: unknown[]; containers: Record<string, any>[] };

/** The corpus' `web` container as NAME at ADDR, publishing HOSTPORT:PORT/tcp for each [host, container] pair. */
function ctr(name: string, addr: string, ports: [number, number][], started = "2025-01-01T00:00:00.000000000Z"): Record<string, unknown> {
  const c = structuredClone(corpus.containers[0]!);
  c.Name = `/${name}`;
  c.Id = name.padEnd(64, "0");
  c.State.StartedAt = started;
  c.NetworkSettings.IPAddress = addr;
  c.NetworkSettings.Networks.bridge.IPAddress = addr;
  c.NetworkSettings.Ports = Object.fromEntries(ports.map(([h, p]) => [`${p}/tcp`, [{ HostIp: "0.0.0.0", HostPort: String(h) }]]));
  return c;
}
const facts = (...containers: Record<string, unknown>[]) => ({ networks: corpus.networks, containers });

// Before: web and db. After: db removed, cache given db's address (publishing another port), api started.
const BEFORE = facts(ctr("web", "172.17.0.2", [[8080, 80]]), ctr("db", "172.17.0.3", [[5432, 5432]], "2025-01-01T00:00:01.000000000Z"));
const AFTER = facts(
  ctr("web", "172.17.0.2", [[8080, 80]]),
  ctr("cache", "172.17.0.3", [[6379, 6379]], "2025-01-01T00:00:05.000000000Z"),
  ctr("api", "172.17.0.4", [[9000, 9000]], "2025-01-01T00:00:06.000000000Z"),
);

const HEAD = `docker { version 20.10; iptables off; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
`;
/** A: the policy in place before; api does not run yet (a warning: the allow takes effect when it runs). */
const A = `${HEAD}allow wan to web:8080, db:5432, api:9000;\nhost { allow lan tcp 22; }\n`;
/** B: the policy applied, then rolled back. */
const B = `${HEAD}allow wan to web:8080;\nhost { allow lan tcp 22; allow lan tcp 2222; }\n`;

const FAIL2BAN = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A INPUT -s 10.9.9.9/32 -j ACCEPT
-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
`;

/** A host with fail2ban's chain, and the command line around it; `daemon.facts` is what dockerd answers (undefined: it is gone). */
function host(initial = FAIL2BAN) {
  const m = machine();
  m.kernel.restore(4, initial, { noflush: false, test: false });
  const daemon: { facts?: object } = { facts: BEFORE };
  const io = memoryIo(
    { "/etc/dockwall/a.dw": A, "/etc/dockwall/b.dw": B, "/etc/dockwall/coexist.dw": COEXIST },
    {
      system: () => m.io,
      dockerFacts: async () => {
        if (!daemon.facts) throw new Error("cannot read /version from dockerd at unix:///var/run/docker.sock: no dockerd is listening there (is it running? is DOCKER_HOST right?)");
        return { raw: structuredClone(daemon.facts) as never, source: "unix:///var/run/docker.sock" };
      },
    },
  );
  const dockwall = async (...args: string[]) => {
    io.err.length = 0;
    const status = await run(args, io);
    return { status, stderr: io.err.join("") };
  };
  return { m, io, daemon, dockwall };
}

/** What the kernel holds when `policy` is applied with `raw` facts to a host that had only `initial`. */
async function appliedFresh(policy: string, raw: object, initial = FAIL2BAN): Promise<[string, string]> {
  const h = host(initial);
  h.daemon.facts = raw;
  h.io.files.set("/p.dw", policy);
  const r = await h.dockwall("apply", "/p.dw", "--docker");
  expect(r.status, r.stderr).toBe(0);
  return [h.m.kernel.save(4), h.m.kernel.save(6)];
}

const COEXIST = `docker { version 20.10; iptables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
allow wan to web:8080;
host { allow lan tcp 22; }
`;

describe("rollback to the previous policy, compiled with Docker's facts as they are now", () => {
  let h: ReturnType<typeof host>;
  beforeEach(async () => {
    h = host();
    expect((await h.dockwall("apply", "/etc/dockwall/a.dw", "--docker")).status).toBe(0);
  });

  it("dockwall rollback after db was removed and its address given to another container: A with the new facts, no DNAT to db's address", async () => {
    const b = await h.dockwall("apply", "/etc/dockwall/b.dw", "--docker");
    expect(b.status, b.stderr).toBe(0);
    // What a snapshot would bring back: db's DNAT, which now leads to cache.
    expect(h.m.files.get("/state/rollback.v4")).toContain("-j DNAT --to-destination 172.17.0.3:5432");
    h.daemon.facts = AFTER;
    const r = await h.dockwall("rollback");
    const v4 = h.m.kernel.save(4);
    expect(v4).not.toContain("172.17.0.3:5432");
    expect(v4).not.toContain("--dport 5432");
    // cache: Docker's DNAT of its own port, closed to the wan (A allows nothing of it); api, started since: open as A says.
    expect(v4).toContain("-A DOCKER -p tcp -m tcp --dport 6379 -j DNAT --to-destination 172.17.0.3:6379\n");
    expect(v4).not.toMatch(/DOCKER-USER .*172\.17\.0\.3/);
    expect(v4).toContain("-A DOCKER-USER -d 172.17.0.4/32 -i eth0 -o docker0 -p tcp -m tcp --dport 9000 -m conntrack --ctstate DNAT --ctorigdstport 9000 -j RETURN\n");
    // Exactly what applying A with the new facts loads (fail2ban's chain and jump kept, in place).
    expect([v4, h.m.kernel.save(6)]).toEqual(await appliedFresh(A, AFTER));
    expect(r.stderr).toBe("dockwall: the rules of /etc/dockwall/a.dw (applied 2025-01-01T00:00:00Z) are back in place, compiled again with Docker's facts as they are now (read from dockerd)\n");
    expect(r.status).toBe(0);
    // Rolled back twice: the same.
    expect((await h.dockwall("rollback")).status).toBe(0);
    expect(h.m.kernel.save(4)).toBe(v4);
  });

  it("--confirm not confirmed: apply's own deadline rolls back to A with the facts of then (a container started during the wait keeps its rules)", async () => {
    const start = h.m.io.now();
    h.m.onSleep = (now) => {
      if (now - start > 2000) h.daemon.facts = AFTER;
    };
    const r = await h.dockwall("apply", "/etc/dockwall/b.dw", "--docker", "--confirm", "5");
    expect(h.m.spawned).toEqual([["rollback", "--after", "5", "--token", expect.any(String)]]);
    expect(r.stderr).toContain("dockwall: not confirmed in time: the rules of /etc/dockwall/a.dw (applied 2025-01-01T00:00:00Z) are back in place, compiled again with Docker's facts as they are now (read from dockerd)\n");
    expect(r.status).toBe(3);
    expect([h.m.kernel.save(4), h.m.kernel.save(6)]).toEqual(await appliedFresh(A, AFTER));
    expect(h.m.files.has("/state/pending.json")).toBe(false);
  });

  it("--confirm: the detached 'rollback --after' rolls back the same way", async () => {
    const start = h.m.io.now();
    h.m.onSleep = (now) => {
      if (now - start > 1000) h.daemon.facts = AFTER;
    };
    // The detached process, here in process: it may take the pending apply before apply's own deadline does.
    let detached: Promise<unknown> | undefined;
    h.m.io.spawnDockwall = async (args) => void (detached = run(args, h.io));
    const r = await h.dockwall("apply", "/etc/dockwall/b.dw", "--docker", "--confirm", "3");
    await detached;
    expect(r.status, r.stderr).toBe(3);
    expect([h.m.kernel.save(4), h.m.kernel.save(6)]).toEqual(await appliedFresh(A, AFTER));
  });

  it("--confirm: 'dockwall rollback' from another shell during the wait ends it at once; apply says so and exits 3", async () => {
    const start = h.m.io.now();
    let other: Promise<{ status: number; stderr: string }> | undefined;
    h.m.onSleep = (now) => {
      if (now - start > 1000 && !other) other = h.dockwall("rollback");
    };
    const r = await h.dockwall("apply", "/etc/dockwall/b.dw", "--docker", "--confirm", "60");
    expect((await other!).status).toBe(0);
    expect(r.stderr).toContain("dockwall: rolled back ('dockwall rollback'): the rules of /etc/dockwall/a.dw (applied 2025-01-01T00:00:00Z) are back in place");
    expect(r.status).toBe(3);
    // Well before the deadline (60 s): the wait ended with the rollback.
    expect(h.m.io.now() - start).toBeLessThan(10_000);
    expect(h.m.files.has("/state/pending.json")).toBe(false);
  });

  it("the daemon gone at the rollback: fail closed — the rules in place stay, exit 2; 'dockwall rollback' works once it is back", async () => {
    expect((await h.dockwall("apply", "/etc/dockwall/b.dw", "--docker")).status).toBe(0);
    const inPlace = [h.m.kernel.save(4), h.m.kernel.save(6)];
    const loads = h.m.kernel.loads.length;
    h.daemon.facts = undefined;
    const r = await h.dockwall("rollback");
    expect(r.stderr).toBe(
      "dockwall: not rolled back: cannot roll back to /etc/dockwall/a.dw (applied 2025-01-01T00:00:00Z): cannot read Docker's facts now (cannot read /version from dockerd at unix:///var/run/docker.sock: no dockerd is listening there (is it running? is DOCKER_HOST right?)); the rules in place stay (nothing was changed)\n",
    );
    expect(r.status).toBe(2);
    expect([h.m.kernel.save(4), h.m.kernel.save(6)]).toEqual(inPlace);
    expect(h.m.kernel.loads.length).toBe(loads);
    h.daemon.facts = AFTER;
    expect((await h.dockwall("rollback")).status).toBe(0);
    expect([h.m.kernel.save(4), h.m.kernel.save(6)]).toEqual(await appliedFresh(A, AFTER));
  });

  it("--confirm whose rollback cannot read the facts: B's rules stay, exit 2, and the apply still waits (the next apply says so; 'dockwall rollback' tries again)", async () => {
    const start = h.m.io.now();
    h.m.onSleep = (now) => {
      if (now - start > 1000) h.daemon.facts = undefined;
    };
    const r = await h.dockwall("apply", "/etc/dockwall/b.dw", "--docker", "--confirm", "3");
    expect(r.stderr).toMatch(/dockwall: not confirmed in time, and rolling back FAILED: cannot roll back to \/etc\/dockwall\/a\.dw \(applied 2025-01-01T00:00:00Z\): cannot read Docker's facts now \(.*\); the rules in place stay \(nothing was changed\)\n$/);
    expect(r.status).toBe(2);
    h.m.onSleep = undefined;
    const b = await appliedFresh(B, BEFORE);
    expect([h.m.kernel.save(4), h.m.kernel.save(6)]).toEqual(b);
    h.daemon.facts = AFTER;
    const next = await h.dockwall("apply", "/etc/dockwall/a.dw", "--docker");
    expect(next.stderr).toMatch(/\ndockwall: not applied: the apply of \S+ \(\/etc\/dockwall\/b\.dw\) was not confirmed, and rolling it back failed: cannot roll back to \/etc\/dockwall\/a\.dw .*; the rules in place stay \(nothing was changed\)\. Its rules are in place: 'dockwall rollback' tries again, 'dockwall confirm' keeps them\n$/);
    expect(next.status).toBe(2);
    expect((await h.dockwall("rollback")).status).toBe(0);
    expect([h.m.kernel.save(4), h.m.kernel.save(6)]).toEqual(await appliedFresh(A, AFTER));
    expect(h.m.files.has("/state/pending.json")).toBe(false);
  });

  it("the rollback timer of --confirm --no-wait tries again while its rollback fails (dockerd restarting), and rolls back once the facts can be read: the apply does not wait for good", async () => {
    const r = await h.dockwall("apply", "/etc/dockwall/b.dw", "--docker", "--confirm", "3", "--no-wait");
    expect(r.status).toBe(0);
    // The detached timer apply started: run here as the machine would.
    const timer = h.m.spawned.at(-1)!;
    expect(timer.slice(0, 2)).toEqual(["rollback", "--after"]);
    h.daemon.facts = undefined;
    const start = h.m.io.now();
    h.m.onSleep = (now) => {
      if (now - start > 60_000) h.daemon.facts = AFTER;
    };
    expect((await h.dockwall(...timer)).status).toBe(0);
    h.m.onSleep = undefined;
    expect([h.m.kernel.save(4), h.m.kernel.save(6)]).toEqual(await appliedFresh(A, AFTER));
    expect(h.m.files.has("/state/pending.json")).toBe(false);
  });

  it("--facts FILE: the file is read again at the rollback; gone, nothing is changed", async () => {
    h.io.files.set("/etc/dockwall/facts.json", JSON.stringify(BEFORE));
    // cwd-relative paths are kept as absolute ones: give it absolute here.
    expect((await h.dockwall("apply", "/etc/dockwall/a.dw", "--facts", "/etc/dockwall/facts.json")).status).toBe(0);
    expect((await h.dockwall("apply", "/etc/dockwall/b.dw", "--facts", "/etc/dockwall/facts.json")).status).toBe(0);
    const inPlace = h.m.kernel.save(4);
    h.io.files.delete("/etc/dockwall/facts.json");
    const gone = await h.dockwall("rollback");
    expect(gone.stderr).toBe("dockwall: not rolled back: cannot roll back to /etc/dockwall/a.dw (applied 2025-01-01T00:00:00Z): cannot read Docker's facts now (cannot read /etc/dockwall/facts.json: no such file); the rules in place stay (nothing was changed)\n");
    expect(gone.status).toBe(2);
    expect(h.m.kernel.save(4)).toBe(inPlace);
    h.io.files.set("/etc/dockwall/facts.json", JSON.stringify(AFTER));
    const r = await h.dockwall("rollback");
    expect(r.stderr).toBe("dockwall: the rules of /etc/dockwall/a.dw (applied 2025-01-01T00:00:00Z) are back in place, compiled again with Docker's facts as they are now (/etc/dockwall/facts.json)\n");
    expect([h.m.kernel.save(4), h.m.kernel.save(6)]).toEqual(await appliedFresh(A, AFTER));
  });
});

describe("rollback when the rules before the last apply were not dockwall's (no previous policy)", () => {
  it("iptables off: the host's rules come back, Docker's chains are not taken from the snapshot (published ports stay closed)", async () => {
    // Left by an earlier tool (an older dockwall, a ferm.conf) for the containers of then: db's DNAT among them.
    const old = (await appliedFresh(A, BEFORE))[0];
    const h = host(old);
    const before = h.m.kernel.save(4);
    expect(before).toContain("--to-destination 172.17.0.3:5432");
    expect((await h.dockwall("apply", "/etc/dockwall/b.dw", "--docker")).status).toBe(0);
    h.daemon.facts = AFTER;
    const r = await h.dockwall("rollback");
    expect(r.stderr).toBe(
      "dockwall: the rules from before the last apply are back in place; Docker's chains were not put back from them (ip filter DOCKER, ip filter DOCKER-ISOLATION-STAGE-1, ip filter DOCKER-ISOLATION-STAGE-2, ip filter DOCKER-USER, ip nat DOCKER): no policy of dockwall's was in place before, and they may lead a removed container's port to another container, so published ports stay closed until a policy is applied\n",
    );
    expect(r.status).toBe(0);
    // The snapshot without Docker's chains and the rules that jump to them; the rest exactly as it was.
    const expected = new MemoryKernel();
    expected.restore(4, before.split("\n").filter((l) => !/^:DOCKER|^-A DOCKER| -j DOCKER/.test(l)).join("\n"), { noflush: false, test: false });
    expect(h.m.kernel.save(4)).toBe(expected.save(4));
    expect(h.m.kernel.save(4)).toContain("-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n");
    expect(h.m.kernel.save(4)).not.toContain("DNAT");
    // IPv6: the tables B created are put back empty.
    expect(h.m.kernel.save(6)).not.toMatch(/^-A /m);
    expect(h.m.files.has("/state/policy.json")).toBe(false);
  });

  it("iptables off on a host without Docker's chains: the snapshot exactly (fail2ban's chain and jump, INPUT's rules)", async () => {
    const h = host();
    const before = h.m.kernel.save(4);
    expect((await h.dockwall("apply", "/etc/dockwall/b.dw", "--docker")).status).toBe(0);
    const r = await h.dockwall("rollback");
    expect(r.stderr).toBe("dockwall: the rules from before the last apply are back in place\n");
    const empty = (t: string) => t.replace(/^\*(nat|raw|mangle)\n(:\S+ ACCEPT \[0:0\]\n)+COMMIT\n/gm, "");
    expect(empty(h.m.kernel.save(4))).toBe(before);
  });

  it("iptables on: Docker's chains and dockerd's rules stay as dockerd keeps them now; only what the apply wrote goes back", async () => {
    // dockerd 20.10's rules for web (-p 8080:80), with fail2ban's chain and jump.
    const docker = readFileSync(new URL("../facts/corpus/publish-tcp/iptables.v4", import.meta.url), "utf8");
    const h = host(docker);
    h.m.kernel.restore(4, "*filter\n:f2b-sshd - [0:0]\n-A f2b-sshd -j RETURN\n-I INPUT 1 -p tcp -m tcp --dport 22 -j f2b-sshd\nCOMMIT\n", { noflush: true, test: false });
    const expected = new MemoryKernel();
    expected.restore(4, h.m.kernel.save(4), { noflush: false, test: false });
    const a = await h.dockwall("apply", "/etc/dockwall/coexist.dw", "--docker");
    expect(a.status, a.stderr).toBe(0);
    expect(h.m.kernel.save(4)).toContain(":INPUT DROP");
    // Meanwhile dockerd removes web's rules and writes api's (what it does on docker rm / docker run).
    const dockerd = `*nat
-D DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.17.0.4:9000
COMMIT
*filter
-D DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER -d 172.17.0.4/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 9000 -j ACCEPT
COMMIT
`;
    h.m.kernel.restore(4, dockerd, { noflush: true, test: false });
    expected.restore(4, dockerd, { noflush: true, test: false });
    h.daemon.facts = AFTER;
    const r = await h.dockwall("rollback");
    expect(r.stderr).toBe("dockwall: the rules from before the last apply are back in place\n");
    expect(r.status).toBe(0);
    expect(h.m.kernel.save(4)).toBe(expected.save(4));
  });

  it("iptables on, FORWARD's policy ACCEPT before (forwarding was on before dockerd started): the apply sets DROP in both families, the rollback puts ACCEPT back, rules and all as they were (a review)", async () => {
    const docker = readFileSync(new URL("../facts/corpus/publish-tcp/iptables.v4", import.meta.url), "utf8").replace(":FORWARD DROP [0:0]", ":FORWARD ACCEPT [0:0]");
    expect(docker).toContain(":FORWARD ACCEPT [0:0]");
    const h = host(docker);
    const expected = { 4: h.m.kernel.save(4), 6: h.m.kernel.save(6) };
    const a = await h.dockwall("apply", "/etc/dockwall/coexist.dw", "--docker");
    expect(a.status, a.stderr).toBe(0);
    // dockerd 20.10 writes no IPv6 rules: there dockwall's DOCKER-USER stands for them, with the policy DROP too.
    expect([h.m.kernel.save(4), h.m.kernel.save(6)].map((t) => /^:FORWARD (\S+)/m.exec(t)?.[1])).toEqual(["DROP", "DROP"]);
    const r = await h.dockwall("rollback");
    expect(r.stderr).toBe("dockwall: the rules from before the last apply are back in place\n");
    expect(r.status).toBe(0);
    expect(h.m.kernel.save(4)).toBe(expected[4]);
    expect(h.m.kernel.save(6)).toMatch(/^:FORWARD ACCEPT /m);
  });

  it("nothing applied yet: nothing to roll back, exit 2", async () => {
    const h = host();
    const r = await h.dockwall("rollback");
    expect(r.stderr).toBe("dockwall: nothing to roll back: no apply saved rules in /state\n");
    expect(r.status).toBe(2);
    expect(h.m.kernel.loads).toEqual(["iptables-restore"]); // the host's own rules, before the test
  });

  it("rollback.v4 kept by an older dockwall (no rollback.json): refused, nothing changed", async () => {
    const h = host();
    h.m.files.set("/state/rollback.v4", (await appliedFresh(A, BEFORE))[0]);
    const before = h.m.kernel.save(4);
    const r = await h.dockwall("rollback");
    expect(r.stderr).toBe(
      "dockwall: not rolled back: the rules in /state (rollback.v4, rollback.v6) were saved without the policy they came from (by an older dockwall), and loading them would bring back Docker's chains as they were then; the rules in place stay (nothing was changed). Apply a policy instead, or load them by hand with iptables-restore and ip6tables-restore\n",
    );
    expect(r.status).toBe(2);
    expect(h.m.kernel.save(4)).toBe(before);
    expect(h.m.kernel.loads).toEqual(["iptables-restore"]); // the host's own rules, before the test
  });
});
