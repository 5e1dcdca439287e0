// The reconciler of `watch -f nft` against fake facts and a kernel in memory that lists back
// what it was given (as nft does with the --format nft file, which is in nft's own form:
// test/targets/nft-live.test.ts). One load per change, none when nothing differs; a refused
// load keeps the tables from before; a SIGHUP policy that would drop an SSH session's next
// connection is not used. (test/watch/nft-live.test.ts: the same on a real dockerd and nft.)
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import type { Packet } from "../../src/analysis/evaluate.js";
import { SessionFailed } from "../../src/live/nftsession.js";

const corpus = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8")) as { networks: unknown[]; containers: Record<string, unknown>[] };
const POLICY = `docker { version 20.10; iptables on; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
allow lan to web;
host { allow lan tcp 22; }
`;

function world(policy = POLICY, verbose = false) {
  const tables = new Map<string, string>();
  const logs: string[] = [];
  const loads: string[] = [];
  const state = { facts: structuredClone(corpus), refuse: undefined as string | undefined, policy, sessions: [] as Packet[], lists: 0, factsFail: false, gates: [] as Promise<void>[] };
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
      list: async (names) => {
        state.lists++;
        const listed = names.map((n) => tables.get(n) ?? "").join("");
        // Each gate holds back the next listing until it opens (what it lists is the kernel's as it was).
        await state.gates.shift();
        return listed;
      },
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
    verbose,
    debounceMs: 0,
    sessions: () => state.sessions,
  };
  return { w: new Watcher(deps, policy), tables, logs, loads, state, deps };
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

it("after the whole file is loaded, its tables are listed in the background once, and the next change needs no listing; not when the kernel changed meanwhile", async () => {
  const { w, state, logs } = world(POLICY, true);
  await w.reconcile(); // lists the tables (none yet), loads the whole file: the handles are not known
  await new Promise((r) => setTimeout(r, 0));
  expect(state.lists).toBe(2); // listed again, in the background
  state.facts.containers = [];
  expect(await w.reconcile()).toEqual({ changed: true });
  const reconciled = logs.filter((l) => /^reconciled in /.test(l));
  expect(reconciled).toHaveLength(2);
  expect(reconciled[0]).toMatch(/compiled and the tables listed/);
  expect(reconciled[1]).not.toMatch(/listed/); // the change went in without a listing first
  // A change reported while the background listing is under way: what it listed is not kept.
  const again = world(POLICY, true);
  let open = () => {};
  again.state.gates.push(Promise.resolve(), new Promise((r) => (open = r))); // the reconcile's own listing, then the one in the background
  await again.w.reconcile();
  await new Promise((r) => setTimeout(r, 0));
  expect(again.state.lists).toBe(2); // the background listing began
  again.w.kernelChanged("inet dockwall (table deleted) (by nft, pid 4242)");
  open();
  await new Promise((r) => setTimeout(r, 0));
  again.state.facts.containers = [];
  await again.w.reconcile();
  expect(again.logs.filter((l) => /^reconciled in /.test(l))[1]).toMatch(/compiled and the tables listed/);
});

it("a background listing that a reconcile overtook is not kept: it holds the tables from before that reconcile's load", async () => {
  const { w, state, loads } = world();
  await w.reconcile();
  await new Promise((r) => setTimeout(r, 0)); // the tables listed in the background: known
  let open1 = () => {};
  let open2 = () => {};
  state.gates.push(new Promise((r) => (open1 = r)), Promise.resolve(), new Promise((r) => (open2 = r)));
  state.facts.containers = [];
  await w.reconcile(); // web gone, the whole file (the fake lists no handles); its background listing held back
  state.facts.containers = structuredClone(corpus.containers);
  await w.reconcile(); // web back: listed (nothing known), the whole file again; its background listing held back too
  open1(); // the first listing, of the tables without web, ends now
  await new Promise((r) => setTimeout(r, 0));
  open2();
  await new Promise((r) => setTimeout(r, 0));
  const before = loads.length;
  expect(await w.reconcile()).toEqual({ changed: false }); // the kernel holds what the policy says: nothing loaded
  expect(loads.length).toBe(before);
});

