// The one place that talks to the Docker Engine API: at DOCKER_HOST (unix:///PATH or
// tcp://HOST:PORT), else /var/run/docker.sock. Node's own http client: the five GETs dockwall
// needs do not justify a client library (dockerode and its dependencies would be loaded at
// every --docker start), and this way the errors say exactly what went wrong.
import { Agent, request } from "node:http";
import type { RawFacts } from "./read.js";
import { configuredNetworks, containerFiles, startingContainer } from "./starting.js";

export class DockerApiError extends Error {
  constructor(
    message: string,
    /** What went wrong, without the request: "no dockerd is listening there (…)". */
    readonly why = message,
  ) {
    super(message);
  }
}

export interface Endpoint {
  socketPath?: string;
  host?: string;
  port?: number;
  /** As a user would write it: unix:///var/run/docker.sock. */
  describe: string;
}

export function engineEndpoint(env: NodeJS.ProcessEnv): Endpoint {
  const h = env.DOCKER_HOST;
  if (!h) return { socketPath: "/var/run/docker.sock", describe: "unix:///var/run/docker.sock" };
  if (h.startsWith("unix://")) return { socketPath: h.slice("unix://".length), describe: h };
  const m = /^tcp:\/\/([^:/]+|\[[^\]]+\]):(\d+)\/?$/.exec(h);
  if (m) return { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]), describe: h };
  throw new DockerApiError(`DOCKER_HOST=${h} is not supported (use unix:///path or tcp://host:port)`);
}

export interface EngineOptions {
  /** Per request, in ms (default 5000). */
  timeoutMs?: number;
  /** Container inspections under way at once (default 8). */
  parallel?: number;
  /**
   * Reads a file of the daemon's data root (a local daemon: watch), for the containers that are
   * starting (connected()): their rules are in place before their process runs (facts/starting.ts).
   */
  readDataFile?: (path: string) => string;
}

/** More containers than this named by events since the last read: they are read with the whole list (one request), not by their ids. */
const QUICK_MAX = 32;

/** How long a container connected to its networks may take to start before it is left to its start event. */
const STARTING_FOR_MS = 60_000;

/** A client for one endpoint; keeps its connections open while it reads. */
export class Engine {
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly parallel: number;
  private readonly readDataFile?: (path: string) => string;

  constructor(
    readonly endpoint: Endpoint,
    opts: EngineOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.parallel = opts.parallel ?? 8;
    // Only a daemon on this host has its data root here.
    if (endpoint.socketPath) this.readDataFile = opts.readDataFile;
    this.agent = new Agent({ keepAlive: true, maxSockets: this.parallel });
  }

  close(): void {
    this.agent.destroy();
  }

