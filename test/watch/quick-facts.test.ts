// The watcher's quick reads (issue 24: a new container's rules sooner): a reconcile for Docker's
// events reads what the last read found and inspects only the containers the events named; a
// full read follows once the events pause, and finds what an event dockerd dropped would have
// said. The first event after a quiet spell is reconciled without waiting the quiet time.
// The watcher's run loop with real timers, a fake daemon and the in-memory kernel.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { FACTS_SETTLE_MS, Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import { MemoryKernel } from "../support/memory-kernel.js";
import { FactsReadYielded } from "../../src/facts/engine.js";

type Container = Record<string, any>;
const corpus = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8")) as { networks: unknown[]; containers: Container[] };

/** The corpus' `web` container as another: NAME at ADDR publishing HOSTPORT. */
function another(name: string, addr: string, hostPort: number, started: string): Container {
  const c = structuredClone(corpus.containers[0]!);
  c.Name = `/${name}`;
  c.Id = name.padEnd(64, "0");
  c.State.StartedAt = started;
  c.NetworkSettings.Networks.bridge.IPAddress = addr;
  c.NetworkSettings.Ports = { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: String(hostPort) }, { HostIp: "::", HostPort: String(hostPort) }] };
  return c;
}

const POLICY = `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
allow lan to web, api, db;
`;

/** A fake daemon as facts/engine.ts reads it: a full read sees every running container, a quick one what it saw then and each container named since. */
function daemon() {
  const running = new Map<string, Container>([[corpus.containers[0]!.Id as string, corpus.containers[0]!]]);
  const seen = new Map<string, Container>();
  const named = new Set<string>();
  const reads = { full: 0, quick: 0 };
  const raw = () => ({ raw: { networks: corpus.networks, containers: structuredClone([...seen.values()]), version: { Version: "20.10.24" } }, source: "fake" });
  let emit: (e: Record<string, unknown>) => void = () => {};
  return {
    running,
    reads,
    /** A container event, as dockerd sends it (unless it dropped it). */
    event: (action: string, c: Container) => emit({ Type: "container", Action: action, Actor: { ID: c.Id, Attributes: { name: c.Name.slice(1) } } }),
    deps: {
      facts: async () => {
        reads.full++;
        named.clear();
        seen.clear();
        for (const [id, c] of running) seen.set(id, c);
        return raw();
      },
      changedFacts: async () => {
        reads.quick++;
        for (const id of named) {
          const c = running.get(id);
          if (c) seen.set(id, c);
          else seen.delete(id);
        }
        named.clear();
        return raw();
      },
      forget: (id?: string) => void (id === undefined ? seen.clear() : named.add(id)),
      events: (onEvent: (e: Record<string, unknown>) => void, onOpen: () => void) => {
        emit = onEvent;
        queueMicrotask(onOpen);
        let close = () => {};
        return { done: new Promise<void>((r) => (close = r)), close: () => close() };
      },
    } satisfies Partial<WatchDeps>,
  };
}

function watcher(d: ReturnType<typeof daemon>, debounceMs: number, more: Partial<WatchDeps> = {}) {
  const kernel = new MemoryKernel();
  const logs: string[] = [];
  const sleeps: number[] = [];
  const deps: WatchDeps = {
    ...d.deps,
    policyName: "host.dw",
    readPolicy: () => POLICY,
    save: (f) => kernel.save(f),
    restore: (f, text, noflush) => kernel.restore(f, text, { noflush, test: false }),
    log: (l) => (process.env.DBG && console.log(Date.now() % 100000, l), logs.push(l)),
    sleep: (ms) => (sleeps.push(ms), new Promise((r) => setTimeout(r, ms))),
    verbose: !!process.env.DBG,
    debounceMs,
    ...more,
  };
  return { w: new Watcher(deps, POLICY), kernel, logs, sleeps };
}

const until = async (what: () => boolean, ms = 5000) => {
  for (const end = Date.now() + ms; !what(); ) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
};
const dnat = (k: MemoryKernel, port: number) => k.save(4).includes(`--dport ${port} -j DNAT`);

/** api and db start; api's event comes, db's is dropped (under load dockerd drops them). */
function apiAndDb(d: ReturnType<typeof daemon>): { api: Container; db: Container } {
  const api = another("api", "172.17.0.9", 9090, "2026-11-21T22:45:00.0Z");
  const db = another("db", "172.17.0.10", 9091, "2026-11-21T22:45:01.0Z");
  d.running.set(api.Id, api);
  d.running.set(db.Id, db);
  d.event("start", api);
  return { api, db };
}

