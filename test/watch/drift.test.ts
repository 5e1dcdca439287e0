// Drift healed without a Docker event (issue 26, item 1), without a kernel: what
// xtables-monitor's lines say, and the watcher that reconciles on them, says what changed and
// what it put back, and is not woken by other tools' own chains.
import { describe, expect, test } from "vitest";
import { MonitorParser } from "../../src/watch/monitor.js";
import { Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import { MemoryKernel } from "../support/memory-kernel.js";

describe("nft monitor's lines for watch -f nft (the file's own tables)", () => {
  test("changes to its tables are said when they commit; iptables' tables and Docker's own nftables tables (dockerd's, not in the file) wake nothing", () => {
    const p = new MonitorParser(["inet dockwall"]);
    const lines = [
      "delete rule inet dockwall forward handle 4",
      "delete chain inet dockwall forward",
      "delete table inet dockwall",
      "# new generation 12 by process 999 (nft)",
      "add rule ip filter INPUT tcp dport 22 counter packets 0 bytes 0 accept",
      'add element ip docker-bridges filter-forward-in-jumps { "br-1f0e" : jump filter-forward-in__br-1f0e }',
      "# new generation 13 by process 1000 (dockerd)",
      "add rule inet dockwall input-ip tcp dport 8080 accept",
      "# new generation 14 by process 1001 (nft)",
    ];
    expect(lines.map((l) => p.feed(l)).filter((x) => x !== undefined)).toEqual(["inet dockwall forward -1, inet dockwall (table deleted) (by nft, pid 999)", "inet dockwall input-ip +1 (by nft, pid 1001)"]);
  });

  test("lost netlink events (nft monitor goes on after them): said at once, by no one (not taken for the watcher's own load)", () => {
    const p = new MonitorParser(["inet dockwall"]);
    p.feed("# new generation 14 by process 1001 (nft)");
    expect(p.feed("# ERROR: We lost some netlink events!")).toBe("the kernel's change reports were cut (nft monitor lost netlink events)");
    expect(p.committedBy).toBeUndefined();
  });
});

describe("xtables-monitor's lines", () => {
  test("a transaction that touches dockwall's, Docker's or built-in chains is said when it commits, counted per chain", () => {
    const p = new MonitorParser();
    const lines = [
      " EVENT: -4 -t filter -D DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
      " EVENT: -4 -t filter -D DOCKER-USER -o docker0 -j DROP",
      " EVENT: -4 -t filter -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
      "NEWGEN: GENID=7 PID=3120 NAME=iptables",
    ];
    expect(lines.map((l) => p.feed(l))).toEqual([undefined, undefined, undefined, "ip filter DOCKER-USER -2, ip filter INPUT +1 (by iptables, pid 3120)"]);
  });

  test("other tools' own chains wake nothing (fail2ban banning all day); a policy set or a table made does", () => {
    const p = new MonitorParser();
    expect(p.feed(" EVENT: -4 -t filter -I f2b-sshd 1 -s 203.0.113.9/32 -j REJECT")).toBeUndefined();
    expect(p.feed("NEWGEN: GENID=8 PID=77 NAME=fail2ban-server")).toBeUndefined();
    p.feed(" EVENT: # nft: ip6 filter FORWARD use 1 type filter hook forward prio 0 policy accept packets 0 bytes 0 flags 1");
    expect(p.feed("NEWGEN: GENID=9 PID=78 NAME=ip6tables")).toBe("ip6 filter FORWARD changed (by ip6tables, pid 78)");
    p.feed(" EVENT: nft: NEW table: table nat ip flags 0 use 1 handle 3");
    expect(p.feed("NEWGEN: GENID=10 PID=79 NAME=iptables-restor")).toBe("ip nat (table made) (by iptables-restor, pid 79)");
  });
});

describe("nft monitor's lines (as nft 1.0.6 printed them here for iptables-nft's changes)", () => {
  const feed = (lines: string[]) => {
    const p = new MonitorParser();
    return lines.map((l) => p.feed(l)).filter((x) => x !== undefined);
  };
  test("rules added and deleted, a chain made and deleted, a base chain's policy: said per transaction, with the program and its pid", () => {
    expect(feed([
      "add table ip6 filter",
      "add chain ip6 filter INPUT { type filter hook input priority filter; policy accept; }",
      "add rule ip6 filter INPUT meta l4proto ipv6-icmp icmpv6 type nd-router-solicit counter packets 0 bytes 0 accept",
      "# new generation 2 by process 8260 (ip6tables)",
      "add table ip filter",
      "create chain ip filter DOCKER-USER",
      "# new generation 3 by process 8261 (iptables)",
      "add rule ip filter DOCKER-USER xt match physdev counter packets 0 bytes 0 return",
      "# new generation 4 by process 8262 (iptables)",
      "delete rule ip filter DOCKER-USER handle 2",
      "delete rule ip filter DOCKER-USER handle 3",
      "# new generation 6 by process 8264 (iptables)",
      "add chain ip filter FORWARD { type filter hook forward priority filter; policy accept; }",
      "add chain ip filter FORWARD { type filter hook forward priority filter; policy drop; }",
      "# new generation 7 by process 8265 (iptables)",
      "delete chain ip filter DOCKER-USER",
      "# new generation 10 by process 8269 (iptables)",
    ])).toEqual([
      "ip6 filter (table made), ip6 filter INPUT +1 (by ip6tables, pid 8260)",
      "ip filter (table made), ip filter DOCKER-USER changed (by iptables, pid 8261)",
      "ip filter DOCKER-USER +1 (by iptables, pid 8262)",
      "ip filter DOCKER-USER -2 (by iptables, pid 8264)",
      "ip filter FORWARD changed (by iptables, pid 8265)",
      "ip filter DOCKER-USER changed (by iptables, pid 8269)",
    ]);
  });
  test("other tools' own chains, and nftables' own tables (firewalld, Docker 29's), wake nothing", () => {
    expect(feed([
      "create chain ip filter f2b",
      "add rule ip filter f2b ip saddr 1.2.3.4 counter packets 0 bytes 0 drop",
      "# new generation 9 by process 8268 (iptables-restor)",
      "add rule inet firewalld filter_INPUT tcp dport 22 accept",
      "add rule ip docker-bridges filter-FORWARD counter accept",
      "# new generation 11 by process 900 (firewalld)",
    ])).toEqual([]);
  });
});

describe("the watcher puts drift back", () => {
  const POLICY = `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
`;
  /** A watcher over an in-memory kernel, with no Docker event ever; `extra` adds or replaces deps. */
  const deps = (kernel: MemoryKernel, logs: string[], extra: Partial<WatchDeps> = {}): WatchDeps => ({
    policyName: "host.dw",
    readPolicy: () => POLICY,
    facts: async () => ({ raw: { networks: [], containers: [], version: { Version: "20.10.24" } }, source: "fake" }),
    events: () => {
      let end!: () => void;
      return { done: new Promise<void>((r) => (end = r)), close: () => end() };
    },
    save: (f) => kernel.save(f),
    restore: (f, text, noflush) => kernel.restore(f, text, { noflush, test: false }),
    log: (l) => logs.push(l),
    sleep: () => new Promise((r) => setTimeout(r, 1)),
    verbose: false,
    debounceMs: 0,
    ...extra,
  });
  test("a flushed DOCKER-USER, reported by the kernel, is put back at once; the log says what changed and what was put back", async () => {
    const kernel = new MemoryKernel();
    const logs: string[] = [];
    let report: ((what: string) => void) | undefined;
    let endMonitor!: () => void;
    const d = deps(kernel, logs, {
      kernelEvents: (onChange) => {
        report = onChange;
        return { done: new Promise<void>((r) => (endMonitor = r)), close: () => endMonitor() };
      },
    });
    const w = new Watcher(d, POLICY);
    w.markDirty("start");
    const running = w.run();
    const until = async (test: () => boolean) => {
      for (let i = 0; i < 500 && !test(); i++) await new Promise((r) => setTimeout(r, 2));
      expect(test()).toBe(true);
    };
    await until(() => logs.some((l) => l.startsWith("applied: ")));
    const good = kernel.save(4);
    kernel.restore(4, "*filter\n-F DOCKER-USER\nCOMMIT\n", { noflush: true, test: false });
    expect(kernel.save(4)).not.toBe(good);
    report!("ip filter DOCKER-USER -2 (by iptables, pid 3120)");
    await until(() => kernel.save(4) === good);
    expect(logs.slice(-2)).toEqual(["the tables were changed (ip filter DOCKER-USER -2 (by iptables, pid 3120)): putting back what the policy says", "applied: IPv4: filter DOCKER-USER +2"]);
    w.stop();
    await running;
  });

  test("reports cut short (ENOBUFS on a big transaction): the monitor is started again and the tables read again; not installed: full checks only", async () => {
    for (const [why, starts] of [["cannot receive from nfnetlink socket: No buffer space available", 3], ["spawn stdbuf ENOENT", 1]] as const) {
      const kernel = new MemoryKernel();
      const logs: string[] = [];
      let started = 0;
      const d = deps(kernel, logs, {
        kernelEvents: () => {
          started++;
          if (started < 3 || why.includes("ENOENT")) return { done: Promise.reject(new Error(why)), close: () => {} };
          let end!: () => void;
          return { done: new Promise<void>((r) => (end = r)), close: () => end() };
        },
        recheckMs: 10_000,
      });
      const w = new Watcher(d, POLICY);
      const running = w.run();
      await new Promise((r) => setTimeout(r, 200));
      expect(started).toBe(starts);
      if (starts === 1) expect(logs).toContain("cannot follow the kernel's changes (spawn stdbuf ENOENT); a full check every 10 s still puts drift back");
      else expect(logs.filter((l) => l.startsWith("the kernel's change reports were cut"))).toEqual([`the kernel's change reports were cut (${why}): reading the tables again, and following them again`]);
      w.stop();
      await running;
    }
  });

  test("--verbose says where a reconcile's time went", async () => {
    const kernel = new MemoryKernel();
    const logs: string[] = [];
    const w = new Watcher(deps(kernel, logs, { events: () => ({ done: Promise.resolve(), close: () => {} }), sleep: async () => {}, verbose: true }), POLICY);
    await w.reconcile();
    // The same facts and policy, and nothing said of the kernel: nothing to look at.
    await w.reconcile();
    // The kernel said something changed: compared.
    w.kernelChanged("filter DOCKER-USER");
    await w.reconcile();
    expect(logs.filter((l) => /^reconciled/.test(l)).map((l) => l.replace(/\d+ ms/g, "N ms"))).toEqual([
      "reconciled in N ms: facts and the loaded rules read N ms, compiled and compared N ms, loaded N ms",
      "reconciled: nothing to change (Docker's facts as before, read in N ms)",
      "reconciled: nothing to change (N ms: facts and the loaded rules read N ms, compiled and compared N ms)",
    ]);
  });
});
