// A review (on a real dockerd, then this repro): drift reported while a read of Docker's facts fails was never put back: the retry's
// facts are the objects in force, so the reconcile is skipped as unchanged.
import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { Watcher, type WatchDeps } from "../../src/watch/watcher.js";
import { MemoryKernel } from "../support/memory-kernel.js";

const corpus = JSON.parse(readFileSync(new URL("../facts/corpus/publish-tcp/state.json", import.meta.url), "utf8")) as { networks: unknown[]; containers: unknown[] };
const POLICY = `docker { version 20.10; iptables off; userland-proxy off; }
zone lan { interface eth1; from 192.168.1.0/24; }
allow lan to web;
`;
const until = async (what: () => boolean, ms = 5000) => {
  for (const end = Date.now() + ms; !what(); ) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
};

test("drift during a failed facts read is put back", async () => {
  const kernel = new MemoryKernel();
  const raw = { networks: corpus.networks, containers: corpus.containers, version: { Version: "20.10.24" } };
  let fail = false;
  const logs: string[] = [];
  const deps: WatchDeps = {
    policyName: "host.dw",
    readPolicy: () => POLICY,
    facts: async () => {
      if (fail) {
        fail = false;
        throw new Error("no answer within 5 s");
      }
      return { raw, source: "fake" }; // the client keeps its objects: the same ones while nothing changed
    },
    changedFacts: async () => {
      if (fail) {
        fail = false;
        throw new Error("no answer within 5 s");
      }
      return { raw, source: "fake" };
    },
    events: () => {
      let close = () => {};
      return { done: new Promise<void>((r) => (close = r)), close: () => close() };
    },
    save: (f) => kernel.save(f),
    restore: (f, text, noflush) => kernel.restore(f, text, { noflush, test: false }),
    log: (l) => (process.env.DBG && console.log(l), logs.push(l)),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    verbose: true,
    debounceMs: 20,
    retryMs: 50,
  };
  const w = new Watcher(deps, POLICY);
  const running = w.run();
  w.markDirty("start");
  const dnat = () => kernel.save(4).includes("-j DNAT");
  await until(dnat);
  await new Promise((r) => setTimeout(r, 400));
  // Someone flushes nat DOCKER; the read of the facts for that reconcile fails once.
  kernel.restore(4, "*nat\n-F DOCKER\nCOMMIT\n", { noflush: true, test: false });
  fail = true;
  const before = w.stats.reconciles;
  w.kernelChanged("ip nat DOCKER -1");
  await until(() => w.stats.reconciles >= before + 2);
  await new Promise((r) => setTimeout(r, 300));
  w.stop();
  await running;
  expect(dnat(), logs.slice(-6).join("\n")).toBe(true);
});
