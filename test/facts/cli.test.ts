// --facts, --docker, `dockwall facts` and `dockwall init` as a user runs them: what a policy
// that names containers compiles to, and one clear error (exit 2, nothing written) for facts
// that are wrong, a daemon that is not there, that fails or that hangs up.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { run } from "../../src/cli.js";
import { compile } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { readDaemonFacts } from "../../src/facts/engine.js";
import { memoryIo } from "../support/io.js";

const corpus = new URL("./corpus/", import.meta.url).pathname;
const state = (name: string) => readFileSync(join(corpus, name, "state.json"), "utf8");
const compose = readFileSync(new URL("./compose/state.json", import.meta.url).pathname, "utf8");

const HEAD = `docker { version 20.10; iptables off; userland-proxy off; }\nzone lan { interface eth1; from 192.168.1.0/24; }\n`;

async function dw(args: string[], files: Record<string, string>) {
  const io = memoryIo(files);
  const code = await run(args, io);
  return { code, out: io.out.join(""), err: io.err.join(""), files: io.files };
}

function rules(out: string): string[] {
  return out.split("\n").filter((l) => l.startsWith("-A DOCKER-USER") || l.startsWith("-A DOCKWALL"));
}

describe("a policy that names containers, with --facts", () => {
  test("allow NAME with no port: every port NAME publishes (-P's ephemeral ports too)", async () => {
    const r = await dw(["compile", "p.dw", "--facts", "host.json", "-f", "iptables"], { "p.dw": HEAD + "allow lan to web;\n", "host.json": state("publish-all") });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const opened = rules(r.out).filter((l) => l.includes("192.168.1.0/24"));
    expect(opened.map((l) => /--ctorigdstport (\d+)/.exec(l)?.[1])).toEqual(["32768", "32769"]);
  });

  test("a port of a container the policy does not declare", async () => {
    const r = await dw(["compile", "p.dw", "--facts", "host.json", "-f", "iptables"], { "p.dw": HEAD + "allow lan to web:32769;\n", "host.json": state("publish-all") });
    expect(r.code).toBe(0);
    expect(rules(r.out).filter((l) => l.includes("192.168.1.0/24")).length).toBe(1);
  });

  test("a name no running container has: a warning with facts, an error without", async () => {
    const files = { "p.dw": HEAD + "allow lan to web:8080, grafana;\n", "host.json": state("publish-tcp") };
    const withFacts = await dw(["compile", "p.dw", "--facts", "host.json", "-f", "iptables"], files);
    expect(withFacts.code).toBe(0);
    expect(withFacts.err).toBe(
      "p.dw:3:24: warning: no running container is called 'grafana': this allow takes effect when one runs\n" +
        "3 | allow lan to web:8080, grafana;\n" +
        "  |                        ^^^^^^^\n" +
        "  = help: running containers (host.json): web\n",
    );
    const without = await dw(["check", "p.dw"], files);
    expect(without.code).toBe(2);
    expect(without.err).toMatch(/^p\.dw:3:14: error: unknown container 'web'\n/);
    expect(without.err).toMatch(/p\.dw:3:24: error: unknown container 'grafana'\n/);
  });

  test("a compose service: every replica, whatever its container name", async () => {
    const r = await dw(["compile", "p.dw", "--facts", "host.json", "-f", "iptables"], { "p.dw": HEAD + "allow lan to shop/web;\n", "host.json": compose });
    expect(r.code).toBe(0);
    // The other containers of that host publish ports no allow names: warnings about them, none about the replicas.
    expect(r.err).not.toMatch(/shop_web|error/);
    const opened = rules(r.out).filter((l) => l.includes("192.168.1.0/24"));
    // Two replicas, each publishing container port 80 on its own ephemeral host port.
    expect(opened.length).toBe(2);
    expect(new Set(opened.map((l) => /-d (\S+)/.exec(l)?.[1])).size).toBe(2);
    const without = await dw(["check", "p.dw"], { "p.dw": HEAD + "allow lan to shop/web;\n" });
    expect(without.code).toBe(2);
    expect(without.err).toMatch(/error: 'shop\/web' names a compose service, whose containers only Docker knows/);
  });

  test("a declared setting that disagrees with Docker: an error at the policy's line that says what Docker has", async () => {
    const policy = HEAD + "container web { network bridge 172.17.0.9; publish 8080:80; }\nallow lan to web:8080;\n";
    const r = await dw(["check", "p.dw", "--facts", "host.json"], { "p.dw": policy, "host.json": state("publish-tcp") });
    expect(r.code).toBe(2);
    expect(r.err).toContain("p.dw:3:17: error: container 'web' is declared on 'bridge 172.17.0.9', but Docker has it on 'bridge 172.17.0.2'\n");
    expect(r.err).toMatch(/host\.json: container 'web' \([0-9a-f]{12}\): note: what Docker has\n/);
  });

  test("a declared container that is not running: a warning", async () => {
    const policy = HEAD + "container db { network bridge 172.17.0.5; }\n";
    const r = await dw(["check", "p.dw", "--facts", "host.json"], { "p.dw": policy, "host.json": state("publish-tcp") });
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^p\.dw:3:11: warning: container 'db' is declared, but is not running; it gets no rules until it runs\n/);
  });

  test("names that start with a digit, as Docker allows", async () => {
    const policy = HEAD + "container 1app { network bridge 172.17.0.2; publish 8080:80; }\nallow lan to 1app:8080;\n";
    const r = compile(policy, { format: "iptables" });
    expect(r.ok, formatDiagnostics(r.diagnostics, "p.dw", policy)).toBe(true);
  });

  test("version auto takes the daemon's version from the facts", async () => {
    const facts = JSON.parse(state("publish-tcp")) as Record<string, unknown>;
    facts.version = { Version: "28.5.2+dfsg1" };
    const r = await dw(["compile", "p.dw", "--facts", "host.json", "-f", "iptables"], { "p.dw": "docker { version auto; iptables off; userland-proxy off; published open; }\n", "host.json": JSON.stringify(facts) });
    expect(r.err).toBe("");
    expect(r.out).toContain("# Docker 28.5.2, iptables off");
    const none = await dw(["check", "p.dw"], { "p.dw": "docker { version auto; }\n" });
    expect(none.code).toBe(2);
  });
});

