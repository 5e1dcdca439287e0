// The reconciler of `watch -f nft` against fake facts and a kernel in memory that lists back
// what it was given (as nft does with the --format nft file, which is in nft's own form:
// test/targets/nft-live.test.ts). One load per change, none when nothing differs; a refused
// load keeps the tables from before; a SIGHUP policy that would drop an SSH session's next
// connection is not used. (test/watch/nft-live.test.ts: the same on a real dockerd and nft.)
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import type { Packet } from "../../src/analysis/evaluate.js";

const corpus = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8")) as { networks: unknown[]; containers: Record<string, unknown>[] };
const POLICY = `docker { version 20.10; iptables on; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
allow lan to web;
host { allow lan tcp 22; }
`;

function world(policy = POLICY) {
  const tables = new Map<string, string>();
  const logs: string[] = [];
  const loads: string[] = [];
  const state = { facts: structuredClone(corpus), refuse: undefined as string | undefined, policy, sessions: [] as Packet[], lists: 0, factsFail: false };
  const deps: WatchDeps = {
    policyName: "host.dw",
    readPolicy: () => state.policy,
    facts: async () => {
      if (state.factsFail) throw new Error("cannot read /containers/json: dockerd is restarting");
      return { raw: structuredClone(state.facts), source: "fake" };
    },
    events: () => ({ done: new Promise(() => {}), close: () => {} }),
    save: () => "",
    restore: () => {
      throw new Error("watch -f nft never runs iptables-restore");
    },
    nft: {
      list: async (names) => (state.lists++, names.map((n) => tables.get(n) ?? "").join("")),
      // nft monitor has followed the kernel since long before.
      watchedSince: () => -1e9,
      load: (text) => {
        if (state.refuse) throw new Error(state.refuse);
        loads.push(text);
        for (const m of text.matchAll(/^table (\S+ \S+) \{\n[\s\S]*?^\}\n/gm)) tables.set(m[1]!, m[0]);
      },
    },
    log: (l) => void logs.push(l),
    sleep: async () => {},
    verbose: false,
    debounceMs: 0,
    sessions: () => state.sessions,
  };
  return { w: new Watcher(deps, policy), tables, logs, loads, state };
}

it("the first reconcile loads the file, the next with the same facts loads nothing, a container gone loads once more", async () => {
  const { w, tables, logs, loads, state } = world();
  expect(await w.reconcile()).toEqual({ changed: true });
  expect(loads).toHaveLength(1);
  expect([...tables.keys()]).toEqual(["inet dockwall"]);
  expect(tables.get("inet dockwall")).toContain('ip daddr 172.17.0.2 tcp dport 80 ct status dnat ct original proto-dst 8080 return');
  expect(logs).toEqual(["applied: containers +web; nft: inet dockwall (table made)"]);
  expect(await w.reconcile()).toEqual({ changed: false });
  expect(loads).toHaveLength(1);
  state.facts.containers = [];
  expect(await w.reconcile()).toEqual({ changed: true });
  expect(tables.get("inet dockwall")).not.toContain("172.17.0.2");
  expect(logs[1]).toMatch(/^applied: containers -web; nft: inet dockwall chain docker-user-ip -2$/);
});

it("a load nft refuses: logged, the tables from before stay, and the next reconcile tries again", async () => {
  const { w, tables, logs, state } = world();
  await w.reconcile();
  const before = tables.get("inet dockwall");
  state.facts.containers = [];
  state.refuse = "Error: Could not process rule: No buffer space available";
  expect(await w.reconcile()).toEqual({ changed: false, error: "restore" });
  expect(logs.at(-1)).toBe("nft refused the file (Error: Could not process rule: No buffer space available); the tables from before stay (one transaction)");
  expect(tables.get("inet dockwall")).toBe(before);
  state.refuse = undefined;
  expect(await w.reconcile()).toEqual({ changed: true });
});

it("SIGHUP: a policy whose table would drop an open SSH session's next connection is not used; the one before stays", async () => {
  const { w, tables, logs, state } = world();
  await w.reconcile();
  const before = tables.get("inet dockwall");
  state.sessions = [{ family: 4, in: "eth1", src: "192.168.1.9", dst: "192.168.1.1", proto: "tcp", sport: 50000, dport: 22, state: "NEW", local: ["192.168.1.1"] }];
  state.policy = POLICY.replace("allow lan tcp 22;", "allow lan tcp 2222;");
  w.reload();
  expect(await w.reconcile()).toEqual({ changed: false });
  expect(logs.some((l) => /^host\.dw:4:1: error: the new rules would not accept your SSH session's next connection \(192\.168\.1\.9 → 192\.168\.1\.1:22 on eth1\)/.test(l))).toBe(true);
  expect(logs.at(-1)).toBe("SIGHUP: host.dw not applied: it would not accept the next connection of the SSH session from 192.168.1.9; the rules of the policy read before stay");
  expect(tables.get("inet dockwall")).toBe(before);
});

it("what it loaded is trusted while nft monitor follows the kernel, and not once the monitor reports a change, even when the reconcile after it fails", async () => {
  const { w, state } = world();
  await w.reconcile(); // loads the file
  await w.reconcile(); // reads the tables: nothing to change, and keeps them
  const read = state.lists;
  await w.reconcile();
  expect(state.lists).toBe(read); // trusted: not read again
  w.kernelChanged("inet dockwall docker-user-ip -1 (by nft, pid 4242)");
  state.factsFail = true;
  expect((await w.reconcile()).error).toMatch(/dockerd is restarting/);
  state.factsFail = false;
  await w.reconcile();
  expect(state.lists).toBe(read + 1); // read again: the change was not forgotten with the failed reconcile
});

it("a table switched off by hand (flags dormant) is loaded again, and the log names what changed: the table's flags", async () => {
  const { w, tables, logs } = world();
  await w.reconcile();
  tables.set("inet dockwall", tables.get("inet dockwall")!.replace(/^(table inet dockwall \{\n)/m, "$1\tflags dormant\n"));
  w.kernelChanged("inet dockwall (by nft, pid 4242)");
  expect(await w.reconcile()).toEqual({ changed: true });
  expect(logs.at(-1)).toMatch(/nft: inet dockwall \(the table's flags\)$/);
});
