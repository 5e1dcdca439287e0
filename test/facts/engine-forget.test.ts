// The watch client's quick reads (facts/engine.ts changedFacts) against a fake daemon that holds
// the first filtered list until the test lets it go: what an event said during that read changes.
// From two reviews on a real dockerd: an exec event during a quick read for another container
// dropped that one from the facts (its rules were deleted); a container removed during a read was
// answered with beside the next one given its address; everything forgotten during a read (the
// event stream reopened) left an answer of only the containers asked about.
import { createServer } from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { Engine } from "../../src/facts/engine.js";

const ctr = (id: string, name: string, ip: string) => ({ Id: id, Names: [`/${name}`], State: "running", Ports: [], NetworkSettings: { Networks: { bridge: { NetworkID: "n", IPAddress: ip } } } });
const X = "a".repeat(64), Y = "b".repeat(64);

/**
 * A fake daemon running `running` on a socket of its own: `beforeList` runs (and may hold the
 * answer) before each GET /containers/json, given its filters ("" for a full list).
 */
async function fakeDaemon(running: Map<string, ReturnType<typeof ctr>>, beforeList: (filters: string) => Promise<void> | void): Promise<{ engine: Engine; close: () => void }> {
  const srv = createServer(async (req, res) => {
    const u = new URL(req.url!, "http://x");
    const send = (o: unknown) => res.end(JSON.stringify(o));
    if (u.pathname === "/version") return send({ Version: "20.10.24", ApiVersion: "1.41" });
    if (u.pathname === "/info") return send({ DockerRootDir: "/nonexistent" });
    if (u.pathname === "/networks") return send([]);
    if (u.pathname === "/containers/json") {
      const f = u.searchParams.get("filters");
      await beforeList(f ?? "");
      const ids: string[] | undefined = f ? JSON.parse(f).id : undefined;
      return send([...running.values()].filter((c) => !ids || ids.includes(c.Id)));
    }
    const m = /^\/containers\/(\w+)\/json$/.exec(u.pathname);
    if (m && running.has(m[1]!)) return send({ ...running.get(m[1]!), Name: running.get(m[1]!)!.Names[0], State: { Running: true, Status: "running" } });
    res.statusCode = 404;
    send({ message: "no such container" });
  });
  const sock = join(mkdtempSync(join(tmpdir(), "dockwall-engine-")), "d.sock");
  await new Promise<void>((r) => srv.listen(sock, r));
  const engine = new Engine({ socketPath: sock, describe: `unix://${sock}` });
  return {
    engine,
    close: () => {
      engine.close();
      srv.close();
    },
  };
}

/** A daemon running web (X); `during` runs while the first quick read is held. What the read answered, and the filtered lists asked for. */
async function quickRead(during: (e: Engine, running: Map<string, ReturnType<typeof ctr>>) => void): Promise<{ got: string[]; reads: string[] }> {
  const running = new Map([[X, ctr(X, "web", "172.17.0.2")]]);
  let hold: (() => void) | undefined;
  const reads: string[] = [];
  const { engine: e, close } = await fakeDaemon(running, async (f) => {
    if (f && !hold) await new Promise<void>((r) => (hold = r)); // the first quick list: answered when the test says
    if (f) reads.push((JSON.parse(f).id as string[]).join(","));
  });
  try {
    expect((await e.facts()).containers.length).toBe(1); // web
    running.set(Y, ctr(Y, "api", "172.17.0.3"));
    e.forget(Y); // api's start event
    const quick = e.changedFacts();
    while (!hold) await new Promise((r) => setTimeout(r, 5));
    during(e, running);
    hold();
    return { got: (await quick).containers.map((c) => (c as { Id: string }).Id).sort(), reads };
  } finally {
    close();
  }
}

test("a container an event names during a quick read for another stays in its facts, read again before the answer", async () => {
  // web: exec_create (a health check) while the quick read is under way.
  const { got, reads } = await quickRead((e) => e.forget(X));
  expect(got, "web runs and nothing about it changed").toEqual([X, Y]);
  expect(reads.filter((r) => r.includes(X))).toHaveLength(1);
});

test("a container removed during a quick read is not in its answer", async () => {
  const { got } = await quickRead((e, running) => {
    running.delete(X);
    e.forget(X);
  });
  expect(got).toEqual([Y]);
});

test("everything forgotten during a quick read (the event stream reopened): the answer is a read of every container, not of those asked about alone", async () => {
  const { got, reads } = await quickRead((e) => e.forget());
  expect(got).toEqual([X, Y]);
  expect(reads).toEqual([Y]);
});

test("a read in full that gives way to an event (watch: the read after the events) ends before its answers, and leaves the client as it was: the event's read is a quick one", async () => {
  const running = new Map([[X, ctr(X, "web", "172.17.0.2")]]);
  let hold: (() => void) | undefined;
  const asked: string[] = [];
  const { engine: e, close } = await fakeDaemon(running, async (f) => {
    asked.push(f ? "quick" : "full");
    // The second full list: held until the test lets it go (or its client gives up on it).
    if (!f && asked.filter((a) => a === "full").length === 2) await new Promise<void>((r) => (hold = r));
  });
  try {
    await e.facts();
    const ac = new AbortController();
    const full = e.facts(ac.signal);
    while (!hold) await new Promise((r) => setTimeout(r, 5));
    // api starts: its event aborts the read in full.
    running.set(Y, ctr(Y, "api", "172.17.0.3"));
    e.forget(Y);
    ac.abort();
    await expect(full).rejects.toThrow(/gave way to an event/);
    const quick = await e.changedFacts();
    expect(quick.containers.map((c) => (c as { Id: string }).Id).sort()).toEqual([X, Y]);
    expect(asked).toEqual(["full", "full", "quick"]);
    hold!();
  } finally {
    close();
  }
});
