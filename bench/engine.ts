// Issue #14's benchmark: Docker's facts read from the Engine API (compile --docker, dockwall
// facts) against the same facts read from a file (--facts). The daemon is a fake one
// (bench/fake-engine.mjs, a child process on a unix socket) that answers GET /version,
// /info, /networks, /containers/json and /containers/{id}/json with generated objects in the Engine
// API's exact shape: clones of a real dockerd 20.10 container (test/facts/corpus/publish-tcp)
// with their own names, ids, addresses on a few networks, published ports and start times.
import { spawn } from "node:child_process";
import { request } from "node:http";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import publishTcp from "../test/facts/corpus/publish-tcp/state.json" with { type: "json" };
import compose from "../test/facts/compose/state.json" with { type: "json" };

/** An Engine API object, as loosely typed as JSON. */
type Json = Record<string, any>;

/** The facts as `dockwall facts` writes them and GET /containers/{id}/json answers them. */
export interface EngineFacts {
  version: Json;
  /** What dockwall keeps of GET /info: nothing from a 20.10 daemon (no FirewallBackend before 29). */
  info: Json;
  networks: Json[];
  containers: Json[];
}

/** The user-defined bridge networks the containers are spread over (with the default bridge). */
const NETS = 3;
/** Container i publishes 80/tcp on this host port plus i (on 0.0.0.0 and ::, as dockerd lists it). */
export const FIRST_PORT = 20000;

const hex64 = (what: string) => createHash("sha256").update(`dockwall-bench ${what}`).digest("hex");
/** Docker's RFC 3339 time with nanoseconds (Go drops the fraction's trailing zeros). */
function rfc3339(ns: bigint): string {
  const s = new Date(Number(ns / 1_000_000n)).toISOString().slice(0, 19);
  const frac = String(ns % 1_000_000_000n).padStart(9, "0").replace(/0+$/, "");
  return `${s}${frac ? `.${frac}` : ""}Z`;
}
const T0 = BigInt(Date.parse("2026-11-21T22:43:22Z")) * 1_000_000n;

/** The container name of container i. */
export const containerName = (i: number) => `app${i}`;

/**
 * `containers` running containers: container i is on the default bridge when i % 4 is 0,
 * else on network bench{i % 4}, and publishes 80/tcp on host port FIRST_PORT + i; they started
 * in order, a quarter of a second apart.
 */
export function engineFacts(containers: number): EngineFacts {
  const [bridge, host, none] = structuredClone(publishTcp.networks) as Json[];
  const template = publishTcp.containers[0] as Json;
  const templateText = JSON.stringify(template);
  const bridgeId = bridge!.Id as string;
  // GET /networks lists no endpoints (only a network's own inspection does).
  bridge!.Containers = {};
  const nets: { name: string; id: string; octet: number; obj: Json }[] = [{ name: "bridge", id: bridgeId, octet: 17, obj: bridge! }];
  for (let n = 1; n <= NETS; n++) {
    const id = hex64(`network ${n}`);
    const obj = structuredClone(bridge!);
    Object.assign(obj, { Name: `bench${n}`, Id: id, Created: rfc3339(T0 + BigInt(n) * 1_000_000n), Options: {}, Labels: {} });
    obj.IPAM = { Driver: "default", Options: {}, Config: [{ Subnet: `172.${17 + n}.0.0/16`, Gateway: `172.${17 + n}.0.1` }] };
    nets.push({ name: obj.Name, id, octet: 17 + n, obj });
  }
  const list: Json[] = [];
  for (let i = 0; i < containers; i++) {
    const id = hex64(`container ${i}`);
    const net = nets[i % nets.length]!;
    const k = Math.floor(i / nets.length) + 2; // .0.2 onwards, as dockerd hands them out
    const ip = `172.${net.octet}.${k >> 8}.${k & 255}`;
    const mac = `02:42:ac:${[net.octet, k >> 8, k & 255].map((x) => x.toString(16).padStart(2, "0")).join(":")}`;
    const endpointId = hex64(`endpoint ${i}`);
    const name = containerName(i);
    const hostPort = String(FIRST_PORT + i);
    // The template's id is also in its paths (ResolvConfPath, LogPath, …) and its hostname.
    const c = JSON.parse(templateText.replaceAll(template.Id, id).replaceAll(template.Id.slice(0, 12), id.slice(0, 12))) as Json;
    const created = T0 + 10_000_000_000n + BigInt(i) * 250_000_000n + 123_456_789n;
    c.Name = `/${name}`;
    c.Created = rfc3339(created);
    c.State.StartedAt = rfc3339(created + 265_670_561n);
    c.State.Pid = 16629 + i;
    c.Args = [name, "tcp:80"];
    c.Config.Cmd = ["listen", name, "tcp:80"];
    c.HostConfig.PortBindings = { "80/tcp": [{ HostIp: "", HostPort: hostPort }] };
    const ns = c.NetworkSettings;
    ns.SandboxID = hex64(`sandbox ${i}`);
    ns.SandboxKey = ns.SandboxKey.replace(/[0-9a-f]{12}$/, ns.SandboxID.slice(0, 12));
    ns.Ports = { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: hostPort }, { HostIp: "::", HostPort: hostPort }] };
    const endpoint = { ...ns.Networks.bridge, NetworkID: net.id, EndpointID: endpointId, Gateway: `172.${net.octet}.0.1`, IPAddress: ip, MacAddress: mac };
    if (net.name === "bridge") {
      Object.assign(ns, { EndpointID: endpointId, Gateway: endpoint.Gateway, IPAddress: ip, MacAddress: mac });
    } else {
      // On a user-defined network the top-level fields are empty and the short id is an alias.
      c.HostConfig.NetworkMode = net.name;
      Object.assign(ns, { EndpointID: "", Gateway: "", IPAddress: "", IPPrefixLen: 0, MacAddress: "" });
      endpoint.Aliases = [id.slice(0, 12)];
      endpoint.IPPrefixLen = 16;
    }
    ns.Networks = { [net.name]: endpoint };
    list.push(c);
  }
  return { version: compose.version as Json, info: {}, networks: [...nets.map((n) => n.obj), host!, none!], containers: list };
}

