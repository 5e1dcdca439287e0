// A host block removed while INPUT's policy is the DROP it set (a reviewer, with real packets):
// without a host block INPUT is the host's, its policy kept and dockwall's marked rules taken
// out, which left `-P INPUT DROP` with no rule at all, IPv4 and IPv6 (no lan → host:22, no
// loopback, no replies to the host's own connections), and apply exited 0. apply (and watch's
// reconcile, and ferm-keep) refuse that load and change nothing; diff says so after its rules.
// With a machine in memory (test/support/memory-kernel.ts) and the command line run in process.
import { describe, expect, it } from "vitest";
import { HOST_BLOCK_HEAD, HOST_BLOCK_OLD } from "../support/policies.js";
import { run } from "../../src/cli.js";
import { runFermKeep, type SystemIo } from "../../src/apply/command.js";
import { strandedInput, strandedWithoutHostBlock } from "../../src/apply/merge.js";
import { parseSave } from "../../src/live/save.js";
import { Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import { memoryIo } from "../support/io.js";
import { machine, MemoryKernel } from "../support/memory-kernel.js";

const HEAD = HOST_BLOCK_HEAD;
const OLD = HOST_BLOCK_OLD;
const NEW = HEAD;
const OPEN = `${HEAD}host { policy accept; allow lan tcp 22; }\n`;
const COEXIST_OLD = OLD.replace("iptables off", "iptables on");
const COEXIST_NEW = NEW.replace("iptables off", "iptables on");

const REFUSED = (families: string, sets: string) =>
  `/etc/dockwall/new.dw has no host block, but INPUT (${families}) holds the rules of the host block dockwall loaded before, with INPUT's policy DROP: ` +
  "loading would take those rules away and leave the policy, and the host would accept nothing (not even its own loopback or the replies to its connections). " +
  "Keep a host block (`host { policy accept; }` hands the host's traffic back open, with dockwall's rules), or set INPUT as the host should have it first " +
  `(e.g. ${sets}, or your own firewall's rules), `;
const BOTH = REFUSED("IPv4 and IPv6", "`iptables -P INPUT ACCEPT` and `ip6tables -P INPUT ACCEPT`");

function host() {
  const m = machine();
  const io = memoryIo(
    { "/etc/dockwall/old.dw": OLD, "/etc/dockwall/new.dw": NEW, "/etc/dockwall/open.dw": OPEN, "/etc/dockwall/coexist-old.dw": COEXIST_OLD, "/etc/dockwall/coexist-new.dw": COEXIST_NEW },
    { system: () => m.io, runProgram: (cmd, args) => m.io.run(cmd, args) },
  );
  const dockwall = async (...args: string[]) => {
    io.err.length = 0;
    io.out.length = 0;
    const status = await run(args, io);
    return { status, stderr: io.err.join(""), stdout: io.out.join("") };
  };
  const both = () => [m.kernel.save(4), m.kernel.save(6)];
  return { m, io, dockwall, both };
}

describe("apply of a policy without its host block, over the DROP policy the block set", () => {
  it("refuses (exit 2), naming both families, and changes nothing", async () => {
    const h = host();
    expect((await h.dockwall("apply", "/etc/dockwall/old.dw")).status).toBe(0);
    const before = h.both();
    expect(before[0]).toMatch(/^:INPUT DROP /m);
    expect(before[1]).toMatch(/^-A INPUT -i eth1 -p tcp -m tcp --dport 22 -m comment --comment dockwall -j ACCEPT$/m);
    const loads = h.m.kernel.loads.length;
    const r = await h.dockwall("apply", "/etc/dockwall/new.dw");
    expect(r.stderr).toContain(`dockwall: not applied: ${BOTH}then apply again (--force loads it as it is: INPUT keeps its policy and only the host's own rules); nothing was changed\n`);
    expect(r.status).toBe(2);
    expect(h.both()).toEqual(before);
    expect(h.m.kernel.loads.length).toBe(loads);
    // --check says it would not apply, the same way.
    const c = await h.dockwall("apply", "/etc/dockwall/new.dw", "--check");
    expect(c.stderr).toContain(`dockwall: would not apply: ${BOTH}`);
    expect(c.status).toBe(2);
    // --json: refused as a lockout (the host would accept nothing).
    const j = await h.dockwall("apply", "/etc/dockwall/new.dw", "--json");
    expect(j.status).toBe(2);
    expect(JSON.parse(j.stdout).refused).toEqual({ reason: "lockout", message: expect.stringContaining(BOTH) });
    expect(h.both()).toEqual(before);
  });

  it("in one family only, when only that family's INPUT would drop everything", async () => {
    const h = host();
    expect((await h.dockwall("apply", "/etc/dockwall/old.dw")).status).toBe(0);
    h.m.kernel.restore(6, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", { noflush: true, test: false });
    const before = h.both();
    const r = await h.dockwall("apply", "/etc/dockwall/new.dw");
    expect(r.stderr).toContain(`dockwall: not applied: ${REFUSED("IPv4", "`iptables -P INPUT ACCEPT`")}then apply again (--force loads it as it is: INPUT keeps its policy and only the host's own rules); nothing was changed\n`);
    expect(r.status).toBe(2);
    expect(h.both()).toEqual(before);
  });

  it("once INPUT's policy is ACCEPT (set by hand, or by `host { policy accept; }`), it applies as before: the marked rules go, the policy stays", async () => {
    const h = host();
    expect((await h.dockwall("apply", "/etc/dockwall/old.dw")).status).toBe(0);
    expect((await h.dockwall("apply", "/etc/dockwall/open.dw")).status).toBe(0);
    expect(h.m.kernel.save(4)).toMatch(/^:INPUT ACCEPT /m);
    const r = await h.dockwall("apply", "/etc/dockwall/new.dw");
    expect(r.stderr).toMatch(/applied \/etc\/dockwall\/new\.dw: IPv4 and IPv6/);
    expect(r.status).toBe(0);
    for (const f of [4, 6] as const) {
      expect(h.m.kernel.save(f)).toMatch(/^:INPUT ACCEPT /m);
      expect(h.m.kernel.save(f)).not.toMatch(/^-A INPUT .*--comment dockwall/m);
    }
    // By hand: the same.
    const g = host();
    expect((await g.dockwall("apply", "/etc/dockwall/old.dw")).status).toBe(0);
    for (const f of [4, 6] as const) g.m.kernel.restore(f, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", { noflush: true, test: false });
    expect((await g.dockwall("apply", "/etc/dockwall/new.dw")).status).toBe(0);
  });

  // A review: INPUT set up with the host's own rules (unmarked), its policy DROP kept, as the refusal suggests: those rules stay,
  // so the host is not cut off, and the load is no lockout.
  it("INPUT holding the host's own accepts too (its firewall, DROP kept): applies, the marked rules go and the host's stay", async () => {
    const h = host();
    expect((await h.dockwall("apply", "/etc/dockwall/old.dw")).status).toBe(0);
    for (const f of [4, 6] as const) h.m.kernel.restore(f, "*filter\n-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n", { noflush: true, test: false });
    const r = await h.dockwall("apply", "/etc/dockwall/new.dw");
    expect(r.status, r.stderr).toBe(0);
    const after = h.m.kernel.save(4);
    expect(after).toMatch(/^:INPUT DROP /m);
    expect(after.split("\n").filter((l) => l.startsWith("-A INPUT"))).toEqual(["-A INPUT -i lo -j ACCEPT", "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"]);
  });

  it("--force applies anyway (INPUT then keeps its policy DROP and only the host's own rules), saying so", async () => {
    const h = host();
    expect((await h.dockwall("apply", "/etc/dockwall/old.dw")).status).toBe(0);
    const r = await h.dockwall("apply", "/etc/dockwall/new.dw", "--force");
    expect(r.stderr).toContain(`dockwall: warning: ${BOTH}then apply again; loading it anyway (--force)\n`);
    expect(r.status).toBe(0);
    expect(h.m.kernel.save(4)).toMatch(/^:INPUT DROP /m);
    expect(h.m.kernel.save(4)).not.toMatch(/^-A INPUT /m);
  });

  it("iptables on (dockerd keeps its chains): refused the same way", async () => {
    const h = host();
    expect((await h.dockwall("apply", "/etc/dockwall/coexist-old.dw")).status).toBe(0);
    const before = h.both();
    expect(before[0]).toMatch(/^:INPUT DROP /m);
    const r = await h.dockwall("apply", "/etc/dockwall/coexist-new.dw");
    expect(r.stderr).toContain(`dockwall: not applied: ${BOTH.replace("/etc/dockwall/new.dw", "/etc/dockwall/coexist-new.dw")}then apply again (--force loads it as it is: INPUT keeps its policy and only the host's own rules); nothing was changed\n`);
    expect(r.status).toBe(2);
    expect(h.both()).toEqual(before);
  });
});

describe("diff of a policy without its host block, over the DROP policy the block set", () => {
  it("shows the rules that would go, then says that apply refuses it (exit 1, as for any difference)", async () => {
    const h = host();
    expect((await h.dockwall("apply", "/etc/dockwall/old.dw")).status).toBe(0);
    const d = await h.dockwall("diff", "/etc/dockwall/new.dw", "--no-color");
    expect(d.stdout).toMatch(/^- -A INPUT -i lo -m comment --comment dockwall -j ACCEPT$/m);
    expect(d.stdout).toContain(`\nwarning: ${BOTH}then apply (until then 'dockwall apply' refuses it)\ndockwall diff: `);
    expect(d.status).toBe(1);
    const j = await h.dockwall("diff", "/etc/dockwall/new.dw", "--json");
    expect(JSON.parse(j.stdout).warnings).toContain(`${BOTH}then apply (until then 'dockwall apply' refuses it)`);
    // INPUT's policy ACCEPT: no such warning.
    for (const f of [4, 6] as const) h.m.kernel.restore(f, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", { noflush: true, test: false });
    expect((await h.dockwall("diff", "/etc/dockwall/new.dw", "--no-color")).stdout).not.toContain("has no host block");
  });
});

describe("the judgement", () => {
  const input = (policy: string, ...rules: string[]) => parseSave(`*filter\n:INPUT ${policy} [0:0]\n${rules.map((r) => `${r}\n`).join("")}COMMIT\n`);
  const LO = "-A INPUT -i lo -m comment --comment dockwall -j ACCEPT";
  it("a host block's marked rules, and a policy DROP or a last rule that drops everything, left behind", () => {
    expect(strandedWithoutHostBlock(input("DROP", "-A INPUT -j DOCKWALL-PROXY", LO))).toEqual({ policy: "DROP" });
    expect(strandedWithoutHostBlock(input("ACCEPT", LO, "-A INPUT -j REJECT --reject-with icmp-port-unreachable"))).toEqual({ rule: "-A INPUT -j REJECT --reject-with icmp-port-unreachable" });
    // No host block's rules (only dockwall's jump, or the host's own rules): INPUT is the host's as it was.
    expect(strandedWithoutHostBlock(input("DROP", "-A INPUT -j DOCKWALL-PROXY", "-A INPUT -i lo -j ACCEPT"))).toBeUndefined();
    expect(strandedWithoutHostBlock(input("ACCEPT", LO))).toBeUndefined();
    expect(strandedWithoutHostBlock(input("ACCEPT", LO, "-A INPUT -p tcp -j DROP"))).toBeUndefined();
    // The new rules keep a host block (its marked rules in INPUT after the load): nothing to say.
    const c = input("DROP", LO).get("filter")!.chains.get("INPUT")!;
    expect(strandedInput(c, c)).toBeUndefined();
  });
});

describe("ferm-keep without a host block (the ferm.conf keeps INPUT's policy)", () => {
  const system = (v4: string): SystemIo => ({ run: (cmd: string) => (cmd.startsWith("ip6") ? "" : v4) }) as unknown as SystemIo;
  const keep = (v4: string, mode: true | "policy" | "rules") => {
    let stdout = "";
    let stderr = "";
    const code = runFermKeep(system(v4), { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) }, "ip", ["filter:INPUT,FORWARD,OUTPUT"], { hostsInput: mode });
    return { code, stdout, stderr };
  };
  const marked = "*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -m comment --comment dockwall -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment dockwall -j ACCEPT\nCOMMIT\n";
  it("stops ferm (exit 2, the rules in place stay) while INPUT holds a host block's rules with its policy DROP", () => {
    for (const mode of [true, "policy", "rules"] as const) {
      const r = keep(marked, mode);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(
        "dockwall: ferm must not load: the policy has no host block, but INPUT (IPv4) holds the rules of the host block dockwall loaded before, with INPUT's policy DROP: loading would take those rules away and leave the policy, and the host would accept nothing (not even its own loopback or the replies to its connections). Keep a host block (`host { policy accept; }` hands the host's traffic back open, with dockwall's rules), or set INPUT as the host should have it first (e.g. `iptables -P INPUT ACCEPT`, or your own firewall's rules), then run ferm again\n",
      );
    }
  });
  it("keeps INPUT as before where its policy is ACCEPT", () => {
    const r = keep(marked.replace(":INPUT DROP", ":INPUT ACCEPT"), "policy");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("policy ACCEPT;");
  });
});

describe("watch without a host block, over the DROP policy the block set", () => {
  function watcher(kernel: MemoryKernel, policy: string) {
    let text = policy;
    const logs: string[] = [];
    const deps: WatchDeps = {
      policyName: "host.dw",
      readPolicy: () => text,
      facts: async () => ({ raw: { networks: [], containers: [], version: { Version: "28.0.0" } }, source: "fake" }),
      events: () => ({ done: new Promise<void>(() => {}), close: () => {} }),
      save: (f) => kernel.save(f),
      restore: (f, t, noflush) => kernel.restore(f, t, { noflush, test: false }),
      log: (l) => logs.push(l),
      sleep: async () => {},
      verbose: false,
      debounceMs: 0,
    };
    return { w: new Watcher(deps, policy), logs, setPolicy: (t: string) => (text = t) };
  }
  const WATCH_REFUSED = BOTH.replace("/etc/dockwall/new.dw", "host.dw");

  it("a reload (SIGHUP) without the host block is not used: the policy read before stays, and the rules in place", async () => {
    const kernel = new MemoryKernel();
    const { w, logs, setPolicy } = watcher(kernel, OLD);
    expect(await w.reconcile()).toEqual({ changed: true });
    const before = [kernel.save(4), kernel.save(6)];
    expect(before[0]).toMatch(/^:INPUT DROP /m);
    setPolicy(NEW);
    w.reload();
    expect(await w.reconcile()).toEqual({ changed: false });
    expect([kernel.save(4), kernel.save(6)]).toEqual(before);
    expect(logs).toContain(`${WATCH_REFUSED}then reload the watcher (until then it keeps the policy read before, INPUT's policy included)`);
    expect(logs.at(-1)).toBe("SIGHUP: host.dw not applied; the rules of the policy read before stay");
  });

  it("a watcher started with it keeps the rules in place, logs why once, and loads once INPUT is set", async () => {
    const kernel = new MemoryKernel();
    const first = watcher(kernel, OLD);
    expect(await first.w.reconcile()).toEqual({ changed: true });
    const before = [kernel.save(4), kernel.save(6)];
    const { w, logs } = watcher(kernel, NEW);
    expect(await w.reconcile()).toEqual({ changed: false, error: "input" });
    expect(await w.reconcile()).toEqual({ changed: false, error: "input" });
    expect([kernel.save(4), kernel.save(6)]).toEqual(before);
    expect(logs).toEqual([`${WATCH_REFUSED}then the watcher loads it (when the tables change, or at the next --recheck); the rules in place stay`]);
    for (const f of [4, 6] as const) kernel.restore(f, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", { noflush: true, test: false });
    w.kernelChanged("ip filter INPUT policy");
    expect(await w.reconcile()).toEqual({ changed: true });
    expect(kernel.save(4)).not.toMatch(/^-A INPUT .*--comment dockwall/m);
  });
});

describe("rollback to a policy without a host block, from the apply that added one", () => {
  /** filter INPUT's policy line and rules. */
  const input = (s: string) => (/^\*filter\n[\s\S]*?^COMMIT$/m.exec(s)?.[0] ?? "").split("\n").filter((l) => /^(:INPUT|-A INPUT )/.test(l));
  it("--confirm not confirmed: INPUT is back as the host had it before that apply (its policy, its own rules), not DROP with no rule", async () => {
    const cases = [
      ["ACCEPT", []],
      ["DROP", ["-A INPUT -i lo -j ACCEPT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"]],
      // fail2ban's jump (kept throughout, first) and the host's own rule (which the host block's INPUT left out).
      ["ACCEPT", ["-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd", "-A INPUT -s 10.9.9.9/32 -j ACCEPT"]],
    ] as const;
    for (const [policy, own] of cases) {
      const h = host();
      const f2b = own.some((r) => r.includes("f2b-sshd")) ? ":f2b-sshd - [0:0]\n-A f2b-sshd -j RETURN\n" : "";
      for (const f of [4, 6] as const) h.m.kernel.restore(f, `*filter\n:INPUT ${policy} [0:0]\n${f2b}${own.map((r) => `${r}\n`).join("")}COMMIT\n`, { noflush: false, test: false });
      expect((await h.dockwall("apply", "/etc/dockwall/new.dw")).status).toBe(0);
      const before = [input(h.m.kernel.save(4)), input(h.m.kernel.save(6))];
      expect(before[0]).toEqual([`:INPUT ${policy} [0:0]`, ...own]);
      const r = await h.dockwall("apply", "/etc/dockwall/old.dw", "--confirm", "5");
      expect(r.stderr).toMatch(/not confirmed in time: the rules of \/etc\/dockwall\/new\.dw .* are back in place/);
      expect(r.status).toBe(3);
      expect([input(h.m.kernel.save(4)), input(h.m.kernel.save(6))]).toEqual(before);
    }
  });

  it("dockwall rollback after the apply was kept: the same", async () => {
    const h = host();
    expect((await h.dockwall("apply", "/etc/dockwall/new.dw")).status).toBe(0);
    expect((await h.dockwall("apply", "/etc/dockwall/old.dw")).status).toBe(0);
    expect(h.m.kernel.save(4)).toMatch(/^:INPUT DROP /m);
    const r = await h.dockwall("rollback");
    expect(r.status, r.stderr).toBe(0);
    for (const f of [4, 6] as const) expect(input(h.m.kernel.save(f))).toEqual([":INPUT ACCEPT [0:0]"]);
  });
});
