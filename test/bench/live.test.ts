// The watch benchmark's fake daemon (bench/fake-engine.mjs, bench/live.ts): it follows GET
// /events as dockerd does, and the bench's own POST /bench/start and /bench/die change what it
// lists and inspects and send one event each, which dockwall's Engine client (the one `dockwall
// watch` follows) reads. No timings are asserted.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { containerName, engineAnswers, engineFacts, startFakeEngine, type FakeEngine } from "../../bench/engine.js";
import { Engine, engineEndpoint } from "../../src/facts/engine.js";

describe("the fake daemon's events (bench/fake-engine.mjs)", () => {
  const n = 5;
  const all = engineFacts(n + 2).containers;
  let dir: string;
  let server: FakeEngine;
  let engine: Engine;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-live-bench-"));
    server = await startFakeEngine(dir, engineAnswers(engineFacts(n)));
    engine = new Engine(engineEndpoint({ DOCKER_HOST: server.dockerHost }));
  });
  afterAll(() => {
    engine?.close();
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const names = (f: { containers: unknown[] }) => f.containers.map((c) => (c as { Name: string }).Name);

  test("a start is listed first and inspected, a die is gone; each is one event on every open stream, as dockerd writes it", async () => {
    expect(await server.start(all[n]!)).toBe(0); // nobody follows yet: the container runs, no event is sent
    const events: Record<string, unknown>[] = [];
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    const stream = engine.events((e) => events.push(e), () => opened());
    await open;
    const started = all[n + 1]!;
    expect(await server.start(started)).toBe(1);
    let f = await engine.facts();
    expect(names(f).slice(0, 2)).toEqual([`/${containerName(n + 1)}`, `/${containerName(n)}`]);
    expect(f.containers).toHaveLength(n + 2);
    expect(await server.die(all[n]!.Id)).toBe(1);
    f = await engine.facts();
    expect(names(f)).not.toContain(`/${containerName(n)}`);
    expect(f.containers).toHaveLength(n + 1);
    for (let i = 0; i < 50 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    stream.close();
    await stream.done;
    expect(events.map((e) => [e.Type, e.Action, (e.Actor as { Attributes: { name: string } }).Attributes.name])).toEqual([
      ["container", "start", containerName(n + 1)],
      ["container", "die", containerName(n)],
    ]);
    expect(events[0]).toMatchObject({ status: "start", id: started.Id, from: started.Config.Image, scope: "local", Actor: { ID: started.Id } });
    expect(Number.isInteger(events[0]!.timeNano)).toBe(true);
  });
});
