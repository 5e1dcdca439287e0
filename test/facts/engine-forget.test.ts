// A review (exec and health-check events on a real dockerd, then this repro): an event naming a running container X while a quick read (changedFacts) for
// another container is under way drops X from that read's facts (its rules are deleted).
import { createServer } from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { Engine } from "../../src/facts/engine.js";

const ctr = (id: string, name: string, ip: string) => ({ Id: id, Names: [`/${name}`], State: "running", Ports: [], NetworkSettings: { Networks: { bridge: { NetworkID: "n", IPAddress: ip } } } });
const X = "a".repeat(64), Y = "b".repeat(64);

test("a container forgotten (exec event) during a quick read for another is left out of its facts", async () => {
  const running = new Map([[X, ctr(X, "web", "172.17.0.2")]]);
  let hold: (() => void) | undefined;
  const reads: string[] = [];
  const srv = createServer(async (req, res) => {
    const u = new URL(req.url!, "http://x");
    const send = (o: unknown) => res.end(JSON.stringify(o));
    if (u.pathname === "/version") return send({ Version: "20.10.24", ApiVersion: "1.41" });
    if (u.pathname === "/info") return send({ DockerRootDir: "/nonexistent" });
    if (u.pathname === "/networks") return send([]);
    if (u.pathname === "/containers/json") {
      const f = u.searchParams.get("filters");
      if (f && !hold) await new Promise<void>((r) => (hold = r)); // the first quick list: answered when the test says
      const ids: string[] | undefined = f ? JSON.parse(f).id : undefined;
      if (ids) reads.push(ids.join(","));
      return send([...running.values()].filter((c) => !ids || ids.includes(c.Id)));
    }
    const m = /^\/containers\/(\w+)\/json$/.exec(u.pathname);
    if (m && running.has(m[1]!)) return send({ ...running.get(m[1]!), Name: running.get(m[1]!)!.Names[0], State: { Running: true, Status: "running" } });
    res.statusCode = 404;
    send({ message: "no such container" });
  });
  const sock = join(mkdtempSync(join(tmpdir(), "rvw-eng-")), "d.sock");
  await new Promise<void>((r) => srv.listen(sock, r));
  const e = new Engine({ socketPath: sock, describe: `unix://${sock}` });
  try {
    const full = await e.facts();
    expect(full.containers.length).toBe(1); // web
    running.set(Y, ctr(Y, "api", "172.17.0.3"));
    e.forget(Y); // api's start event
    const quick = e.changedFacts();
    while (!hold) await new Promise((r) => setTimeout(r, 5));
    e.forget(X); // web: exec_create (a health check) while the quick read is under way
    hold();
    const got = (await quick).containers.map((c) => (c as { Id: string }).Id);
    expect(got).toContain(Y);
    expect(got, "web runs and nothing about it changed").toContain(X);
    // web, named during that read, was read again before the answer (a second review: a container removed meanwhile
    // was answered with as kept, beside the next one given its address).
    expect(reads.filter((r) => r.includes(X))).toHaveLength(1);
  } finally {
    e.close();
    srv.close();
  }
});
