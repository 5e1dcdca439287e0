// While dockerd cannot be asked, the watcher takes the per-container rules out when a container's
// link changes on one of Docker's bridges (watch/links.ts, Watcher.linkChanged): the lines of
// `ip -o monitor link` and `ip -o link show` as iproute2 6.1 prints them (captured in a namespace),
// and the watcher's run loop with a fake daemon that goes away, and the in-memory kernel.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { bridgePorts, containerLinkChange, parseLinkLine } from "../../src/watch/links.js";
import { Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import { FactsReadYielded } from "../../src/facts/engine.js";
import { compile } from "../../src/compile.js";
import { MemoryKernel } from "../support/memory-kernel.js";

// iproute2 6.1 (`ip -o monitor link`): a bridge made, a veth pair, one end put on the bridge and up, then deleted.
const MONITOR = `2: br-abc: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether ee:7c:bd:c8:9a:af brd ff:ff:ff:ff:ff:ff
3: eth0x@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 8e:e0:f6:b8:e2:e8 brd ff:ff:ff:ff:ff:ff
4: veth0@eth0x: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop state DOWN group default \\    link/ether 46:58:a1:ac:0b:98 brd ff:ff:ff:ff:ff:ff
4: veth0@eth0x: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop master br-abc state DOWN group default \\    link/ether 46:58:a1:ac:0b:98 brd ff:ff:ff:ff:ff:ff
2: br-abc: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default event FEATURE CHANGE \\    link/ether ee:7c:bd:c8:9a:af brd ff:ff:ff:ff:ff:ff
4: veth0@eth0x: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 master br-abc state LOWERLAYERDOWN \\    link/ether 46:58:a1:ac:0b:98
Deleted 4: veth0@NONE: <BROADCAST,MULTICAST> mtu 1500 master br-abc state DOWN \\    link/ether 46:58:a1:ac:0b:98
Deleted 4: veth0@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 46:58:a1:ac:0b:98 brd ff:ff:ff:ff:ff:ff
Deleted 2: br-abc: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN group default \\    link/ether 00:00:00:00:00:00 brd ff:ff:ff:ff:ff:ff`.split("\n");

describe("the link lines", () => {
  test("parsed: index, name without its peer, master, deleted; anything else is not a link line", () => {
    expect(MONITOR.map(parseLinkLine)).toEqual([
      { index: 2, name: "br-abc", deleted: false },
      { index: 3, name: "eth0x", deleted: false },
      { index: 4, name: "veth0", deleted: false },
      { index: 4, name: "veth0", master: "br-abc", deleted: false },
      { index: 2, name: "br-abc", deleted: false },
      { index: 4, name: "veth0", master: "br-abc", deleted: false },
      { index: 4, name: "veth0", master: "br-abc", deleted: true },
      { index: 4, name: "veth0", deleted: true },
      { index: 2, name: "br-abc", deleted: true },
    ]);
    expect(parseLinkLine("    link/ether 46:58:a1:ac:0b:98")).toBeUndefined();
    expect(parseLinkLine("")).toBeUndefined();
  });

  test("a container's link that changed: a port gone, a new port, the bridge gone; not a known port's flags, nor another bridge's port", () => {
    const bridges = new Set(["br-abc", "docker0"]);
    const known = bridgePorts("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n7: vethaa@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master docker0 state UP\n9: vethbb@if8: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master br-other state UP\n", bridges);
    expect([...known]).toEqual([7]);
    const change = (line: string) => containerLinkChange(parseLinkLine(line)!, bridges, known);
    expect(MONITOR.map(change)).toEqual([undefined, undefined, undefined, "veth0 joined br-abc", undefined, "veth0 joined br-abc", "veth0 left br-abc", undefined, "br-abc deleted"]);
    expect(change("7: vethaa@if6: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue master docker0 state DOWN")).toBeUndefined();
    expect(change("Deleted 7: vethaa@if6: <BROADCAST,MULTICAST> mtu 1500 master docker0 state DOWN")).toBe("vethaa left docker0");
    expect(change("11: vethcc@if10: <BROADCAST,MULTICAST> mtu 1500 qdisc noop master br-other state DOWN")).toBeUndefined();
  });
});

// ---- the watcher

const state = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8")) as { networks: unknown[]; containers: unknown[] };
const POLICY = `docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nallow lan to web;\n`;
const PORT = "7: vethaa@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master docker0 state UP group default";

/** A daemon that can go away (its event stream ends, its API does not answer) and come back; links the test reports. */
function setup(up = true, policy = POLICY, more: Partial<WatchDeps> = {}) {
  const kernel = new MemoryKernel();
  const logs: string[] = [];
  let endStream = () => {};
  let emit: (e: Record<string, unknown>) => void = () => {};
  let line: (l: string) => void = () => {};
  const reads = { full: 0 };
  const deps: WatchDeps = {
    policyName: "host.dw",
    readPolicy: () => policy,
    facts: async (signal) => {
      reads.full++;
      if (!up)
        return new Promise((_, reject) => {
          // As engine.ts: no answer until it times out, or gives way once the signal aborts.
          const t = setTimeout(() => reject(new Error("no answer within 5 s")), 5000);
          signal?.addEventListener("abort", () => (clearTimeout(t), reject(new FactsReadYielded())));
        });
      return { raw: { networks: state.networks, containers: state.containers, version: { Version: "20.10.24" } } as never, source: "fake" };
    },
    // A quick read after an event: what the last read had.
    changedFacts: async () => ({ raw: { networks: state.networks, containers: state.containers, version: { Version: "20.10.24" } } as never, source: "fake" }),
    forget: () => {},
    events: (onEvent, onOpen) => {
      if (!up) return { done: Promise.reject(new Error("connect ECONNREFUSED")), close: () => {} };
      emit = onEvent;
      queueMicrotask(onOpen);
      return { done: new Promise<void>((r) => (endStream = r)), close: () => endStream() };
    },
    save: (f) => kernel.save(f),
    restore: (f, text, noflush) => kernel.restore(f, text, { noflush, test: false }),
    log: (l) => logs.push(l),
    sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 20))),
    verbose: false,
    debounceMs: 0,
    retryMs: 20,
    // (Full checks while away: a read that waits for an answer is under way when the link changes.)
    recheckMs: 50,
    links: {
      follow: (onLine) => {
        line = onLine;
        let close = () => {};
        return { done: new Promise<void>((r) => (close = r)), close: () => close() };
      },
      list: async () => `1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n${PORT}\n`,
    },
    ...more,
  };
  const w = new Watcher(deps, policy);
  return {
    w,
    kernel,
    logs,
    reads,
    link: (l: string) => line(l),
    event: () => emit({ Type: "container", Action: "start", Actor: { ID: "c".repeat(64), Attributes: { name: "web" } } }),
    away: () => ((up = false), endStream()),
    /** dockerd goes away, and the watcher has said its event stream ended. */
    gone: async () => {
      up = false;
      endStream();
      await until(() => logs.some((l) => /event stream ended/.test(l)));
    },
    back: () => void (up = true),
  };
}
const until = async (what: () => boolean, ms = 5000) => {
  for (const end = Date.now() + ms; !what(); ) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
};
const dnat = (k: MemoryKernel) => k.save(4).includes("--dport 8080 -j DNAT --to-destination 172.17.0.2:80");

