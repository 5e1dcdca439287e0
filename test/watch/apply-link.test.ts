// apply and watch know each other (issue 22, item 8), without a kernel: the watcher waits
// while an apply waits for confirmation; apply tells a watcher of the same policy file to read
// it again, and says what a watcher of another file will do; a policy read again on SIGHUP
// that would cut an SSH session open now is not used.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { runApply, runRollback } from "../../src/apply/command.js";
import { compile } from "../../src/compile.js";
import { sshPacket, sshSessions } from "../../src/apply/guard.js";
import { announceWatch, policyHash } from "../../src/apply/watching.js";
import type { Packet } from "../../src/analysis/evaluate.js";
import { Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import { machine, MemoryKernel } from "../support/memory-kernel.js";

const POLICY = `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
zone wan { interface eth0; }
container web { network bridge 172.17.0.2; publish 8080:80; }
allow lan to web:8080;
host { allow lan tcp 22; allow wan tcp 22; }
`;
const NO_WAN_SSH = POLICY.replace(" allow wan tcp 22;", "");

/** A session from the wan to the host's SSH port (what `ss` shows, as SSH_CONNECTION spells it). */
const WAN_SESSION = sshPacket("203.0.113.7 50000 198.51.100.1 22", [
  { iface: "eth0", cidr: "198.51.100.1/24" },
  { iface: "eth1", cidr: "192.168.1.1/24" },
]) as Packet;

function harness(kernel: MemoryKernel, opts: { save?: WatchDeps["save"]; applying?: () => string | undefined; pending?: () => string | undefined; sessions?: () => Packet[] | string; policy?: string; facts?: () => Awaited<ReturnType<WatchDeps["facts"]>>; applied?: WatchDeps["applied"] }) {
  let policy = opts.policy ?? POLICY;
  const logs: string[] = [];
  const deps: WatchDeps = {
    policyName: "host.dw",
    readPolicy: () => policy,
    facts: async () => opts.facts?.() ?? { raw: { networks: [], containers: [], version: { Version: "20.10.24" } }, source: "fake" },
    events: () => ({ done: new Promise<void>(() => {}), close: () => {} }),
    save: opts.save ?? ((f) => kernel.save(f)),
    restore: (f, text, noflush) => kernel.restore(f, text, { noflush, test: false }),
    log: (l) => logs.push(l),
    sleep: async () => {},
    verbose: false,
    debounceMs: 0,
    applying: opts.applying,
    pending: opts.pending,
    sessions: opts.sessions,
    applied: opts.applied,
    kept: (t) => kept.push(t),
  };
  const kept: string[] = [];
  const w = new Watcher(deps, policy);
  return { w, logs, kept, setPolicy: (t: string) => (policy = t) };
}

describe("the watcher and a pending apply", () => {
  test("while an apply waits for confirmation, nothing is loaded (said once); once it ends, the reconcile loads", async () => {
    const kernel = new MemoryKernel();
    let pending: string | undefined = "the apply of 2025-01-01T00:00:00Z (host.dw) waits for confirmation";
    const { w, logs } = harness(kernel, { pending: () => pending });
    expect(await w.reconcile()).toEqual({ changed: false, error: "pending" });
    expect(await w.reconcile()).toEqual({ changed: false, error: "pending" });
    expect(kernel.loads).toEqual([]);
    expect(logs).toEqual(["the apply of 2025-01-01T00:00:00Z (host.dw) waits for confirmation: not reconciling until it ends"]);
    pending = undefined;
    expect(await w.reconcile()).toEqual({ changed: true });
    expect(logs[1]).toBe("the apply that waited has ended: reconciling");
    expect(kernel.save(4)).toContain("-A INPUT -i eth0 -p tcp -m tcp --dport 22 -m comment --comment dockwall -j ACCEPT");
  });
});

describe("the watcher and an apply that is loading", () => {
  test("nothing is reconciled while an apply loads (it would put back what the apply loaded before the apply can say it waits for confirmation); the drift it made is looked at once it is done", async () => {
    const kernel = new MemoryKernel();
    let applying: string | undefined;
    const { w } = harness(kernel, { applying: () => applying });
    expect(await w.reconcile()).toEqual({ changed: true });
    // Nothing changes in Docker: a reconcile with the same facts has nothing to look at.
    expect(await w.reconcile()).toEqual({ changed: false });
    // An apply loads (here: takes the SSH accept away) and the kernel says so.
    const ssh = "-A INPUT -i eth0 -p tcp -m tcp --dport 22 -m comment --comment dockwall -j ACCEPT";
    kernel.restore(4, kernel.save(4).replace(`${ssh}\n`, ""), { noflush: false, test: false });
    applying = "an apply (pid 77) is loading its rules";
    w.kernelChanged("ip filter INPUT -1");
    const loads = kernel.loads.length;
    expect(await w.reconcile()).toEqual({ changed: false, error: "applying" });
    expect(kernel.loads.length).toBe(loads);
    // Done (here an apply of another file, without --confirm: the watcher's policy is put back, as apply said it would be).
    applying = undefined;
    expect(await w.reconcile()).toEqual({ changed: true });
    expect(kernel.save(4)).toContain(ssh);
  });
});

describe("an apply that begins loading while a reconcile reads and compiles", () => {
  test("that reconcile loads nothing: its deltas were worked out from the kernel before the apply's load", async () => {
    const kernel = new MemoryKernel();
    let applying: string | undefined;
    const { w } = harness(kernel, {
      applying: () => applying,
      facts: () => {
        // The apply starts while the facts are read (after the reconcile looked whether one was loading).
        applying = "an apply (pid 77) is loading its rules";
        return { raw: { networks: [], containers: [], version: { Version: "20.10.24" } }, source: "fake" };
      },
    });
    expect(await w.reconcile()).toEqual({ changed: false, error: "applying" });
    expect(kernel.loads).toEqual([]);
  });

  test("one that loads and writes that it waits for confirmation while the reconcile compiles: that reconcile loads nothing either (a second review: the apply's rules were put back)", async () => {
    const kernel = new MemoryKernel();
    let pending: string | undefined;
    const { w } = harness(kernel, {
      pending: () => pending,
      // The facts read before the apply (no pending.json yet); the apply loads and writes it while the kernel is read.
      save: (f) =>
        new Promise((r) =>
          setTimeout(() => {
            pending = "the apply of 2025-01-01T00:00:00Z (other.dw) waits for confirmation";
            r(kernel.save(f));
          }, 5),
        ),
    });
    expect(await w.reconcile()).toEqual({ changed: false, error: "applying" });
    expect(kernel.loads).toEqual([]);
  });
});

describe("the watcher keeps a waiting apply's rules in step with Docker (a review: a removed container's DNAT reached the next container given its address for the whole wait)", () => {
  const corpus = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8")) as { networks: unknown[]; containers: Record<string, any>[] };
  const HEAD = "docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\n";
  // The apply that waits allows the lan to web; the watcher's own policy (read before) allows nothing.
  const APPLIED = `${HEAD}allow lan to web:8080;\n`;
  const OWN = HEAD;
  test("its policy compiled with Docker's facts now: web's rules while it runs, none once it is gone and another container has its address; the watcher's own policy once the apply ends", async () => {
    const kernel = new MemoryKernel();
    let pending: string | undefined = "the apply of 2025-01-01T00:00:00Z (/etc/dockwall/host.dw) waits for confirmation";
    let applied: { text: string; format?: "nft" } | undefined = { text: APPLIED };
    const web = corpus.containers[0]!;
    // Another container, not allowed, given web's address once web is gone.
    const other = JSON.parse(JSON.stringify(web).replaceAll('"/web"', '"/other"').replaceAll('"8080"', '"9000"').replace(/"Id":"[0-9a-f]+"/, `"Id":"${"ab".repeat(32)}"`)) as Record<string, unknown>;
    let containers: unknown[] = [web];
    const { w, logs } = harness(kernel, { policy: OWN, pending: () => pending, applied: () => applied, facts: () => ({ raw: { networks: corpus.networks, containers: structuredClone(containers) } as never, source: "fake" }) });
    const allowWeb = "-A DOCKER-USER -s 192.168.1.0/24 -d 172.17.0.2/32 -i eth1 -o docker0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j RETURN";
    expect(await w.reconcile()).toEqual({ changed: true });
    expect(kernel.save(4)).toContain(allowWeb);
    expect(kernel.save(4)).toContain("--dport 8080 -j DNAT --to-destination 172.17.0.2:80");
    expect(logs[0]).toBe("the apply of 2025-01-01T00:00:00Z (/etc/dockwall/host.dw) waits for confirmation: keeping its rules in step with Docker until it ends");
    containers = [other];
    expect(await w.reconcile()).toEqual({ changed: true });
    expect(kernel.save(4)).not.toContain("--dport 8080 -j DNAT");
    expect(kernel.save(4)).not.toContain(allowWeb);
    expect(logs.at(-1)).toMatch(/^applied: containers \+other -web; .* \(the waiting apply's policy\)$/);
    // An apply of the other format (its nft file, for an iptables watcher): not reconciled until it ends, as before.
    applied = { text: APPLIED, format: "nft" };
    pending = pending + " ";
    expect(await w.reconcile()).toEqual({ changed: false, error: "pending" });
    // The apply ends: the watcher's own policy.
    pending = undefined;
    containers = [web];
    expect(await w.reconcile()).toEqual({ changed: true });
    expect(kernel.save(4)).not.toContain(allowWeb);
    expect(logs).toContain("the apply that waited has ended: reconciling");
  });
});

describe("SIGHUP runs the lockout guard for the SSH sessions open now", () => {
  test("a policy that would refuse the wan's session is not used: the rules of the one before stay; a policy that keeps it is", async () => {
    const kernel = new MemoryKernel();
    const { w, logs, kept, setPolicy } = harness(kernel, { sessions: () => [WAN_SESSION] });
    expect(await w.reconcile()).toEqual({ changed: true });
    const before = kernel.save(4);
    setPolicy(NO_WAN_SSH);
    w.reload();
    expect(await w.reconcile()).toEqual({ changed: false });
    expect(kernel.save(4)).toBe(before);
    expect(logs.filter((l) => /lockout|SIGHUP|SSH session/.test(l))).toEqual([
      "SIGHUP: read host.dw again",
      "host.dw:6:1: error: the new rules would not accept your SSH session's next connection (203.0.113.7 → 198.51.100.1:22 on eth0): no rule accepts it, and INPUT's policy is DROP",
      "  = note: an SSH session from 203.0.113.7 is open now",
      "SIGHUP: host.dw not applied: it would not accept the next connection of the SSH session from 203.0.113.7; the rules of the policy read before stay (apply it with 'dockwall apply --force' if that is meant)",
    ]);
    // A later event reconciles with the policy read before, not the refused one.
    expect(await w.reconcile()).toEqual({ changed: false });
    // Fixed (the lan's address no longer allowed, the wan still): used.
    setPolicy(POLICY.replace(" allow lan tcp 22;", ""));
    w.reload();
    expect(await w.reconcile()).toEqual({ changed: true });
    expect(kernel.save(4)).not.toContain("-s 192.168.1.0/24 -i eth1 -p tcp -m tcp --dport 22");
    // What it keeps is said (watch.json, for rollback) when a reload is taken, not when one is refused.
    expect(kept).toEqual([POLICY.replace(" allow lan tcp 22;", "")]);
  });

  test("sessions that cannot be listed: the reload is not used (fail closed)", async () => {
    const kernel = new MemoryKernel();
    const { w, logs, setPolicy } = harness(kernel, { sessions: () => "spawnSync ss ENOENT" });
    await w.reconcile();
    setPolicy(NO_WAN_SSH);
    w.reload();
    expect(await w.reconcile()).toEqual({ changed: false });
    expect(logs.at(-1)).toBe("SIGHUP: host.dw not applied: the lockout guard cannot see the SSH sessions (spawnSync ss ENOENT); the rules of the policy read before stay (apply it with 'dockwall apply --force' if that is meant)");
  });

  test("the sessions ss shows: established connections to a port sshd listens on, IPv4 and IPv6", () => {
    const listening = [
      'LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    users:(("sshd",pid=612,fd=3))',
      'LISTEN 0      128             [::]:22           [::]:*    users:(("sshd",pid=612,fd=4))',
      'LISTEN 0      4096       127.0.0.1:631       0.0.0.0:*    users:(("cupsd",pid=700,fd=7))',
    ].join("\n");
    const established = ["0      0      198.51.100.1:22    203.0.113.7:50000", "0      0      192.168.1.1:631    192.168.1.9:40000", "0      0      [2001:db8::1]:22   [2001:db8::7]:50001"].join("\n");
    expect(sshSessions(listening, established)).toEqual(["203.0.113.7 50000 198.51.100.1 22", "2001:db8::7 50001 2001:db8::1 22"]);
  });
});

describe("apply tells the watcher", () => {
  const compiled = compile(POLICY, { noRender: true });
  const record = { file: "host.dw", path: "/etc/dockwall/host.dw", text: POLICY, facts: { from: "none" as const }, applied: 0 };
  const factsNow = { facts: async () => undefined, dockerVersion: async () => "20.10.24" };
  const apply = async (m: ReturnType<typeof machine>, path: string | undefined) => {
    const err: string[] = [];
    const code = await runApply(m.io, { stdout: () => {}, stderr: (s) => err.push(s) }, compiled, { force: false, policyName: "host.dw", record: { ...record, path }, factsNow });
    return { code, err: err.join("") };
  };

  test("a watcher of the same file reads it again (SIGHUP)", async () => {
    const m = machine();
    m.processes.add(777);
    announceWatch(m.io, { pid: 777, policy: "/etc/dockwall/host.dw", started: 0 });
    const r = await apply(m, "/etc/dockwall/host.dw");
    expect(r.code).toBe(0);
    expect(m.signals).toEqual(["SIGHUP 777"]);
    expect(r.err).toMatch(/^dockwall: told the watcher \(pid 777\) to read \/etc\/dockwall\/host\.dw again$/m);
  });

  test("a watcher of another file: apply says it will put that policy back, and signals nothing", async () => {
    const m = machine();
    m.processes.add(777);
    announceWatch(m.io, { pid: 777, policy: "/etc/dockwall/host.dw", started: 0 });
    const r = await apply(m, "/root/try.dw");
    expect(m.signals).toEqual([]);
    expect(r.err).toContain(
      "dockwall: warning: a watcher (pid 777) keeps /etc/dockwall/host.dw: at the next Docker event it puts that policy's rules back in place of these. Apply /etc/dockwall/host.dw itself, or point the watcher at /root/try.dw and reload it\n",
    );
  });

  test("rollback after the apply was kept, with a watcher that keeps the newer policy: refused, saying why and what to do (a review: it said the old rules were back, and the watcher put the new ones back at once); also when the file is put back but the watcher not told (a second review)", async () => {
    const m = machine();
    m.processes.add(777);
    const watching = (text: string) => announceWatch(m.io, { pid: 777, policy: "/etc/dockwall/host.dw", started: 0, kept: policyHash(text) });
    const b = compile(NO_WAN_SSH, { noRender: true });
    const say: string[] = [];
    const applyText = async (text: string, c: typeof compiled) => runApply(m.io, { stdout: () => {}, stderr: () => {} }, c, { force: false, policyName: "host.dw", record: { ...record, text }, factsNow });
    m.files.set("/etc/dockwall/host.dw", POLICY);
    watching(POLICY);
    expect(await applyText(POLICY, compiled)).toBe(0);
    m.files.set("/etc/dockwall/host.dw", NO_WAN_SSH);
    expect(await applyText(NO_WAN_SSH, b)).toBe(0);
    // The watcher read it again (SIGHUP): it keeps the newer policy.
    watching(NO_WAN_SSH);
    const loaded = m.kernel.save(4);
    const refused =
      "not rolled back: a watcher (pid 777) keeps /etc/dockwall/host.dw, as it read it last, which is not the policy rolled back to (host.dw, applied 1970-01-01T00:00:00Z; its text is in /state/rollback.json): it would put its own rules back at once. The rules in place stay (nothing was changed). Put /etc/dockwall/host.dw back as it was and reload the watcher (systemctl reload dockwall): it then loads that policy itself; or stop the watcher (systemctl stop dockwall), then roll back";
    expect(await runRollback(m.io, (x) => say.push(x), factsNow)).toBe(2);
    expect(say).toEqual([refused]);
    expect(m.kernel.save(4)).toBe(loaded);
    // The file put back, the watcher not told: it still keeps the newer policy, and the rollback is still refused.
    m.files.set("/etc/dockwall/host.dw", POLICY);
    say.length = 0;
    expect(await runRollback(m.io, (x) => say.push(x), factsNow)).toBe(2);
    expect(say).toEqual([refused]);
    // A watcher that does not say what it keeps (an older one): refused too.
    announceWatch(m.io, { pid: 777, policy: "/etc/dockwall/host.dw", started: 0 });
    say.length = 0;
    expect(await runRollback(m.io, (x) => say.push(x), factsNow)).toBe(2);
    expect(say[0]).toContain("and does not say which policy it keeps (it may not be the policy rolled back to");
    // The watcher reads the file again and keeps the policy rolled back to: the rollback goes ahead.
    watching(POLICY);
    say.length = 0;
    expect(await runRollback(m.io, (x) => say.push(x), factsNow)).toBe(0);
    expect(say[0]).toMatch(/^the rules of host\.dw .* are back in place/);
  });

  test("a watcher that is gone (its pid is not there) is not told anything", async () => {
    const m = machine();
    announceWatch(m.io, { pid: 777, policy: "/etc/dockwall/host.dw", started: 0 });
    const r = await apply(m, "/etc/dockwall/host.dw");
    expect(m.signals).toEqual([]);
    expect(r.err).not.toMatch(/watcher/);
  });
});