  /** GET `path`, parsed as JSON; a DockerApiError that says what went wrong otherwise (a FactsReadYielded once `signal` aborts). */
  get(path: string, signal?: AbortSignal): Promise<unknown> {
    const ep = this.endpoint;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new FactsReadYielded());
      const fail = (why: string) => reject(new DockerApiError(`cannot read ${path} from dockerd at ${ep.describe}: ${why}`, why));
      const req = request({ socketPath: ep.socketPath, host: ep.host, port: ep.port, path, method: "GET", agent: this.agent, timeout: this.timeoutMs, headers: { Accept: "application/json" } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (e) => fail(e.message));
        res.on("aborted", () => fail("the connection was closed in the middle of the answer"));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) {
            let msg = body.trim().slice(0, 200);
            try {
              msg = String((JSON.parse(body) as { message?: unknown }).message ?? msg);
            } catch {
              /* not JSON: the body as it is */
            }
            fail(`it answered HTTP ${res.statusCode}${msg ? ` (${msg})` : ""}`);
            return;
          }
          try {
            resolve(JSON.parse(body));
          } catch {
            fail(`its answer is not JSON (${JSON.stringify(body.slice(0, 60))}); is that a Docker daemon?`);
          }
        });
      });
      req.on("timeout", () => req.destroy(new Error(`no answer within ${this.timeoutMs / 1000} s`)));
      const yielded = () => {
        req.destroy();
        reject(new FactsReadYielded());
      };
      signal?.addEventListener("abort", yielded, { once: true });
      req.on("close", () => signal?.removeEventListener("abort", yielded));
      req.on("error", (e: NodeJS.ErrnoException) => {
        const why =
          e.code === "ENOENT" || e.code === "ECONNREFUSED" ? "no dockerd is listening there (is it running? is DOCKER_HOST right?)"
          : e.code === "EACCES" ? "permission denied (run as root or as a member of the docker group)"
          : e.code === "ECONNRESET" || e.message === "socket hang up" ? "it closed the connection without answering"
          : e.message;
        fail(why);
      });
      req.end();
    });
  }

  /**
   * Follows GET /events (containers and networks): `onEvent` for each event as it comes (a
   * line that is not JSON comes as `{ malformed: line }`). `done` settles when the stream
   * ends (the daemon went away: resolves) or cannot be had (rejects with a DockerApiError).
   */
  events(onEvent: (e: Record<string, unknown>) => void, onOpen?: () => void): { done: Promise<void>; close: () => void } {
    const ep = this.endpoint;
    const filters = encodeURIComponent(JSON.stringify({ type: ["container", "network"] }));
    let close = () => {};
    const done = new Promise<void>((resolve, reject) => {
      const fail = (why: string) => reject(new DockerApiError(`cannot follow dockerd's events at ${ep.describe}: ${why}`, why));
      const req = request({ socketPath: ep.socketPath, host: ep.host, port: ep.port, path: `/events?filters=${filters}`, method: "GET", agent: false }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          fail(`it answered HTTP ${res.statusCode}`);
          return;
        }
        onOpen?.();
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          buf += c;
          let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (!line) continue;
            let ev: unknown;
            try {
              ev = JSON.parse(line);
            } catch {
              ev = undefined;
            }
            onEvent(typeof ev === "object" && ev !== null && !Array.isArray(ev) ? (ev as Record<string, unknown>) : { malformed: line.slice(0, 200) });
          }
        });
        res.on("end", () => resolve());
        res.on("close", () => resolve());
        res.on("error", () => resolve());
      });
      req.on("error", (e: NodeJS.ErrnoException) => {
        fail(e.code === "ENOENT" || e.code === "ECONNREFUSED" ? "no dockerd is listening there" : e.code === "EACCES" ? "permission denied (run as root or as a member of the docker group)" : e.message);
      });
      close = () => req.destroy();
      req.end();
    });
    return { done, close: () => close() };
  }

  /**
   * Inspections kept between calls (a long-lived client: watch), by container id, with what
   * the container list said of it then. A container is inspected again when the list says
   * something else of it (its state, ports or addresses), or after forget(id) — an event
   * about it — or forget() (the event stream was reopened: the daemon may have restarted).
   */
  private readonly inspected = new Map<string, { listed: string; object: unknown }>();
  private version?: unknown;
  private info?: unknown;
  /** The daemon's data root (GET /info's DockerRootDir). */
  private dataRoot?: string;

  /**
   * Whether `inspected` holds every running container: true after a full read (facts()), kept so
   * by the quick reads since (changedFacts()), false again after forget() or a failed read.
   */
  private complete = false;
  /** The containers events named since the last read (forget(id)): what a quick read inspects again. */
  private readonly named = new Set<string>();
  /** Counts forget(): a read that one came during answers from what it was told to drop. */
  private forgotten = 0;

  forget(id?: string): void {
    if (id === undefined) {
      this.forgotten++;
      this.inspected.clear();
      this.named.clear();
      this.complete = false;
      this.version = undefined;
      this.info = undefined;
    } else {
      // Marked, not dropped: a read under way answers with what it kept of it (a review: an exec
      // event during a quick read for another container left this one out, and its rules went).
      this.named.add(id);
    }
  }

  /** The containers events named since the last read began, for this read to inspect again (those named meanwhile are for the next). */
  private takeNamed(): Set<string> {
    const named = new Set(this.named);
    this.named.clear();
    return named;
  }

  /**
   * Containers that are starting (a network `connect` event came, the start event not yet), by
   * id, with when that was said. Each is in the facts as soon as its endpoint on every network
   * it is configured for has an address, and each time that is read again: no sooner, and not
   * once the endpoint is gone (a start that failed), so no rule is left on an address Docker may
   * hand to another container.
   */
  private readonly starting = new Map<string, number>();
  /** Why the last facts() left each starting container out (what watch --verbose says). */
  readonly notYet = new Map<string, string>();

  /** A network `connect` event: the container may be starting (facts() finds out). */
  connected(id: string): void {
    if (this.readDataFile && !this.starting.has(id)) this.starting.set(id, Date.now());
  }

  /** What dockwall takes of GET /info: the firewall backend (Docker 29+; none before). The rest (host names, counts, registries) stays out of the facts. */
  private async readInfo(): Promise<unknown> {
    const info = await this.get("/info");
    if (typeof info !== "object" || info === null || Array.isArray(info)) throw new DockerApiError(`dockerd at ${this.endpoint.describe} answered /info with something that is not an object`);
    const root = (info as { DockerRootDir?: unknown }).DockerRootDir;
    this.dataRoot = typeof root === "string" && root.startsWith("/") ? root : undefined;
    const backend = (info as { FirewallBackend?: unknown }).FirewallBackend;
    return backend === undefined ? {} : { FirewallBackend: backend };
  }

  /** The containers connected but not running yet, as running ones (facts/starting.ts); those that cannot be told yet are left out. */
  private async startingOnes(running: Set<string>): Promise<unknown[]> {
    const out: unknown[] = [];
    const now = Date.now();
    for (const [id, since] of this.starting) {
      if (running.has(id) || now - since > STARTING_FOR_MS) {
        this.starting.delete(id);
        continue;
      }
      const why = await this.startingOne(id).catch((e: unknown) => `it cannot be read (${(e as Error).message})`);
      if (typeof why === "string") {
        this.notYet.set(id, why);
        // Gone (removed, or a start that failed): nothing of it to wait for.
        if (/no such|ENOENT/i.test(why)) this.starting.delete(id);
      } else out.push(why);
    }
    return out;
  }

  private async startingOne(id: string): Promise<Record<string, unknown> | string> {
    if (!this.dataRoot || !this.readDataFile) return "the daemon's data root is not known";
    const files = containerFiles(this.dataRoot, id);
    const config: unknown = JSON.parse(this.readDataFile(files.config));
    const hostConfig: unknown = JSON.parse(this.readDataFile(files.hostConfig));
    const names = configuredNetworks(config);
    if (typeof names === "string") return names;
    const networks = new Map<string, unknown>();
    for (const name of names) networks.set(name, await this.get(`/networks/${encodeURIComponent(name)}`));
    return startingContainer(id, config, hostConfig, networks, new Date(Date.now()).toISOString());
  }

  /** What the container list says of a container that an inspection would show differently. */
  private static listed(c: Record<string, unknown>): string {
    const nets = (c.NetworkSettings as { Networks?: Record<string, { IPAddress?: unknown; GlobalIPv6Address?: unknown; NetworkID?: unknown }> } | undefined)?.Networks ?? {};
    const addresses = Object.entries(nets).map(([n, e]) => [n, e?.NetworkID, e?.IPAddress, e?.GlobalIPv6Address]);
    // (Its names too: a rename whose event was lost is found by the next full read.)
    return JSON.stringify([c.State, c.Ports, c.Names, addresses]);
  }

  /**
   * The daemon's networks, running containers (inspected), version and firewall backend: the
   * facts as `dockwall facts` writes them. `signal` (watch's read after the events, which an
   * event must not wait for): until the answers to its first requests are in, an abort ends the
   * read with FactsReadYielded and leaves what the client keeps as it was.
   */
  async facts(signal?: AbortSignal): Promise<RawFacts & { version: unknown; info: unknown }> {
    const wasComplete = this.complete;
    this.complete = false;
    const named = this.takeNamed();
    const forgotten = this.forgotten;
    try {
      const answer = await this.keepingNamed(named, () => this.readAll(named, signal));
      // (Begun before everything was forgotten: its answer stands, but the next read is whole too.)
      if (this.forgotten !== forgotten) this.complete = false;
      return answer;
    } catch (e) {
      // Nothing was changed yet: the client keeps what it had, and a quick read may follow.
      if (e instanceof FactsReadYielded && this.forgotten === forgotten) this.complete = wasComplete;
      throw e;
    }
  }

  /** A read that fails leaves the containers it was to inspect again for the next read. */
  private async keepingNamed<T>(named: Set<string>, read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (e) {
      for (const id of named) this.named.add(id);
      throw e;
    }
  }

  private async readAll(named: Set<string>, signal?: AbortSignal): Promise<RawFacts & { version: unknown; info: unknown }> {
    // The version and the backend change only when dockerd restarts, which reopens the event stream (forget()).
    const [version, info, networks, list] = await Promise.all([this.version ?? this.get("/version"), this.info ?? this.readInfo(), this.get("/networks", signal), this.get("/containers/json", signal)]);
    // (From here on the read changes what the client keeps: it goes to the end.)
    if (signal?.aborted) throw new FactsReadYielded();
    this.version = version;
    this.info = info;
    if (!Array.isArray(list)) throw new DockerApiError(`dockerd at ${this.endpoint.describe} answered /containers/json with something that is not a list`);
    const listed = list.filter((c): c is Record<string, unknown> => typeof (c as { Id?: unknown })?.Id === "string");
    const ids = listed.map((c) => c.Id as string);
    const containers: unknown[] = new Array(ids.length);
    const todo: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const known = named.has(ids[i]!) ? undefined : this.inspected.get(ids[i]!);
      if (known && known.listed === Engine.listed(listed[i]!)) containers[i] = known.object;
      else todo.push(i);
    }
    const objects = await this.inspect(todo.map((i) => ids[i]!));
    todo.forEach((i, k) => {
      containers[i] = objects[k];
      // (Removed between the list and its inspection: it no longer runs.)
      if (objects[k] !== undefined) this.inspected.set(ids[i]!, { listed: Engine.listed(listed[i]!), object: objects[k] });
    });
    const running = new Set(ids);
    for (const id of this.inspected.keys()) if (!running.has(id)) this.inspected.delete(id);
    this.complete = true;
    return this.answer(version, info, networks, containers.filter((c) => c !== undefined), running);
  }

  /**
   * The facts without listing every container (watch, after events): what the last full read
   * found, with each container an event named since listed and inspected again, as facts()
   * would (running or not; its entry in GET /containers/json, filtered to those ids, which reads
   * dockerd's view and waits for no container: an inspection waits while the container starts).
   * A read in full (facts()) when there is nothing to start from: the first, after forget() (the
   * event stream reopened), after a read failed, or for more than QUICK_MAX containers at once.
   * The watcher follows a run of these with a full read, which catches an event dockerd dropped.
   */
  async changedFacts(): Promise<RawFacts & { version: unknown; info: unknown }> {
    for (let pass = 0; ; pass++) {
      if (!this.complete || this.version === undefined || this.info === undefined || this.named.size > QUICK_MAX) return this.facts();
      this.complete = false;
      const named = this.takeNamed();
      const forgotten = this.forgotten;
      const answer = await this.keepingNamed(named, () => this.readNamed([...named], this.version, this.info));
      // Everything forgotten meanwhile (the event stream reopened): what it kept is gone, read everything.
      if (this.forgotten !== forgotten) {
        this.complete = false;
        return this.facts();
      }
      // An event that came during the read about a container it answers with as kept: that may be gone (its address
      // given to the next container already, a second review found: the facts then held both). Read it again, a few times.
      if (pass >= 3 || ![...this.named].some((id) => this.inspected.has(id))) return answer;
    }
  }

  private async readNamed(ids: string[], version: unknown, info: unknown): Promise<RawFacts & { version: unknown; info: unknown }> {
    const filters = encodeURIComponent(JSON.stringify({ id: ids }));
    const [networks, list] = await Promise.all([this.get("/networks"), ids.length ? this.get(`/containers/json?filters=${filters}`) : []]);
    if (!Array.isArray(list)) throw new DockerApiError(`dockerd at ${this.endpoint.describe} answered /containers/json with something that is not a list`);
    // (The id filter matches a prefix: only the ids asked for count.)
    const asked = new Set(ids);
    const listed = new Map(list.filter((c): c is Record<string, unknown> => asked.has((c as { Id?: unknown })?.Id as string)).map((c) => [c.Id as string, c]));
    const todo = ids.filter((id) => listed.has(id));
    const objects = await this.inspect(todo);
    for (const id of ids) if (!listed.has(id)) this.inspected.delete(id);
    todo.forEach((id, k) => {
      if (objects[k] === undefined) this.inspected.delete(id);
      else this.inspected.set(id, { listed: Engine.listed(listed.get(id)!), object: objects[k] });
    });
    this.complete = true;
    return this.answer(version, info, networks, [...this.inspected.values()].map((c) => c.object), new Set(this.inspected.keys()));
  }

  /** GET /containers/ID/json of each, at most `parallel` at once; undefined for one that is gone (HTTP 404). */
  private async inspect(ids: string[]): Promise<unknown[]> {
    const out: unknown[] = new Array(ids.length);
    let next = 0;
    const worker = async () => {
      while (next < ids.length) {
        const k = next++;
        out[k] = await this.get(`/containers/${encodeURIComponent(ids[k]!)}/json`).catch((e: unknown) => {
          if (e instanceof DockerApiError && / HTTP 404/.test(e.message)) return undefined;
          throw e;
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.parallel, ids.length) }, worker));
    return out;
  }

  /** The facts of a read: with the containers that are starting (connected, not running yet). */
  private async answer(version: unknown, info: unknown, networks: unknown, containers: unknown[], running: Set<string>): Promise<RawFacts & { version: unknown; info: unknown }> {
    if (!Array.isArray(networks)) throw new DockerApiError(`dockerd at ${this.endpoint.describe} answered /networks with something that is not a list`);
    this.notYet.clear();
    const starting = this.starting.size > 0 ? await this.startingOnes(running) : [];
    return { version, info, networks, containers: [...containers, ...starting] };
  }
}