describe("watch: a container's link that changes while dockerd cannot be asked", () => {
  test("nothing changes: the rules stay; a port's flags, another interface: still nothing; a port that leaves docker0: the per-container rules out, the network's stay; back: the rules follow Docker again", async () => {
    const s = setup();
    const running = s.w.run();
    await until(() => dnat(s.kernel));
    await s.gone();
    // A known port's flags, a link elsewhere: the rules stay.
    s.link(PORT.replace("LOWER_UP", "M-DOWN"));
    s.link("12: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN group default");
    await new Promise((r) => setTimeout(r, 100));
    expect(dnat(s.kernel)).toBe(true);
    // (A full read under way gives way: the rules go out at once, not after its 5 s.)
    s.link(`Deleted ${PORT}`);
    await until(() => !dnat(s.kernel), 1000);
    expect(s.logs.filter((l) => /link changed/.test(l))).toEqual([
      "dockerd cannot be asked and a container's link changed (vethaa left docker0): it may have given a gone container's address to another; the rules to the containers' addresses are taken out until it answers (the networks' own rules, and those by port, stay)",
    ]);
    expect(s.logs.at(-1)).toMatch(/^applied: IPv4: /);
    const v4 = s.kernel.save(4);
    expect(v4).not.toMatch(/172\.17\.0\.2|--ctorigdstport/);
    expect(v4).toMatch(/^-A POSTROUTING -s 172\.17\.0\.0\/16 ! -o docker0 -j MASQUERADE$/m);
    expect(v4).toMatch(/^-A DOCKER-USER -o docker0 -j DROP$/m);
    // More changes while away: said once.
    s.link("13: vethdd@if12: <BROADCAST,MULTICAST> mtu 1500 qdisc noop master docker0 state DOWN group default");
    await new Promise((r) => setTimeout(r, 100));
    expect(s.logs.filter((l) => /link changed/.test(l))).toHaveLength(1);
    // dockerd answers again: its facts, and web's rules, are back.
    s.back();
    await until(() => dnat(s.kernel));
    expect(s.logs.at(-1)).toMatch(/^applied: IPv4: /);
    s.w.stop();
    await running;
  });

  test("a new port on docker0 (one not there when dockerd went away) takes them out too; before dockerd is ever reached, nothing does", async () => {
    const s = setup();
    const running = s.w.run();
    await until(() => dnat(s.kernel));
    await s.gone();
    await new Promise((r) => setTimeout(r, 20));
    s.link("14: vethee@if13: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop master docker0 state DOWN group default");
    await until(() => !dnat(s.kernel), 1000);
    expect(s.logs.find((l) => /link changed/.test(l))).toMatch(/\(vethee joined docker0\)/);
    s.w.stop();
    await running;
    // A watcher that never reached dockerd has no facts to take anything out of: the rules in place stay.
    const t = setup(false);
    t.kernel.restore(4, s.kernel.save(4), { noflush: false, test: false });
    const before = t.kernel.save(4);
    const still = t.w.run();
    await until(() => t.logs.length > 0);
    t.link("Deleted 7: vethaa@if6: <BROADCAST,MULTICAST> mtu 1500 master docker0 state DOWN");
    await new Promise((r) => setTimeout(r, 100));
    expect(t.kernel.save(4)).toBe(before);
    expect(t.logs.filter((l) => /link changed/.test(l))).toEqual([]);
    t.w.stop();
    await still;
  });
});

