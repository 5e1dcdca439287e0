// The --docker benchmark's fake daemon (bench/engine.ts, bench/fake-engine.mjs): generated
// facts are in the Engine API's shape and compile without errors, one DNAT per container; the
// fake daemon serves them as dockerd does. No timings are asserted.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { containerName, engineAnswers, engineFacts, enginePolicy, FIRST_PORT, startFakeEngine, type FakeEngine } from "../../bench/engine.js";
import { difference, median, type Measure } from "../../bench/process.js";
import { run } from "../../src/cli.js";
import { readDaemonFacts } from "../../src/facts/engine.js";
import { memoryIo } from "../support/io.js";
import publishTcp from "../facts/corpus/publish-tcp/state.json" with { type: "json" };

/** The keys of an object and of the objects under it, as paths (list entries as []). */
function shape(v: unknown, at = ""): string[] {
  if (Array.isArray(v)) return v.length ? shape(v[0], `${at}[]`) : [];
  if (typeof v !== "object" || v === null) return [];
  return Object.entries(v).flatMap(([k, x]) => [`${at}.${k}`, ...shape(x, `${at}.${k}`)]);
}

async function compileWith(facts: object, policy: string) {
  const io = memoryIo({ "p.dw": policy, "host.json": JSON.stringify(facts) });
  const code = await run(["compile", "p.dw", "--facts", "host.json", "-f", "iptables"], io);
  return { code, out: io.out.join(""), err: io.err.join("") };
}

describe("engineFacts: N running containers in the Engine API's shape", () => {
  const n = 41;
  const f = engineFacts(n);

  test("clones of a real container: the same fields, distinct names, ids, addresses and host ports", () => {
    const template = publishTcp.containers[0]!;
    for (const c of f.containers) expect(shape(c).filter((k) => !k.includes(".Networks.") && !k.includes("Ports.") && !k.includes("PortBindings."))).toEqual(
      shape(template).filter((k) => !k.includes(".Networks.") && !k.includes("Ports.") && !k.includes("PortBindings.")),
    );
    expect(f.containers.map((c) => c.Name)).toEqual(Array.from({ length: n }, (_, i) => `/${containerName(i)}`));
    const distinct = (xs: unknown[]) => new Set(xs).size;
    expect(distinct(f.containers.map((c) => c.Id))).toBe(n);
    expect(f.containers.every((c) => /^[0-9a-f]{64}$/.test(c.Id) && c.LogPath.includes(c.Id) && c.Config.Hostname === c.Id.slice(0, 12))).toBe(true);
    const endpoints = f.containers.map((c) => Object.values(c.NetworkSettings.Networks)[0] as { IPAddress: string; MacAddress: string; EndpointID: string });
    expect(distinct(endpoints.map((e) => e.IPAddress))).toBe(n);
    expect(distinct(endpoints.map((e) => e.MacAddress))).toBe(n);
    expect(distinct(endpoints.map((e) => e.EndpointID))).toBe(n);
    expect(f.containers.map((c) => c.NetworkSettings.Ports["80/tcp"][0].HostPort)).toEqual(Array.from({ length: n }, (_, i) => String(FIRST_PORT + i)));
  });

  test("on the default bridge and three networks of their own, started one after the other", () => {
    expect(f.networks.map((x) => [x.Name, x.Driver])).toEqual([["bridge", "bridge"], ["bench1", "bridge"], ["bench2", "bridge"], ["bench3", "bridge"], ["host", "host"], ["none", "null"]]);
    expect(new Set(f.containers.map((c) => Object.keys(c.NetworkSettings.Networks)[0])).size).toBe(4);
    const started = f.containers.map((c) => c.State.StartedAt as string);
    expect([...started].sort()).toEqual(started);
    expect(new Set(started).size).toBe(n);
    expect(started[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
  });

  test("compile with them as --facts: no errors, a DNAT per container, the allows' containers reachable", async () => {
    const r = await compileWith(f, enginePolicy(n));
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect((r.out.match(/ -j DNAT /g) ?? []).length).toBe(n);
    const opened = r.out.split("\n").filter((l) => l.startsWith("-A DOCKER-USER") && l.includes("192.168.0.0/16"));
    expect(opened.map((l) => /--ctorigdstport (\d+)/.exec(l)?.[1])).toEqual([0, 1, 20, 40].map((i) => String(FIRST_PORT + i)));
  });

  test.each([20, 200])("at %i containers too", async (size) => {
    const r = await compileWith(engineFacts(size), enginePolicy(size));
    expect(r.code).toBe(0);
    expect((r.out.match(/ -j DNAT /g) ?? []).length).toBe(size);
  });
});

describe("the fake daemon (a process of its own, on a unix socket)", () => {
  let dir: string;
  let server: FakeEngine;
  const f = engineFacts(12);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-bench-engine-"));
    server = await startFakeEngine(dir, engineAnswers(f));
  });
  afterAll(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("dockwall's Engine API client reads from it the facts it was given", async () => {
    expect(server.dockerHost).toBe(`unix://${join(dir, "docker.sock")}`);
    const read = await readDaemonFacts({ DOCKER_HOST: server.dockerHost });
    // In the list's order, newest first, as from dockerd (compile orders them by StartedAt).
    expect(read.raw).toEqual({ ...f, containers: [...f.containers].reverse() });
  });

  test("lists the containers as GET /containers/json does, newest first; 404 with dockerd's message for others", async () => {
    const answers = engineAnswers(f);
    const list = answers["/containers/json"] as { Id: string; Names: string[]; State: string; Ports: { PublicPort: number }[] }[];
    expect(list.map((c) => c.Id)).toEqual(f.containers.map((c) => c.Id).reverse());
    expect(list[0]).toMatchObject({ Names: [`/${containerName(11)}`], State: "running", Ports: [{ PublicPort: FIRST_PORT + 11 }, { PublicPort: FIRST_PORT + 11 }] });
    const io = memoryIo({}, { dockerFacts: () => readDaemonFacts({ DOCKER_HOST: server.dockerHost }) });
    expect(await run(["facts"], io)).toBe(0);
    expect((JSON.parse(io.out.join("")) as { containers: unknown[] }).containers).toHaveLength(12);
    const { request } = await import("node:http");
    const answer = await new Promise<{ status?: number; body: string }>((ok) =>
      request({ socketPath: join(dir, "docker.sock"), path: "/v1.41/containers/0123/json" }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => ok({ status: res.statusCode, body }));
      }).end(),
    );
    expect(answer).toEqual({ status: 404, body: '{"message":"No such container: 0123"}\n' });
  });

  test("its CPU time can be read (Linux)", () => {
    expect(server.cpuMs()).toBeGreaterThanOrEqual(0);
  });
});

describe("difference: how much longer ours ran, round by round", () => {
  const of = (perRound: number[]): Measure => ({ medianMs: median(perRound), cpuMs: NaN, peakKb: 0, runs: perRound.length, perRound });

  test("the median of the rounds' differences, not the difference of the medians", () => {
    const d = difference(of([300, 700, 320]), of([100, 480, 500]));
    expect(d.perRound).toEqual([200, 220, -180]);
    expect(d.medianMs).toBe(200);
  });

  test("refuses measurements not taken in the same rounds", () => {
    expect(() => difference(of([1, 2]), of([1]))).toThrow(/same rounds/);
  });
});
