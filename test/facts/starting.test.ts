// A container that is starting, given as running from its files in Docker's data root and its
// networks' objects (issue 26, item 2): the rules compiled from it are exactly those of the
// container once it runs, for every container of the docker corpus (a real dockerd 20.10);
// a port Docker has not chosen yet, an endpoint not made yet or gone, leave it out. The
// long-lived Engine client gives it only while it is starting; the watcher tells the client at
// a network `connect` event.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { Engine, engineEndpoint } from "../../src/facts/engine.js";
import { containerFiles, startingContainer } from "../../src/facts/starting.js";
import { Watcher } from "../../src/watch/watcher.js";

type Obj = Record<string, any>;
const corpus = new URL("./corpus/", import.meta.url).pathname;
const state = (name: string): { networks: Obj[]; containers: Obj[]; version?: unknown } => JSON.parse(readFileSync(join(corpus, name, "state.json"), "utf8"));

/** What Docker writes at create: config.v2.json (name, config, the networks asked for, no addresses yet) and hostconfig.json. */
function filesOf(c: Obj): { config: Obj; hostConfig: Obj } {
  const nets = Object.fromEntries(Object.keys(c.NetworkSettings.Networks).map((n) => [n, { IPAMConfig: null, NetworkID: "", IPAddress: "", GlobalIPv6Address: "" }]));
  return { config: { ID: c.Id, Name: c.Name, Config: c.Config, State: { Running: false, StartedAt: "0001-01-01T00:00:00Z" }, NetworkSettings: { Networks: nets, Ports: null } }, hostConfig: c.HostConfig };
}

const networksByName = (s: { networks: Obj[] }) => new Map(s.networks.map((n) => [n.Name as string, n as unknown]));

/** A policy that uses every path: published closed, an allow per container, a host block, docker-proxy guarded where the daemon runs it. */
function closedPolicy(s: { containers: Obj[] }, scenarioPolicy: string): string {
  const names = s.containers.map((c) => (c.Name as string).slice(1));
  const proxy = /userland-proxy off;/.test(scenarioPolicy) ? " userland-proxy off;" : "";
  return `docker { version 20.10; iptables off; published closed;${proxy} }\nzone lan { interface eth1; from 192.168.1.0/24; }\n${names.map((n) => `allow lan to ${n};\n`).join("")}host { allow lan tcp 22; }\n`;
}

describe("a starting container compiles to the rules of the running one (docker corpus)", () => {
  const scenarios = readdirSync(corpus).filter((s) => state(s).containers.length > 0).sort();
  test("the corpus has containers that publish, on one network and on several", () => {
    expect(scenarios.length).toBeGreaterThanOrEqual(15);
    expect(scenarios).toContain("multi-net-zback");
  });
  describe.each(scenarios)("%s", (name) => {
    const s = state(name);
    const scenarioPolicy = readFileSync(join(corpus, name, "policy.dw"), "utf8");
    const policies = [scenarioPolicy, closedPolicy(s, scenarioPolicy)];
    for (const c of s.containers) {
      const ephemeral = c.HostConfig.PublishAllPorts === true || Object.values((c.HostConfig.PortBindings ?? {}) as Record<string, Obj[] | null>).some((l) => l?.some((b) => !/^\d+$/.test(b.HostPort)));
      const running = c.State.Running === true;
      test(`${c.Name}: ${!running ? "not running in the capture" : ephemeral ? "a port Docker chooses as it starts: left to the start event" : "the same rules, IPv4 and IPv6, for every path"}`, () => {
        const { config, hostConfig } = filesOf(c);
        const got = startingContainer(c.Id, config, hostConfig, networksByName(s), c.State.StartedAt);
        if (!running) return;
        if (ephemeral) {
          expect(got).toMatch(/^Docker chooses the host ports? of (\d+\/(tcp|udp)|-P \(publish all\)) only as it starts/);
          return;
        }
        expect(typeof got).toBe("object");
        const starting = { ...s, containers: s.containers.map((x) => (x === c ? got : x)) };
        for (const policy of policies) {
          for (const format of ["iptables", "ip6tables"] as const) {
            const want = compile(policy, { format, file: "p.dw", facts: { raw: s, source: "running" } });
            const have = compile(policy, { format, file: "p.dw", facts: { raw: starting, source: "running" } });
            expect(want.ok, formatDiagnostics(want.diagnostics, "p.dw", policy)).toBe(true);
            expect(have.output).toBe(want.output);
          }
        }
      });
    }
  });
});