describe("watch: what stays while the containers' addresses are out", () => {
  test("userland-proxy on: docker-proxy's ports stay dropped but where allowed (they hold by port, and dockerd starts docker-proxy anew for whoever runs; a review: the drops went, and a restarted container's port was open to all)", async () => {
    const s = setup(true, POLICY.replace("userland-proxy off", "userland-proxy on"));
    const running = s.w.run();
    await until(() => dnat(s.kernel));
    const proxy = s.kernel.save(4).split("\n").filter((l) => l.startsWith("-A DOCKWALL-PROXY"));
    expect(proxy).toContain("-A DOCKWALL-PROXY -p tcp -m tcp --dport 8080 -j DROP");
    await s.gone();
    s.link(`Deleted ${PORT}`);
    await until(() => !dnat(s.kernel), 1000);
    expect(s.kernel.save(4).split("\n").filter((l) => l.startsWith("-A DOCKWALL-PROXY"))).toEqual(proxy);
    expect(s.kernel.save(4)).not.toMatch(/172\.17\.0\.2/);
    s.w.stop();
    await running;
  });

  test("iptables on: only dockwall's chains are loaded (dockerd may be writing its own as it starts; a review: FORWARD rewritten under it lost its jumps, and isolation)", async () => {
    const s = setup(true, POLICY.replace("iptables off", "iptables on"));
    // What dockerd wrote, as the corpus has it.
    for (const f of [4] as const) s.kernel.restore(f, readFileSync(new URL("../facts/corpus/publish-tcp/iptables.v4", import.meta.url), "utf8"), { noflush: false, test: false });
    const running = s.w.run();
    const allowed = () => /^-A DOCKER-USER .*-d 172\.17\.0\.2\/32 .*-j RETURN$/m.test(s.kernel.save(4));
    await until(allowed);
    await s.gone();
    // dockerd, starting again, has written part of FORWARD so far (its jump to DOCKER-USER not yet: it puts it first last).
    const partial = "*filter\n:FORWARD DROP [0:0]\n-F FORWARD\n-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n-A FORWARD -o docker0 -j DOCKER\nCOMMIT\n";
    s.kernel.restore(4, partial, { noflush: true, test: false });
    const forward = s.kernel.save(4).split("\n").filter((l) => l.startsWith("-A FORWARD"));
    s.link(`Deleted ${PORT}`);
    await until(() => !allowed(), 1000);
    expect(s.kernel.save(4).split("\n").filter((l) => l.startsWith("-A FORWARD"))).toEqual(forward);
    expect(s.kernel.save(4)).toMatch(/^-A DOCKER-USER -o docker0 -j DROP$/m);
    s.w.stop();
    await running;
  });
});