describe("bad facts: one clear error, exit 2, nothing written", () => {
  const policy = HEAD + "allow lan to web;\n";
  const container = (JSON.parse(state("publish-tcp")) as { containers: Record<string, unknown>[] }).containers[0]!;
  const withContainer = (c: unknown) => JSON.stringify({ ...JSON.parse(state("publish-tcp")), containers: [c] });
  const noAddress = structuredClone(container) as { NetworkSettings: { Networks: { bridge: { IPAddress: string } } } };
  noAddress.NetworkSettings.Networks.bridge.IPAddress = "";
  const noState = { ...container };
  delete noState.State;
  const cases: [string, string, string][] = [
    ["not JSON", "{ networks: [", "dockwall: host.json: not JSON: "],
    ["not the facts' form", "[]", `dockwall: host.json: expected {"networks": [...], "containers": [...]}`],
    ["a container without its State", withContainer(noState), "host.json: container 'web' ("],
    ["a container with no address on its network", withContainer(noAddress), "error: it has no IPv4 address on network 'bridge'"],
  ];
  test.each(cases)("%s", async (_what, facts, message) => {
    const r = await dw(["compile", "p.dw", "--facts", "host.json", "-o", "out.v4", "-f", "iptables"], { "p.dw": policy, "host.json": facts });
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.err.match(/error/g)?.length ?? 1).toBeLessThanOrEqual(2); // the error, and the "1 error" line
    expect(r.files.has("out.v4")).toBe(false);
  });
});