describe("what leaves a starting container out", () => {
  const s = state("multi-net-zback");
  const c = s.containers[0]!;
  const { config, hostConfig } = filesOf(c);
  test("an endpoint not made yet on one of its networks (it joins them one after the other)", () => {
    const nets = networksByName(s);
    const zback = structuredClone(nets.get("zback")) as Obj;
    zback.Containers = {};
    nets.set("zback", zback);
    expect(startingContainer(c.Id, config, hostConfig, nets, "now")).toBe("its endpoint on network 'zback' is not made yet");
  });
  test("a network that is not a bridge (host, macvlan)", () => {
    const nets = networksByName(s);
    nets.set("front", { ...(nets.get("front") as Obj), Driver: "macvlan" });
    expect(startingContainer(c.Id, config, hostConfig, nets, "now")).toBe("network 'front' is not a bridge network");
  });
  test("a range of host ports (Docker picks one as it starts)", () => {
    const h = { ...hostConfig, PortBindings: { "80/tcp": [{ HostIp: "", HostPort: "8080-8090" }] } };
    expect(startingContainer(c.Id, config, h, networksByName(s), "now")).toBe("Docker chooses the host port of 80/tcp only as it starts (the range 8080-8090)");
  });
});

describe("the Engine client gives a starting container while it starts, and only then", () => {
  let dir: string;
  let server: Server;
  const s = state("publish-tcp");
  const c = s.containers[0]!;
  const files = filesOf(c);
  /** What the fake daemon shows: is the container running yet (in the list), is its endpoint made. */
  let running = false;
  let endpoint = true;
  let answer: (path: string, res: ServerResponse) => void;
  const disk = new Map<string, string>();
  const json = (res: ServerResponse, v: unknown, status = 200) => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(v));
  };
  const daemon = (path: string, res: ServerResponse) => {
    if (path === "/version") return json(res, { Version: "20.10.24+dfsg1" });
    if (path === "/info") return json(res, { DockerRootDir: "/var/lib/docker", Name: "host" });
    if (path === "/networks") return json(res, s.networks.map((n) => ({ ...n, Containers: {} })));
    if (path === "/containers/json") return json(res, running ? [{ Id: c.Id, State: "running" }] : []);
    const net = /^\/networks\/([^/]+)$/.exec(path);
    const n = net && s.networks.find((x) => x.Name === decodeURIComponent(net[1]!));
    if (n) return json(res, endpoint ? n : { ...n, Containers: {} });
    if (path === `/containers/${c.Id}/json`) return json(res, c);
    json(res, { message: "no such object" }, 404);
  };
  const readDataFile = (p: string) => {
    const t = disk.get(p);
    if (t === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${p}'`), { code: "ENOENT" });
    return t;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-starting-"));
    answer = daemon;
    server = createServer((req, res) => answer(req.url ?? "", res));
    await new Promise<void>((r) => server.listen(join(dir, "docker.sock"), r));
    const where = containerFiles("/var/lib/docker", c.Id);
    disk.set(where.config, JSON.stringify(files.config));
    disk.set(where.hostConfig, JSON.stringify(files.hostConfig));
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = () => ({ DOCKER_HOST: `unix://${join(dir, "docker.sock")}` });

  test("connected, endpoint made: running, at its address, with the ports it asked for; once it runs, the inspection only", async () => {
    running = false;
    endpoint = true;
    const engine = new Engine(engineEndpoint(env()), { readDataFile });
    try {
      expect((await engine.facts()).containers).toEqual([]); // no event: nothing is starting
      engine.connected(c.Id);
      const starting = (await engine.facts()).containers as Obj[];
      expect(starting).toHaveLength(1);
      expect(starting[0]!.Name).toBe("/web");
      expect(starting[0]!.State.Running).toBe(true);
      expect(starting[0]!.NetworkSettings.Networks.bridge.IPAddress).toBe(c.NetworkSettings.Networks.bridge.IPAddress);
      expect(starting[0]!.NetworkSettings.Ports).toEqual({ "80/tcp": [{ HostIp: "", HostPort: "8080" }] });
      running = true;
      expect((await engine.facts()).containers).toEqual([c]);
      running = false; // stopped later: it is not starting any more, whatever the network says
      expect((await engine.facts()).containers).toEqual([]);
    } finally {
      engine.close();
    }
  });

  test("an endpoint not made, or gone (a start that failed): left out, and why", async () => {
    running = false;
    endpoint = false;
    const engine = new Engine(engineEndpoint(env()), { readDataFile });
    try {
      engine.connected(c.Id);
      expect((await engine.facts()).containers).toEqual([]);
      expect([...engine.notYet.values()]).toEqual(["its endpoint on network 'bridge' is not made yet"]);
      endpoint = true;
      expect((await engine.facts()).containers).toHaveLength(1);
      endpoint = false;
      expect((await engine.facts()).containers).toEqual([]);
    } finally {
      engine.close();
    }
  });

  test("its files gone (removed): left out and forgotten", async () => {
    running = false;
    endpoint = true;
    const engine = new Engine(engineEndpoint(env()), { readDataFile: () => readDataFile("/nowhere") });
    try {
      engine.connected(c.Id);
      expect((await engine.facts()).containers).toEqual([]);
      expect([...engine.notYet.values()][0]).toMatch(/^it cannot be read \(ENOENT/);
      expect((await engine.facts()).containers).toEqual([]);
      expect(engine.notYet.size).toBe(0); // not asked again
    } finally {
      engine.close();
    }
  });

  test("a daemon on another host (tcp://): its data root is not here, nothing is read", async () => {
    let read = 0;
    const engine = new Engine(engineEndpoint({ DOCKER_HOST: "tcp://127.0.0.1:1" }), { readDataFile: (p) => (read++, readDataFile(p)) });
    engine.connected(c.Id);
    expect((engine as unknown as { starting: Map<string, number> }).starting.size).toBe(0);
    expect(read).toBe(0);
    engine.close();
  });
});

describe("the watcher tells the facts client at a network connect event", () => {
  test("connect: that container is starting, and only its inspection is forgotten; a network made forgets nothing", async () => {
    const calls: string[] = [];
    let emit!: (e: Record<string, unknown>) => void;
    const w = new Watcher(
      {
        policyName: "p.dw",
        readPolicy: () => "",
        facts: async () => ({ raw: { networks: [], containers: [] }, source: "fake" }),
        forget: (id) => calls.push(`forget ${id ?? "all"}`),
        connected: (id) => calls.push(`connected ${id}`),
        events: (onEvent) => {
          emit = onEvent;
          let end!: () => void;
          return { done: new Promise<void>((r) => (end = r)), close: () => end() };
        },
        save: () => "",
        restore: () => {},
        log: () => {},
        sleep: () => new Promise((r) => setTimeout(r, 1)),
        verbose: false,
        debounceMs: 0,
      },
      "",
    );
    const running = w.run();
    await new Promise((r) => setTimeout(r, 5));
    calls.length = 0;
    emit({ Type: "network", Action: "create", Actor: { ID: "n1", Attributes: { name: "front", type: "bridge" } } });
    emit({ Type: "network", Action: "connect", Actor: { ID: "n1", Attributes: { container: "c1", name: "front", type: "bridge" } } });
    emit({ Type: "network", Action: "disconnect", Actor: { ID: "n1", Attributes: { container: "c1", name: "front", type: "bridge" } } });
    emit({ Type: "container", Action: "start", Actor: { ID: "c1", Attributes: { name: "web" } } });
    expect(calls).toEqual(["forget c1", "connected c1", "forget c1", "forget c1"]);
    w.stop();
    await running;
  });
});