describe("watch: without the containers' addresses, the compile (a second review)", () => {
  const v6state = JSON.parse(readFileSync(new URL("../facts/corpus/ipv6-ip6tables/state.json", import.meta.url), "utf8")) as { containers: any[] };
  const addressless = (policy: string, raw: unknown, format: "iptables" | "ip6tables") => compile(policy, { format, facts: { raw: raw as never, source: "state.json" }, factsErrors: "warn", addressless: true });

  test("a port published on an IPv6 host address: it compiles (the check that needs the container's IPv6 address does not run), with no DNAT", () => {
    const raw = structuredClone(v6state);
    raw.containers[0].NetworkSettings.Ports["80/tcp"].push({ HostIp: "2001:db8:77::1", HostPort: "8443" });
    const policy = `docker { version 20.10; iptables off; ip6tables on; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to web;\n`;
    for (const f of ["iptables", "ip6tables"] as const) {
      const r = addressless(policy, raw, f);
      expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => d.message)).toEqual([]);
      expect(r.output!).not.toMatch(/-j DNAT|172\.17\.0\.2|2001:db8:1::242/);
    }
  });

  test("userland-proxy off, no host block: dockerd's own sockets on the published ports are guarded in both families (no DNAT takes them first)", () => {
    const policy = `docker { version 20.10; iptables off; ip6tables on; userland-proxy off; }\nzone lan { interface eth1; }\nallow lan to web;\n`;
    for (const f of ["iptables", "ip6tables"] as const) {
      const proxy = addressless(policy, v6state, f).output!.split("\n").filter((l) => l.startsWith("-A DOCKWALL-PROXY") || l === "-A INPUT -j DOCKWALL-PROXY");
      expect(proxy, f).toEqual([
        "-A INPUT -j DOCKWALL-PROXY",
        "-A DOCKWALL-PROXY -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A DOCKWALL-PROXY -i lo -j RETURN",
        "-A DOCKWALL-PROXY -i docker0 -j RETURN",
        "-A DOCKWALL-PROXY -i eth1 -p tcp -m tcp --dport 8080 -j RETURN",
        "-A DOCKWALL-PROXY -p tcp -m tcp --dport 8080 -j DROP",
      ]);
    }
  });
});

test("a container's event just before dockerd goes away (its quick read, the read in full not yet made): the watcher still hears dockerd come back, and a stop (a second review: its loop spun, never giving way)", async () => {
  // (No periodic check: its reads in full would clear what the event's quick read left.)
  const s = setup(true, POLICY, { recheckMs: undefined });
  const running = s.w.run();
  await until(() => dnat(s.kernel));
  s.event();
  await until(() => s.w.stats.reconciles >= 2);
  await s.gone();
  s.link(`Deleted ${PORT}`);
  await until(() => !dnat(s.kernel), 1000);
  // Well past the 2 s after which a read in full is overdue: few reconciles meanwhile.
  const before = s.w.stats.reconciles;
  await new Promise((r) => setTimeout(r, 2500));
  expect(s.w.stats.reconciles - before).toBeLessThan(40);
  s.back();
  await until(() => s.logs.some((l) => /the daemon is back/.test(l)), 3000);
  await until(() => dnat(s.kernel), 3000);
  s.w.stop();
  await running;
}, 15_000);