describe("the Engine API client (a fake daemon on a unix socket)", () => {
  let dir: string;
  let server: Server;
  let answer: (path: string, res: import("node:http").ServerResponse) => void;
  const facts = JSON.parse(state("multi-net-zback")) as { networks: unknown[]; containers: { Id: string }[] };
  /** GET /info's answer (a few of its many fields): dockwall keeps only FirewallBackend (Docker 29+). */
  let info: Record<string, unknown> = { ID: "X7QZ:HOST", Name: "host.example", Containers: 1, HttpProxy: "http://user:xxxxx@proxy:3128" };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dockwall-engine-"));
    server = createServer((req, res) => answer(req.url ?? "", res));
    await new Promise<void>((r) => server.listen(join(dir, "docker.sock"), r));
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = () => ({ DOCKER_HOST: `unix://${join(dir, "docker.sock")}` });
  const json = (res: import("node:http").ServerResponse, v: unknown, status = 200) => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(v));
  };
  const daemon = (path: string, res: import("node:http").ServerResponse) => {
    if (path === "/version") return json(res, { Version: "20.10.24+dfsg1", ApiVersion: "1.41" });
    if (path === "/info") return json(res, info);
    if (path === "/networks") return json(res, facts.networks);
    if (path === "/containers/json") return json(res, facts.containers.map((c) => ({ Id: c.Id })));
    const m = /^\/containers\/([0-9a-f]+)\/json$/.exec(path);
    const c = m && facts.containers.find((x) => x.Id === m[1]);
    if (c) return json(res, c);
    json(res, { message: "no such container" }, 404);
  };

  test("reads the facts; compile --docker gives what --facts gives", async () => {
    answer = daemon;
    const read = await readDaemonFacts(env());
    expect(read.source).toBe(env().DOCKER_HOST);
    expect(read.raw.containers).toEqual(facts.containers);
    const policy = "docker { version auto; iptables off; userland-proxy off; published open; }\n";
    const io = memoryIo({ "p.dw": policy, "host.json": JSON.stringify({ ...facts, version: { Version: "20.10.24" } }) }, { dockerFacts: () => readDaemonFacts(env()) });
    expect(await run(["compile", "p.dw", "--docker", "-f", "iptables"], io)).toBe(0);
    const viaDocker = io.out.splice(0).join("");
    expect(await run(["compile", "p.dw", "--facts", "host.json", "-f", "iptables"], io)).toBe(0);
    expect(io.out.join("").replace(/from p\.dw.*\n/, "")).toBe(viaDocker.replace(/from p\.dw.*\n/, ""));
    expect(io.err.join("")).toBe("");
  });

  test("a long-lived client inspects again only what changed, or what an event named", async () => {
    const paths: string[] = [];
    answer = (path, res) => {
      paths.push(path);
      daemon(path, res);
    };
    const { Engine, engineEndpoint } = await import("../../src/facts/engine.js");
    const engine = new Engine(engineEndpoint(env()));
    try {
      const inspections = () => paths.filter((p) => /^\/containers\/[0-9a-f]+\/json$/.test(p)).length;
      const first = await engine.facts();
      expect(inspections()).toBe(1);
      expect(await engine.facts()).toEqual(first);
      expect(inspections()).toBe(1); // nothing changed: nothing inspected
      engine.forget(facts.containers[0]!.Id);
      await engine.facts();
      expect(inspections()).toBe(2); // an event named it
      engine.forget();
      await engine.facts();
      expect(inspections()).toBe(3); // the stream was reopened: everything again
      expect(paths.filter((p) => p === "/version")).toHaveLength(2);
      expect(paths.filter((p) => p === "/info")).toHaveLength(2);
      // The list says something else of it (another address): inspected again, with no event.
      answer = (path, res) => {
        paths.push(path);
        if (path === "/containers/json") return json(res, facts.containers.map((c) => ({ Id: c.Id, NetworkSettings: { Networks: { front: { IPAddress: "172.27.0.99" } } } })));
        daemon(path, res);
      };
      await engine.facts();
      expect(inspections()).toBe(4);
      await engine.facts();
      expect(inspections()).toBe(4);
      // Renamed (its event lost): the list's names differ, inspected again (a review: the list's signature had no name).
      answer = (path, res) => {
        paths.push(path);
        if (path === "/containers/json") return json(res, facts.containers.map((c) => ({ Id: c.Id, Names: ["/renamed"], NetworkSettings: { Networks: { front: { IPAddress: "172.27.0.99" } } } })));
        daemon(path, res);
      };
      await engine.facts();
      expect(inspections()).toBe(5);
    } finally {
      engine.close();
    }
  });

  test("quick reads (watch, after events): only the containers an event named are inspected, the list is not read; one that stopped or is gone leaves", async () => {
    const paths: string[] = [];
    // Two containers: the corpus's (app), and another started after it.
    const app = structuredClone(facts.containers[0]!) as { Id: string; Name: string; State: { Running: boolean } };
    const other = { ...structuredClone(app), Id: "b".repeat(64), Name: "/other" };
    let running = [app];
    answer = (path, res) => {
      paths.push(path);
      const [route, query] = path.split("?");
      if (route === "/containers/json") {
        const ids = query ? (JSON.parse(decodeURIComponent(query.replace(/^filters=/, ""))) as { id: string[] }).id : undefined;
        return json(res, running.filter((c) => c.State.Running && (!ids || ids.some((id) => c.Id.startsWith(id)))).map((c) => ({ Id: c.Id, State: "running" })));
      }
      const m = /^\/containers\/([0-9a-f]+)\/json$/.exec(path);
      if (m) {
        const c = running.find((x) => x.Id === m[1]);
        return c ? json(res, c) : json(res, { message: "no such container" }, 404);
      }
      daemon(path, res);
    };
    const { Engine, engineEndpoint } = await import("../../src/facts/engine.js");
    const engine = new Engine(engineEndpoint(env()));
    const names = (raw: { containers: unknown[] }) => raw.containers.map((c) => (c as { Name: string }).Name).sort();
    try {
      // Nothing read yet: the quick read is a full one.
      expect(names(await engine.changedFacts())).toEqual(["/app"]);
      expect(paths.filter((p) => p === "/containers/json")).toHaveLength(1);
      paths.length = 0;
      // other starts: its event names it; only it is inspected, and the list is not read.
      running = [app, other];
      engine.forget(other.Id);
      expect(names(await engine.changedFacts())).toEqual(["/app", "/other"]);
      expect(paths.sort()).toEqual([`/containers/${other.Id}/json`, `/containers/json?filters=${encodeURIComponent(JSON.stringify({ id: [other.Id] }))}`, "/networks"]);
      paths.length = 0;
      // Nothing named since: nothing inspected.
      expect(names(await engine.changedFacts())).toEqual(["/app", "/other"]);
      expect(paths).toEqual(["/networks"]);
      // app stops and other is removed: both leave, neither is inspected (a container that is starting is
      // not either: dockerd would answer its inspection only once it has started).
      running = [{ ...app, State: { ...app.State, Running: false } }];
      engine.forget(app.Id);
      engine.forget(other.Id);
      paths.length = 0;
      expect(names(await engine.changedFacts())).toEqual([]);
      expect(paths.filter((p) => /^\/containers\/[0-9a-f]+\/json$/.test(p))).toEqual([]);
      // A dropped event: the quick read cannot know, the full read that follows can (the watcher does it).
      running = [app, other];
      paths.length = 0;
      expect(names(await engine.changedFacts())).toEqual([]);
      expect(names(await engine.facts())).toEqual(["/app", "/other"]);
      expect(paths.filter((p) => /^\/containers\/[0-9a-f]+\/json$/.test(p))).toHaveLength(2);
      // A read that fails: the next one is whole.
      answer = (path, res) => (paths.push(path), path === "/networks" ? json(res, { message: "boom" }, 500) : daemon(path, res));
      engine.forget(app.Id);
      await expect(engine.changedFacts()).rejects.toThrow(/HTTP 500/);
      answer = (path, res) => (paths.push(path), path.startsWith("/containers/json") ? json(res, [{ Id: app.Id }]) : daemon(path, res));
      paths.length = 0;
      expect(names(await engine.changedFacts())).toEqual(["/app"]);
      expect(paths).toContain("/containers/json");
      // After forget() (the event stream reopened) too.
      engine.forget();
      paths.length = 0;
      await engine.changedFacts();
      expect(paths).toContain("/containers/json");
    } finally {
      engine.close();
    }
  });

  test("dockwall facts writes what --facts reads", async () => {
    answer = daemon;
    const io = memoryIo({}, { dockerFacts: () => readDaemonFacts(env()) });
    expect(await run(["facts", "-o", "host.json"], io)).toBe(0);
    const saved = JSON.parse(io.files.get("host.json")!) as { version: { Version: string }; info: unknown; containers: unknown[] };
    expect(saved.version.Version).toBe("20.10.24+dfsg1");
    expect(saved.info).toEqual({}); // nothing of /info but the firewall backend, which 20.10 does not report
    expect(saved.containers).toEqual(facts.containers);
  });

  test("a daemon on Docker's nftables firewall backend: 'iptables on' refused with --docker, and the backend saved by 'dockwall facts'", async () => {
    answer = daemon;
    info = { ID: "X7QZ:HOST", FirewallBackend: { Driver: "nftables", Info: [["ReloadedAt", "2026-11-30T10:00:00Z"]] } };
    try {
      const io = memoryIo({ "p.dw": "docker { version 29; iptables on; published open; }\n" }, { dockerFacts: () => readDaemonFacts(env()) });
      expect(await run(["facts", "-o", "host.json"], io)).toBe(0);
      expect(JSON.parse(io.files.get("host.json")!).info).toEqual({ FirewallBackend: info.FirewallBackend });
      expect(await run(["compile", "p.dw", "--docker", "-o", "out.conf"], io)).toBe(2);
      const err = io.err.join("");
      expect(err).toMatch(/^p\.dw:1:22: error: Docker's nftables firewall backend has no DOCKER-USER chain/);
      expect(err).toContain(`${env().DOCKER_HOST}: the daemon: note: its firewall backend is nftables `);
      expect(io.files.has("out.conf")).toBe(false);
    } finally {
      info = {};
    }
  });

  const failures: [string, (path: string, res: import("node:http").ServerResponse) => void, RegExp][] = [
    ["HTTP 500", (_p, res) => json(res, { message: "an internal error" }, 500), /it answered HTTP 500 \(an internal error\)$/],
    ["closes the connection", (_p, res) => res.socket?.destroy(), /it closed the connection without answering$/],
    ["answers something else than JSON", (_p, res) => res.end("<html>"), /its answer is not JSON \("<html>"\); is that a Docker daemon\?$/],
  ];
  test.each(failures)("a daemon that %s: one clear error, exit 2, nothing written", async (_what, handler, message) => {
    answer = handler;
    const io = memoryIo({ "p.dw": "docker { version 20.10; }\n" }, { dockerFacts: () => readDaemonFacts(env()) });
    expect(await run(["compile", "p.dw", "--docker", "-o", "out.conf"], io)).toBe(2);
    const err = io.err.join("");
    expect(err.split("\n").filter(Boolean)).toHaveLength(1);
    expect(err.trim()).toMatch(/^dockwall: cannot read \/\S+ from dockerd at unix:\/\/\S+: /);
    expect(err.trim()).toMatch(message);
    expect(io.files.has("out.conf")).toBe(false);
  });

  test("no daemon there", async () => {
    const io = memoryIo({ "p.dw": "docker { version 20.10; }\n" }, { dockerFacts: () => readDaemonFacts({ DOCKER_HOST: `unix://${dir}/none.sock` }) });
    expect(await run(["check", "p.dw", "--docker"], io)).toBe(2);
    expect(io.err.join("")).toMatch(/: no dockerd is listening there \(is it running\? is DOCKER_HOST right\?\)\n$/);
  });
});