/** GET /containers/json's entry for an inspected container (Engine API 1.41). */
export function summary(c: Json): Json {
  return {
    Id: c.Id,
    Names: [c.Name],
    Image: c.Config.Image,
    ImageID: c.Image,
    Command: [c.Path, ...c.Args].join(" "),
    Created: Math.floor(Date.parse(c.Created) / 1000),
    Ports: Object.entries(c.NetworkSettings.Ports as Record<string, { HostIp: string; HostPort: string }[]>).flatMap(([key, bindings]) =>
      bindings.map((b) => ({ IP: b.HostIp, PrivatePort: Number(key.split("/")[0]), PublicPort: Number(b.HostPort), Type: key.split("/")[1] })),
    ),
    Labels: c.Config.Labels,
    State: "running",
    Status: "Up 5 minutes",
    HostConfig: { NetworkMode: c.HostConfig.NetworkMode },
    NetworkSettings: { Networks: c.NetworkSettings.Networks },
    Mounts: [],
  };
}

/** What the fake daemon answers, by path: the file bench/fake-engine.mjs serves. */
export function engineAnswers(f: EngineFacts): Record<string, unknown> {
  const answers: Record<string, unknown> = { "/version": f.version, "/info": f.info, "/networks": f.networks };
  // dockerd lists the newest container first.
  answers["/containers/json"] = f.containers.map(summary).reverse();
  for (const c of f.containers) answers[`/containers/${c.Id}/json`] = c;
  return answers;
}

/** The policy measured: the docker block, a zone, and a few allows of containers by name. */
export function enginePolicy(containers: number): string {
  const names = [...new Set([0, 1, Math.floor(containers / 2), containers - 1])].map(containerName);
  return ["docker { version 20.10; iptables off; userland-proxy off; }", "zone lan { interface eth1; from 192.168.0.0/16; }", ...names.map((n) => `allow lan to ${n};`)].join("\n") + "\n";
}

export interface FakeEngine {
  /** DOCKER_HOST for it: unix:///…/docker.sock. */
  dockerHost: string;
  pid: number;
  /** The CPU time (user + system) the server process has used so far, in ms (Linux: /proc). */
  cpuMs(): number;
  /** The container runs from now on, and a `container start` event goes out (GET /events); resolves with how many streams it went to. */
  start(container: Json): Promise<number>;
  /** The container is gone, and a `container die` event goes out. */
  die(id: string): Promise<number>;
  close(): void;
}

/** The fake daemon's script: bench/ in the source tree, also from dist/bench.mjs. */
const script = resolve(fileURLToPath(new URL(".", import.meta.url)), "..", "bench", "fake-engine.mjs");

/** Starts the fake daemon, in a process of its own, on `dir`/docker.sock, answering `answers`. */
export async function startFakeEngine(dir: string, answers: Record<string, unknown>): Promise<FakeEngine> {
  const file = join(dir, "answers.json");
  writeFileSync(file, JSON.stringify(answers));
  const socket = join(dir, "docker.sock");
  const child = spawn(process.execPath, [script, socket, file], { stdio: ["pipe", "pipe", "inherit"] });
  await new Promise<void>((ok, fail) => {
    child.once("error", fail);
    child.once("exit", (code) => fail(new Error(`the fake Engine API server exited (${code}) before it listened`)));
    child.stdout.once("data", () => ok());
  });
  child.removeAllListeners("exit");
  const post = (path: string, value: unknown) =>
    new Promise<number>((ok, fail) => {
      const body = Buffer.from(JSON.stringify(value));
      const req = request({ socketPath: socket, path, method: "POST", agent: false, headers: { "Content-Type": "application/json", "Content-Length": body.length } }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => (res.statusCode === 200 ? ok(Number((JSON.parse(text) as { streams: number }).streams)) : fail(new Error(`POST ${path}: HTTP ${res.statusCode} ${text}`))));
      });
      req.on("error", fail);
      req.end(body);
    });
  const ticks = 100; // USER_HZ: /proc/PID/stat counts CPU time in hundredths of a second
  return {
    dockerHost: `unix://${socket}`,
    pid: child.pid!,
    cpuMs() {
      try {
        const f = readFileSync(`/proc/${child.pid}/stat`, "utf8").replace(/^.*\) /s, "").split(" ");
        return ((Number(f[11]) + Number(f[12])) * 1000) / ticks;
      } catch {
        return NaN;
      }
    },
    start: (container) => post("/bench/start", { container, summary: summary(container) }),
    die: (id) => post("/bench/die", { id }),
    close() {
      child.stdin.end(); // it exits when its stdin closes (also when the bench dies)
      child.kill();
    },
  };
}