describe("watch: quick reads after events, a full read once they pause", () => {
  test("a container's event: only it is read, its rules load; the full read that follows finds a container whose event was dropped", async () => {
    const d = daemon();
    const { w, kernel, logs } = watcher(d, 20);
    const running = w.run();
    await until(() => w.stats.reconciles >= 1);
    expect(d.reads).toEqual({ full: 1, quick: 0 });
    expect(dnat(kernel, 8080)).toBe(true);
    // api starts and its event comes; db starts and dockerd drops its event (under load it drops them).
    const { api } = apiAndDb(d);
    await until(() => dnat(kernel, 9090));
    expect(d.reads).toEqual({ full: 1, quick: 1 });
    expect(dnat(kernel, 9091)).toBe(false);
    expect(logs.at(-1)).toMatch(/^applied: containers \+api; /);
    // Once the events pause: a full read, which brings db's rules.
    await until(() => dnat(kernel, 9091));
    expect(d.reads).toEqual({ full: 2, quick: 1 });
    expect(logs.at(-1)).toMatch(/^applied: containers \+db; /);
    // And a container that stops: its rules go at its event, with a quick read.
    d.running.delete(api.Id);
    d.event("die", api);
    await until(() => !dnat(kernel, 9090));
    expect(d.reads).toEqual({ full: 2, quick: 2 });
    await until(() => d.reads.full === 3);
    w.stop();
    await running;
    expect(dnat(kernel, 9091)).toBe(true);
  });

  test("while an apply waits for confirmation too (a review: its loop never made the full read, and a container whose event came during a quick read lost its rules for 8 s)", async () => {
    const d = daemon();
    const { w, kernel } = watcher(d, 20, { pending: () => "the apply of 2025-01-01T00:00:00Z (host.dw) waits for confirmation", applied: () => ({ text: POLICY }) });
    const running = w.run();
    await until(() => w.stats.reconciles >= 1);
    const { api } = apiAndDb(d);
    await until(() => dnat(kernel, 9090));
    expect(d.reads).toEqual({ full: 1, quick: 1 });
    // db's event was dropped: the full read after the quick one finds it, while the apply still waits.
    await until(() => dnat(kernel, 9091));
    expect(d.reads).toEqual({ full: 2, quick: 1 });
    w.stop();
    await running;
  });

  test("a failed read is tried again at the next event, not only when its backoff runs out (a second review: a new container waited 15 s)", async () => {
    const d = daemon();
    let fail = false;
    const quick = d.deps.changedFacts;
    d.deps.changedFacts = async () => {
      if (fail) {
        fail = false;
        throw new Error("no answer within 5 s");
      }
      return quick();
    };
    const { w, kernel } = watcher(d, 20, { retryMs: 60_000 });
    const running = w.run();
    await until(() => w.stats.reconciles >= 1);
    await until(() => d.reads.full >= 1);
    fail = true;
    const before = w.stats.reconciles;
    d.event("restart", corpus.containers[0]!);
    await until(() => w.stats.reconciles > before);
    apiAndDb(d);
    // (Within 3 s, not the minute of the backoff: until() throws otherwise.)
    await until(() => dnat(kernel, 9090), 3000);
    w.stop();
    await running;
  });

  test("the full read waits while events keep coming (each reconciled quickly), and comes once they pause", async () => {
    const d = daemon();
    const { w, kernel } = watcher(d, 0);
    const running = w.run();
    await until(() => w.stats.reconciles >= 1);
    for (let i = 0; i < 4; i++) {
      const c = another(`c${i}`, `172.17.0.${20 + i}`, 9100 + i, `2026-11-21T22:46:0${i}.0Z`);
      d.running.set(c.Id, c);
      d.event("start", c);
      await until(() => dnat(kernel, 9100 + i));
      // Less than the settle time apart: no full read between them.
      await new Promise((r) => setTimeout(r, FACTS_SETTLE_MS / 5));
    }
    expect(d.reads).toEqual({ full: 1, quick: 4 });
    await until(() => d.reads.full === 2);
    w.stop();
    await running;
  });

  test("an event during the full read after the events: that read gives way, the event's container is read at once, and the full read comes again after", async () => {
    const d = daemon();
    const full = d.deps.facts;
    let hold = false;
    const { w, kernel, logs } = watcher(d, 0, {
      facts: async (signal?: AbortSignal) => {
        if (hold) {
          hold = false;
          d.reads.full++;
          // Held until it is given up (an answer that never comes, unless it yields).
          await new Promise((_, reject) => signal?.addEventListener("abort", () => reject(new FactsReadYielded())));
        }
        return full();
      },
      verbose: true,
    });
    const running = w.run();
    await until(() => w.stats.reconciles >= 1);
    await until(() => d.reads.full >= 1);
    const api = another("api", "172.17.0.9", 9090, "2026-11-21T22:45:00.0Z");
    d.running.set(api.Id, api);
    hold = true;
    d.event("start", api);
    await until(() => dnat(kernel, 9090));
    // The full read after api's event begins, and hangs.
    await until(() => d.reads.full === 2);
    const db = another("db", "172.17.0.10", 9091, "2026-11-21T22:45:01.0Z");
    d.running.set(db.Id, db);
    d.event("start", db);
    await until(() => dnat(kernel, 9091), 2000);
    expect(logs).toContain("the read in full gave way to an event: again after it");
    // db's event read db alone (a review: it was read in full, a read that could not give way).
    expect(d.reads).toEqual({ full: 2, quick: 2 });
    // The full read again, to the end.
    await until(() => d.reads.full === 3);
    w.stop();
    await running;
  });

  test("the first event after a quiet spell is reconciled at once; an event that comes within the quiet time of the one before waits it", async () => {
    const d = daemon();
    const DEBOUNCE = 400;
    const { w, kernel, sleeps } = watcher(d, DEBOUNCE);
    const running = w.run();
    await until(() => w.stats.reconciles >= 1);
    // The start-up reconcile, the full read after it: then a spell longer than the quiet time.
    await new Promise((r) => setTimeout(r, DEBOUNCE + 50));
    sleeps.length = 0;
    const api = another("api", "172.17.0.9", 9090, "2026-11-21T22:45:00.0Z");
    d.running.set(api.Id, api);
    d.event("start", api);
    await until(() => dnat(kernel, 9090));
    expect(sleeps).not.toContain(DEBOUNCE);
    // db's event right after api's (within the quiet time): it waits the quiet time.
    const db = another("db", "172.17.0.10", 9091, "2026-11-21T22:45:01.0Z");
    d.running.set(db.Id, db);
    d.event("start", db);
    await until(() => dnat(kernel, 9091));
    expect(sleeps).toContain(DEBOUNCE);
    // A change the kernel reports (drift) waits the quiet time even after a quiet spell: an apply writes that it waits
    // for confirmation only after its load, and its rules must not be put back meanwhile.
    await new Promise((r) => setTimeout(r, DEBOUNCE + FACTS_SETTLE_MS + 100));
    sleeps.length = 0;
    const before = w.stats.reconciles;
    w.kernelChanged("filter DOCKER-USER");
    await until(() => w.stats.reconciles > before);
    expect(sleeps[0]).toBe(DEBOUNCE);
    w.stop();
    await running;
  });
});

// A review (real dockerd 20.10, SIGKILLed and started again): dockerd restarts its --restart containers before its API
// answers, at whatever addresses it hands out, and the rules in place (which stay, as they must) then lead the last
// container's allowed port to the one at its address now, until the watcher is back. The wait between tries to reach
// the daemon again was up to 10 s: now at most 1 s.
test("the daemon gone: the watcher tries its event stream again at least once a second", async () => {
  const d = daemon();
  const gone = () => ({ done: Promise.reject(new Error("connect ENOENT /var/run/docker.sock")), close: () => {} });
  const sleeps: number[] = [];
  const { w } = watcher(d, 20, {
    events: gone,
    sleep: (ms) => (sleeps.push(ms), new Promise((r) => setImmediate(r))),
  });
  const running = w.run();
  await until(() => sleeps.filter((ms) => ms >= 250).length >= 12);
  w.stop();
  await running;
  const tries = sleeps.filter((ms) => ms >= 250);
  expect(tries.slice(0, 4)).toEqual([250, 500, 1000, 1000]);
  expect(Math.max(...tries)).toBe(1000);
});