describe("dockwall init", () => {
  test("a starter policy that compiles with the same facts and allows every published port from anywhere", async () => {
    for (const name of ["publish-all", "multi-net-zback", "publish-localhost"]) {
      const init = await dw(["init", "--facts", "host.json"], { "host.json": state(name) });
      expect(init.code).toBe(0);
      const policy = init.out.replace("# version 20.10;", "version 20.10;");
      const r = compile(policy, { format: "iptables", facts: { raw: JSON.parse(state(name)), source: "host.json" } });
      expect(r.ok, formatDiagnostics(r.diagnostics, "init.dw", policy)).toBe(true);
      expect(r.diagnostics).toEqual([]);
    }
  });

  test("a dockerd with \"iptables\": false (its default bridge says masquerading off): iptables off, saying why; it compiles with the facts", async () => {
    const init = await dw(["init", "--facts", "host.json"], { "host.json": state("iptables-off") });
    expect(init.code).toBe(0);
    expect(init.out).toContain(
      `  # dockerd reports masquerading off on its default bridge: it runs with "iptables": false\n  # (dockwall then writes Docker's chains too), or with "ip-masq": false. Check daemon.json:\n  # with "ip-masq": false instead, write 'iptables on;' and 'ip-masq off;'.\n  iptables off;\n`,
    );
    const policy = init.out.replace("# version 20.10;", "version 20.10;");
    const r = compile(policy, { format: "iptables", facts: { raw: JSON.parse(state("iptables-off")), source: "host.json" } });
    expect(r.ok, formatDiagnostics(r.diagnostics, "init.dw", policy)).toBe(true);
  });

  test("check: iptables on for a daemon whose default bridge says masquerading off is an error at the iptables line, until the policy says which", async () => {
    const on = "docker { version 20.10; iptables on; }\n";
    const r = await dw(["check", "p.dw", "--facts", "host.json"], { "p.dw": on, "host.json": state("iptables-off") });
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      `p.dw:1:25: error: the docker block says iptables on, but the daemon's default bridge has masquerading off, as dockerd has it when it runs with "iptables": false (or with "ip-masq": false)\n` +
        `1 | docker { version 20.10; iptables on; }\n` +
        `  |                         ^^^^^^^^\n` +
        `  = help: if daemon.json says "iptables": false, write 'iptables off;' (dockwall then writes Docker's chains); if it says "ip-masq": false, write 'ip-masq off;' in the docker block\n`,
    );
    const ok = await dw(["check", "p.dw", "--facts", "host.json"], { "p.dw": on.replace("iptables on;", "iptables on; ip-masq off;"), "host.json": state("iptables-off") });
    expect(ok.code).toBe(0);
  });

  test("a container published on 127.0.0.1 only: no allow for it (none opens it from outside), a comment saying so (a review: the starter policy allowed it, which opens nothing)", async () => {
    const init = await dw(["init", "--facts", "host.json"], { "host.json": state("publish-localhost") });
    expect(init.code).toBe(0);
    expect(init.out).toContain("# 'web' publishes 127.0.0.1:9000/tcp: on loopback only, the host's own; no allow opens it from outside.\n");
    expect(init.out).not.toMatch(/^allow /m);
  });

  test("needs facts", async () => {
    const r = await dw(["init"], {});
    expect(r.code).toBe(2);
    expect(r.err).toContain("init needs Docker's facts: --docker (ask the daemon) or --facts FILE");
  });
});
