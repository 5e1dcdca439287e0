// apply --confirm's control flow with a machine in memory: when its own rollback cannot be
// started, the new rules do not stay waiting on this process: they are put back at once.
import { expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { runApply, type SystemIo } from "../../src/apply/command.js";
import type { FactsNow, PolicyRecord } from "../../src/apply/rollback.js";
import { machine as memoryMachine } from "../support/memory-kernel.js";

const POLICY = "docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nhost { allow lan tcp 22; }\n";
/** The policy as apply records it, and Docker's facts for a rollback (none: the policy declares what it needs). */
const record: PolicyRecord = { file: "host.dw", text: POLICY, facts: { from: "none" }, applied: 0 };
const factsNow: FactsNow = { facts: async () => undefined, dockerVersion: async () => "20.10.24" };

/** An in-memory host: what apply runs, and the files it writes. */
function machine(saved4 = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n") {
  const files = new Map<string, string>();
  const loads: string[] = [];
  let now = 1_000_000;
  const io: SystemIo = {
    run: (cmd, args, input) => {
      if (/^ip6?tables-(nft|legacy)-save$/.test(cmd)) throw new Error(`spawnSync ${cmd} ENOENT`);
      if (cmd.endsWith("-save")) return cmd.startsWith("ip6") ? "" : saved4;
      if (!args.includes("--test")) loads.push(`${cmd} ${args.join(" ")}`.trim() + (input?.includes("COMMIT") ? " <rules>" : ""));
      return "";
    },
    runAsync: async (cmd, args) => io.run(cmd, args),
    env: {},
    stateDir: "/state",
    readFile: (p) => files.get(p),
    writeFile: (p, t) => void files.set(p, t),
    removeFile: (p) => void files.delete(p),
    rename: (a, b) => {
      const t = files.get(a);
      if (t === undefined) return false;
      files.delete(a);
      files.set(b, t);
      return true;
    },
    spawnDockwall: async () => {
      throw new Error("spawn /nowhere/dockwall ENOENT");
    },
    pid: 4242,
    signal: () => false,
    now: () => now,
    sleep: async (ms) => void (now += ms),
    readLine: async () => undefined,
    stdinIsTTY: false,
  };
  return { io, files, loads };
}

test("--confirm whose rollback process cannot start: the rules from before are back, exit 2", async () => {
  const m = memoryMachine();
  m.kernel.restore(4, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s 10.9.9.9/32 -j ACCEPT\nCOMMIT\n", { noflush: false, test: false });
  const before = [m.kernel.save(4), m.kernel.save(6)];
  m.io.spawnDockwall = async () => {
    throw new Error("spawn /nowhere/dockwall ENOENT");
  };
  const r = compile(POLICY, { noRender: true });
  const err: string[] = [];
  const code = await runApply(m.io, { stdout: () => {}, stderr: (s) => void err.push(s) }, r, { confirm: 30, force: false, policyName: "host.dw", record, factsNow });
  expect(err.join("")).toContain("dockwall: cannot start the rollback that --confirm needs (spawn /nowhere/dockwall ENOENT): the rules from before the last apply are back in place\n");
  expect(code).toBe(2);
  // Loaded (IPv4, IPv6), then both rolled back, the same way.
  expect(m.kernel.loads.slice(1)).toEqual(["iptables-restore --noflush", "ip6tables-restore --noflush", "iptables-restore --noflush", "ip6tables-restore --noflush"]);
  const empty = (t: string) => t.replace(/^\*(nat|raw|mangle|filter)\n(:\S+ ACCEPT \[0:0\]\n)+COMMIT\n/gm, "");
  expect([empty(m.kernel.save(4)), empty(m.kernel.save(6))]).toEqual(before);
  expect(m.files.has("/state/pending.json")).toBe(false);
  expect([...m.files.keys()].filter((f) => f.startsWith("/state/outcome"))).toEqual([]);
});

test("both iptables backends hold rules: apply refuses, says what the other holds and how to empty it; --force applies through the system's", async () => {
  const { io, loads } = machine();
  const legacy = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -j DOCKER\n-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n";
  const nft = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n";
  const plain = io.run;
  io.run = (cmd, args, input) => {
    if (cmd === "iptables" && args[0] === "--version") return "iptables v1.8.9 (nf_tables)\n";
    if (cmd === "iptables-legacy-save") return legacy;
    if (cmd === "iptables-nft-save") return nft;
    if (/^ip6tables-(nft|legacy)-save$/.test(cmd)) return "";
    return plain(cmd, args, input);
  };
  const r = compile("docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nhost { allow lan tcp 22; }\n", { noRender: true });
  const err: string[] = [];
  expect(await runApply(io, { stdout: () => {}, stderr: (s) => void err.push(s) }, r, { force: false, policyName: "host.dw", record, factsNow })).toBe(2);
  expect(err.join("")).toBe(
    "dockwall: not applied: both iptables backends hold IPv4 rules, and the kernel filters every packet through both: iptables-legacy holds nat PREROUTING (1 rule), DOCKER (user chain, 1 rule) (Docker's chains among them: from a dockerd that wrote them there, or a ferm.conf loaded with it). " +
      "dockwall reads and writes iptables-nft (the system's iptables), so what iptables-legacy holds acts unseen (a stale DNAT there reaches whichever container has the address now). " +
      "Empty it: iptables-legacy -t nat -F; iptables-legacy -t nat -X — and load rules through one backend only (ferm uses iptables-legacy where it is installed: deploy with 'dockwall apply', or set the system's iptables to legacy with update-alternatives --set iptables /usr/sbin/iptables-legacy)\n" +
      "dockwall: nothing was changed; --force applies anyway, through iptables-nft-restore and ip6tables-nft-restore\n",
  );
  expect(loads).toEqual([]);
  err.length = 0;
  expect(await runApply(io, { stdout: () => {}, stderr: (s) => void err.push(s) }, r, { force: true, policyName: "host.dw", record, factsNow })).toBe(0);
  expect(err[0]).toMatch(/^dockwall: warning: both iptables backends hold IPv4 rules/);
  expect(loads).toEqual(["iptables-nft-restore --noflush <rules>", "ip6tables-nft-restore --noflush <rules>"]);
});

test("only the legacy backend holds rules (ferm loaded them): apply reads and writes it, not the system's empty one", async () => {
  const { io, loads } = machine();
  const plain = io.run;
  io.run = (cmd, args, input) => {
    if (cmd === "iptables" && args[0] === "--version") return "iptables v1.8.9 (nf_tables)\n";
    if (cmd === "iptables-legacy-save") return "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n";
    if (/^ip6?tables-(nft|legacy)-save$/.test(cmd)) return "";
    return plain(cmd, args, input);
  };
  const r = compile("docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nhost { allow lan tcp 22; }\n", { noRender: true });
  expect(await runApply(io, { stdout: () => {}, stderr: () => {} }, r, { force: false, policyName: "host.dw", record, factsNow })).toBe(0);
  // IPv6 holds nothing in either: it follows IPv4 (ferm loads both families through one backend).
  expect(loads).toEqual(["iptables-legacy-restore --noflush <rules>", "ip6tables-legacy-restore --noflush <rules>"]);
});

test("a save cut short (iptables-save exits 0 on a full disk): not applied, nothing loaded", async () => {
  const { io, loads } = machine("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.");
  const r = compile("docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nhost { allow lan tcp 22; }\n", { noRender: true });
  const err: string[] = [];
  expect(await runApply(io, { stdout: () => {}, stderr: (s) => void err.push(s) }, r, { force: false, policyName: "host.dw", record, factsNow })).toBe(2);
  expect(err.join("")).toContain("dockwall: not applied: cannot save the loaded rules with iptables-save: iptables-save's output was cut short (no COMMIT after the last table: a full disk?)");
  expect(loads).toEqual([]);
});

test("an apply says it is loading (applying.json, its pid) from just before its load until it has written that it waits for confirmation, or told a watcher; a watcher waits for it meanwhile", async () => {
  const { applyingNow } = await import("../../src/apply/command.js");
  const m = memoryMachine();
  m.processes.add(m.io.pid);
  const seen: { applying: string | undefined; pending: boolean }[] = [];
  const run = m.io.run;
  m.io.run = (cmd, args, input) => {
    if (/^ip6?tables-restore$/.test(cmd) && !args.includes("--test")) seen.push({ applying: applyingNow(m.io), pending: m.files.has("/state/pending.json") });
    return run(cmd, args, input);
  };
  const r = compile(POLICY, { noRender: true });
  // --confirm, not waiting: pending.json is written after the load; applying.json covers the time between.
  expect(await runApply(m.io, { stdout: () => {}, stderr: () => {} }, r, { confirm: 30, noWait: true, force: false, policyName: "host.dw", record, factsNow })).toBe(0);
  expect(seen).toEqual([
    { applying: "an apply (pid 4242) is loading its rules", pending: false },
    { applying: "an apply (pid 4242) is loading its rules", pending: false },
  ]);
  expect(m.files.has("/state/pending.json")).toBe(true);
  expect(m.files.has("/state/applying.json")).toBe(false);
  expect(applyingNow(m.io)).toBeUndefined();
  // A file left by an apply that was killed: not waited for (its process is gone, or it is too old).
  m.files.set("/state/applying.json", JSON.stringify({ pid: 999, started: m.io.now() }));
  expect(applyingNow(m.io)).toBeUndefined();
  m.files.set("/state/applying.json", JSON.stringify({ pid: m.io.pid, started: m.io.now() - 60_000 }));
  expect(applyingNow(m.io)).toBeUndefined();
});