/** A read in full given up for an event (Engine.facts' signal): nothing read, nothing changed. */
export class FactsReadYielded extends Error {
  constructor() {
    super("the read in full gave way to an event");
  }
}

/** The facts of the daemon at DOCKER_HOST (or /var/run/docker.sock). */
export async function readDaemonFacts(env: NodeJS.ProcessEnv, opts?: EngineOptions): Promise<{ raw: RawFacts; source: string }> {
  const engine = new Engine(engineEndpoint(env), opts);
  try {
    return { raw: await engine.facts(), source: engine.endpoint.describe };
  } finally {
    engine.close();
  }
}

/** The Engine's version, e.g. "20.10.24" (a "+dfsg1" or "-ce" suffix removed). Used by --docker-version auto. */
export async function dockerVersion(env: NodeJS.ProcessEnv, timeoutMs = 3000): Promise<string> {
  const engine = new Engine(engineEndpoint(env), { timeoutMs });
  try {
    const v = String(((await engine.get("/version")) as { Version?: unknown }).Version ?? "");
    const m = /^v?(\d+(?:\.\d+){0,2})/.exec(v);
    if (!m) throw new DockerApiError(`dockerd at ${engine.endpoint.describe} answered, but not with a version: unexpected version '${v}'`);
    return m[1]!;
  } catch (e) {
    if (e instanceof DockerApiError && !/answered, but/.test(e.message)) {
      throw new DockerApiError(`cannot ask dockerd for its version at ${engine.endpoint.describe}: ${e.why}; give the version instead (--docker-version 28.5, or 'version' in the docker block)`);
    }
    throw e;
  } finally {
    engine.close();
  }
}