it("a table switched off by hand (flags dormant) is loaded again, and the log names what changed: the table's flags", async () => {
  const { w, tables, logs } = world();
  await w.reconcile();
  tables.set("inet dockwall", tables.get("inet dockwall")!.replace(/^(table inet dockwall \{\n)/m, "$1\tflags dormant\n"));
  w.kernelChanged("inet dockwall (by nft, pid 4242)");
  expect(await w.reconcile()).toEqual({ changed: true });
  expect(logs.at(-1)).toMatch(/nft: inet dockwall \(the table's flags\)$/);
});

it("the periodic check lists the tables beside the reconciles: what it finds changed is put back, and an event meanwhile waits for no listing", async () => {
  const { w, state, tables, logs, deps } = world(POLICY, true);
  deps.sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  deps.recheckMs = 150;
  deps.events = () => {
    let close = () => {};
    return { done: new Promise<void>((r) => (close = r)), close: () => close() };
  };
  const running = w.run();
  const until = async (what: () => boolean) => {
    for (const end = Date.now() + 5000; !what(); ) {
      if (Date.now() > end) throw new Error(`timed out; log:\n${logs.join("\n")}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  await until(() => w.stats.reconciles >= 1);
  await until(() => state.lists >= 2); // the tables listed after the whole file: known
  const loaded = tables.get("inet dockwall")!;
  // A rule taken out with no report of it (the monitor missed it): found by the periodic check, put back.
  tables.set("inet dockwall", loaded.replace(/^.*172\.17\.0\.2 tcp dport 80 .*\n/m, ""));
  expect(tables.get("inet dockwall")).not.toBe(loaded);
  await until(() => tables.get("inet dockwall") === loaded);
  expect(logs.some((l) => /^the tables were changed \(inet dockwall chain docker-user-ip \(found by the periodic check\)\): putting back what the policy says$/.test(l))).toBe(true);
  // A listing of the periodic check held back: a Docker event's reconcile does not wait for it.
  let open = () => {};
  const lists = state.lists;
  state.gates.push(new Promise((r) => (open = r)));
  await until(() => state.lists > lists);
  const before = w.stats.reconciles;
  state.facts.containers = [];
  w.markDirty("container die web");
  await until(() => w.stats.reconciles > before);
  expect(tables.get("inet dockwall")).not.toContain("172.17.0.2");
  open();
  w.stop();
  await running;
});

it("a delta nft -i could not take (no answer in time): said as that, not as nft refusing it, and the whole file loaded instead", async () => {
  const { w, state, tables, logs, deps } = world(POLICY, true);
  // Listings with handles (as nft -a lists them), and deltas that go to an nft -i that does not answer.
  deps.nft!.list = async (names) => (state.lists++, names.map((n) => (tables.get(n) ?? "").replace(/^(\t\t(?!type ).*)$/gm, (l, _x, at: number) => `${l} # handle ${at}`)).join(""));
  deps.nft!.listChains = async () => "";
  deps.nft!.loadDelta = async () => {
    throw new SessionFailed("nft -i did not answer in 2000 ms");
  };
  await w.reconcile();
  await new Promise((r) => setTimeout(r, 0));
  state.facts.containers = [];
  expect(await w.reconcile()).toEqual({ changed: true });
  expect(tables.get("inet dockwall")).not.toContain("172.17.0.2");
  expect(logs).toContain("the change could not go through nft -i (nft -i did not answer in 2000 ms): loading the whole file");
  expect(logs.filter((l) => /^reconciled in /.test(l)).at(-1)).toMatch(/loaded the whole file in/);
});

it("a delta too long for one line of nft -i (a burst of many containers) is loaded with nft -f, as a delta all the same (a review: the whole file was loaded)", async () => {
  // With iptables off the file holds Docker's tables too: rules for each container.
  const { w, state, tables, deps, loads, logs } = world("docker { version 29.7; iptables off; userland-proxy off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\nallow lan to web;\n", true);
  deps.nft!.list = async (names) => (state.lists++, names.map((n) => (tables.get(n) ?? "").replace(/^(\t\t(?!type ).*)$/gm, (l, _x, at: number) => `${l} # handle ${at}`)).join(""));
  deps.nft!.listChains = async () => "";
  const session: string[] = [];
  deps.nft!.loadDelta = async (text) => (session.push(text), "");
  await w.reconcile();
  await new Promise((r) => setTimeout(r, 0));
  const many = (n: number) =>
    Array.from({ length: n }, (_, i) => {
      const c = structuredClone(corpus.containers[0]!) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      c.Id = `c${i}`.padEnd(64, "0");
      c.Name = `/app${i}`;
      c.NetworkSettings.Networks.bridge.IPAddress = `172.17.${(i >> 7) + 1}.${(i & 127) + 2}`;
      c.NetworkSettings.Ports = { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: String(20000 + i) }] };
      return c;
    });
  // 400 containers at once: more than a line of nft -i takes.
  state.facts.containers = [...corpus.containers, ...many(400)];
  const before = loads.length;
  await w.reconcile();
  expect(session, logs.join("\n")).toEqual([]);
  expect(loads.length, logs.join("\n")).toBe(before + 1);
  expect(loads.at(-1)!.length).toBeGreaterThan(65536);
  expect(loads.at(-1)).not.toMatch(/^table /m); // a delta, not the whole file
});
