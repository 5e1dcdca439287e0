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

test("apply says so when iptables-legacy tables are loaded beside the ones it reads: they filter too, and it neither sees nor changes them", async () => {
  const { io } = machine("# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
  const r = compile("docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nhost { allow lan tcp 22; }\n", { noRender: true });
  const err: string[] = [];
  expect(await runApply(io, { stdout: () => {}, stderr: (s) => void err.push(s) }, r, { force: false, policyName: "host.dw", record, factsNow })).toBe(0);
  expect(err.join("")).toContain(
    "dockwall: warning: iptables-legacy tables are loaded too (iptables-legacy-save shows them): the kernel filters packets through them as well, and apply neither sees nor changes them (nor does its lockout guard)\n",
  );
});

test("a save cut short (iptables-save exits 0 on a full disk): not applied, nothing loaded", async () => {
  const { io, loads } = machine("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.");
  const r = compile("docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; }\nhost { allow lan tcp 22; }\n", { noRender: true });
  const err: string[] = [];
  expect(await runApply(io, { stdout: () => {}, stderr: (s) => void err.push(s) }, r, { force: false, policyName: "host.dw", record, factsNow })).toBe(2);
  expect(err.join("")).toContain("dockwall: not applied: cannot save the loaded rules with iptables-save: iptables-save's output was cut short (no COMMIT after the last table: a full disk?)");
  expect(loads).toEqual([]);
});
