// Docker's facts → model nodes. The one place that reads the Engine API's objects
// (`docker network inspect`, `docker inspect`, GET /version): what it takes from them, and
// what is wrong with them, each diagnostic naming the container or network it is about.
// Pure: the objects come from the daemon (facts/engine.ts) or from a facts file.
import { dockerOrigin, Problems, type DockerObject, type Span } from "../diagnostics.js";
import type { Container, Endpoint, Located, Network, Publish } from "../model/types.js";
import { isError, parseCidr, parseIp, parseVersion, type Cidr, type Ip, type Proto, type PublishSpec, type Version } from "../model/values.js";

/**
 * The facts as the Engine API gives them: `{"networks": [...], "containers": [...]}` (and
 * `version`, GET /version's object, and `info`, what dockwall takes of GET /info's: its
 * `FirewallBackend`; both optional, so that older facts files still load).
 */
export interface RawFacts {
  networks: unknown[];
  containers: unknown[];
  version?: unknown;
  info?: unknown;
}

/** What dockwall takes from Docker. */
export interface DockerFacts {
  /** Where they were read: `unix:///var/run/docker.sock`, or the facts file. */
  source: string;
  /** The daemon's release, when the facts say (GET /version's `Version`). */
  version?: Version;
  /** Bridge networks in creation order; the default bridge is called `bridge`. */
  networks: Network[];
  /** Running containers in start order, on their bridge networks. */
  containers: Container[];
  /** Running containers that have no bridge network (host or none networking): nothing to write for them. */
  unbridged: string[];
  /** What Docker has that changes its rules and that dockwall does not reproduce: facts/settings.ts refuses it. */
  unreproduced: Unreproduced;
  /**
   * The daemon's firewall backend (GET /info's `FirewallBackend.Driver`: `iptables`,
   * `nftables`, either with `+firewalld`); `iptables` when /info does not say (before Docker
   * 29 there was no other); undefined when the facts have no `info` (an older facts file).
   */
  firewallBackend?: string;
}

/** A Docker setting dockwall does not reproduce, at the object it came from. */
export interface Unreproduced {
  /** Options of bridge networks: a gateway mode other than nat, trusted host interfaces. */
  options: { network: string; span: Span; option: string; value: string }[];
  /** Running containers on a network of a driver whose traffic does not cross the host's FORWARD chain as a bridge's does (macvlan, ipvlan, overlay, plugins). */
  attachments: { container: string; span: Span; network: string; driver: string; networkSpan: Span; parent?: string }[];
  /** Running containers in the host's network namespace, with the ports they publish or expose (`80/tcp`). */
  hostNetwork: { container: string; span: Span; ports: string[] }[];
}

/** The network options that change Docker's rules in ways dockwall does not reproduce (Docker 27+). */
const GATEWAY_MODES = ["gateway_mode_ipv4", "gateway_mode_ipv6"] as const;
const TRUSTED_INTERFACES = "trusted_host_interfaces";
/** Drivers whose containers dockwall writes nothing for, rightly: their traffic is the host's own (host) or none (null). */
const NO_TRAFFIC_DRIVERS = new Set(["host", "null"]);

/** `{"networks": [...], "containers": [...]}`, or what is wrong with the text. */
export function parseFactsText(text: string): RawFacts | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
  if (!isObject(v) || !Array.isArray(v.networks) || !Array.isArray(v.containers)) {
    return `expected {"networks": [...], "containers": [...]} (docker network inspect and docker inspect objects, as 'dockwall facts' writes them)`;
  }
  return { networks: v.networks, containers: v.containers, version: v.version, info: v.info };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** RFC 3339 with nanoseconds, as Docker writes it, to a key that sorts in time order (Go drops trailing zeros of the fraction). */
function timeKey(s: string): string {
  let key = timeKeys.get(s);
  if (key !== undefined) return key;
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$/.exec(s);
  key = m ? `${m[1]}.${(m[2] ?? "").padEnd(9, "0")}${m[3]}` : s;
  if (timeKeys.size >= 1 << 16) timeKeys.clear();
  timeKeys.set(s, key);
  return key;
}

/** Each time's key as worked out before (watch sorts the same 2,000 containers' times at every reconcile). */
const timeKeys = new Map<string, string>();

/** Sorts by the time each has (a stable sort; `tie` orders the same times), each time read once. */
function inTimeOrder<T>(xs: T[], time: (x: T) => string, tie: (a: T, b: T) => number): void {
  // Each with its key beside it (not looked up per comparison: a reconcile of 2,000 containers sorts them every time).
  const keyed = xs.map((x) => ({ x, key: timeKey(time(x)) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : tie(a.x, b.x)));
  for (let i = 0; i < keyed.length; i++) xs[i] = keyed[i]!.x;
}

/** Reads the fields it needs from one object; a missing or mistyped one is reported once, at the object. */
class Reader {
  ok = true;
  constructor(
    private readonly problems: Problems,
    readonly origin: Span,
    private readonly what: string,
  ) {}

  fail(message: string, help?: string): void {
    this.ok = false;
    this.problems.error("bad-facts", this.origin, message, { help });
  }

  private readonly missing = new Set<string>();

  field(obj: unknown, path: string[], type: "string" | "boolean" | "object", optional = false): unknown {
    let v: unknown = obj;
    let depth = 0;
    for (; depth < path.length && isObject(v); depth++) v = v[path[depth]!];
    if (depth < path.length) v = undefined;
    if (v === undefined || v === null) {
      // Where the path breaks off: a missing State is one problem, not one per field under it.
      const gone = path.slice(0, Math.max(1, depth)).join(".");
      if (!optional && !this.missing.has(gone)) {
        this.missing.add(gone);
        this.fail(`its ${gone} is missing`, `give the object as 'docker ${this.what.startsWith("network") ? "network inspect" : "inspect"}' prints it`);
      }
      return undefined;
    }
    if (typeof v !== type || (type === "object" && !isObject(v))) {
      this.fail(`${this.what}'s ${path.join(".")} is not a${type === "object" ? "n object" : ` ${type}`}`);
      return undefined;
    }
    return v;
  }
}

const OPT = "com.docker.network.bridge.";

/** A network of another driver than bridge: what a container attached to it is refused with. */
interface OtherNetwork {
  driver: string;
  span: Span;
  parent?: string;
}

function network(raw: unknown, source: string, problems: Problems, others: Map<string, OtherNetwork>, unreproduced: Unreproduced): { net: Network; created: string; id: string } | undefined {
  const name = isObject(raw) && typeof raw.Name === "string" ? raw.Name : "?";
  const id = isObject(raw) && typeof raw.Id === "string" ? raw.Id : "";
  const obj: DockerObject = { kind: "network", name, id, source };
  const at = dockerOrigin(obj);
  const r = new Reader(problems, at, `network '${name}'`);
  if (!isObject(raw)) {
    r.fail(`a network is not an object`);
    return undefined;
  }
  r.field(raw, ["Name"], "string");
  const driver = r.field(raw, ["Driver"], "string") as string | undefined;
  const options = (r.field(raw, ["Options"], "object", true) ?? {}) as Record<string, unknown>;
  if (driver !== "bridge") {
    // host, none, overlay, macvlan, ipvlan, plugins: no rules of Docker's bridge driver. A
    // running container on one of the last ones is refused (facts/settings.ts).
    if (driver !== undefined && typeof raw.Name === "string") others.set(raw.Name, { driver, span: at, parent: typeof options.parent === "string" && options.parent ? options.parent : undefined });
    return undefined;
  }
  r.field(raw, ["Id"], "string");
  const created = (r.field(raw, ["Created"], "string") as string | undefined) ?? "";
  const opt = (k: string): string | undefined => (typeof options[OPT + k] === "string" ? (options[OPT + k] as string) : undefined);
  for (const k of GATEWAY_MODES) {
    const mode = opt(k);
    if (mode !== undefined && mode !== "" && mode !== "nat") unreproduced.options.push({ network: name, span: at, option: OPT + k, value: mode });
  }
  const trusted = opt(TRUSTED_INTERFACES);
  if (trusted !== undefined && trusted !== "") unreproduced.options.push({ network: name, span: at, option: OPT + TRUSTED_INTERFACES, value: trusted });
  // Docker 28+: a network without IPv4 (docker network create --ipv4=false), its containers with IPv6 addresses alone.
  if (raw.EnableIPv4 === false) unreproduced.options.push({ network: name, span: at, option: "EnableIPv4", value: "false" });
  const ipam = r.field(raw, ["IPAM"], "object") as Record<string, unknown> | undefined;
  // A network made without --ipv6 may keep an IPv6 subnet in its IPAM config: libnetwork gives its endpoints no IPv6
  // address and its bridge no IPv6 gateway, and Docker writes no IPv6 rules for it (a review). IPv4-only here too.
  const ipv6 = raw.EnableIPv6 !== false;
  const configs = (Array.isArray(ipam?.Config) ? (ipam.Config as unknown[]) : []).filter((c) => ipv6 || !(isObject(c) && typeof c.Subnet === "string" && c.Subnet.includes(":")));
  const subnets: Located<Cidr>[] = [];
  const gateways: Located<Ip>[] = [];
  for (const c of configs) {
    if (!isObject(c) || typeof c.Subnet !== "string") {
      r.fail(`an IPAM.Config entry of network '${name}' has no Subnet`);
      continue;
    }
    const s = parseCidr(c.Subnet);
    if (isError(s)) r.fail(`network '${name}' has the subnet '${c.Subnet}': ${s.error}`);
    else subnets.push({ value: s, span: at });
    if (typeof c.Gateway === "string" && c.Gateway !== "") {
      const g = parseIp(c.Gateway.replace(/\/\d+$/, ""));
      if (isError(g)) r.fail(`network '${name}' has the gateway '${c.Gateway}': ${g.error}`);
      else gateways.push({ value: g, span: at });
    }
  }
  if (subnets.length === 0 && r.ok) r.fail(`network '${name}' has no subnet (IPAM.Config is empty)`);
  const binding = opt("host_binding_ipv4");
  let hostBinding: Located<Ip> | undefined;
  if (binding && binding !== "0.0.0.0") {
    const b = parseIp(binding);
    if (isError(b)) r.fail(`network '${name}' binds published ports to '${binding}': ${b.error}`);
    else hostBinding = { value: b, span: at };
  }
  const isDefault = opt("default_bridge") === "true";
  const bridge = opt("name") ?? (id ? `br-${id.slice(0, 12)}` : "");
  if (!r.ok) return undefined;
  return {
    id,
    created,
    net: {
      // The default bridge is `bridge` whatever the daemon calls it, as in a policy.
      name: isDefault ? "bridge" : name,
      span: at,
      bridge: { value: bridge, span: at },
      subnets,
      gateways,
      icc: opt("enable_icc") !== "false",
      internal: raw.Internal === true,
      masquerade: opt("enable_ip_masquerade") !== "false",
      hostBinding,
      implicit: false,
    },
  };
}

/** The container's published ports, from NetworkSettings.Ports: what is bound now (`-P` included). */
function publishes(ports: Record<string, unknown>, r: Reader, at: Span): Publish[] {
  const out: Publish[] = [];
  for (const [key, list] of Object.entries(ports)) {
    if (list === null || (Array.isArray(list) && list.length === 0)) continue; // exposed, not published
    const m = /^(\d+)\/(tcp|udp|sctp)$/.exec(key);
    if (!m || !Array.isArray(list)) {
      r.fail(`NetworkSettings.Ports has '${key}', which is not PORT/tcp or PORT/udp`);
      continue;
    }
    if (m[2] === "sctp") continue; // dockwall writes no sctp rules
    const containerPort = Number(m[1]);
    const proto = m[2] as Proto;
    // Docker lists a port published on every address twice, on 0.0.0.0 and on ::.
    const byHostPort = new Map<number, Set<string>>();
    for (const b of list) {
      if (!isObject(b) || typeof b.HostPort !== "string" || !/^\d+$/.test(b.HostPort)) {
        r.fail(`NetworkSettings.Ports['${key}'] has a binding without a HostPort`);
        continue;
      }
      const hp = Number(b.HostPort);
      let ips = byHostPort.get(hp);
      if (!ips) byHostPort.set(hp, (ips = new Set()));
      ips.add(typeof b.HostIp === "string" ? b.HostIp : "");
    }
    for (const [hostPort, ips] of byHostPort) {
      const all = ips.has("") || (ips.has("0.0.0.0") && ips.has("::"));
      const hostIps: (string | undefined)[] = all ? [undefined] : [...ips];
      for (const hostIp of hostIps) {
        let ip: Ip | undefined;
        if (hostIp !== undefined) {
          const p = parseIp(hostIp);
          if (isError(p)) {
            r.fail(`NetworkSettings.Ports['${key}'] binds to '${hostIp}': ${p.error}`);
            continue;
          }
          ip = p;
        }
        const spec: PublishSpec = { host: { from: hostPort, to: hostPort }, container: { from: containerPort, to: containerPort }, proto };
        if (ip) spec.hostIp = ip;
        out.push({ spec, span: at });
      }
    }
  }
  return out;
}

/** The ports a container publishes or exposes, as Docker keys them (`80/tcp`), in port order: what a container on the host's network may listen on. */
function askedPorts(...maps: (Record<string, unknown> | undefined)[]): string[] {
  const keys = new Set<string>();
  for (const m of maps) for (const k of Object.keys(m ?? {})) keys.add(k);
  return [...keys].sort((a, b) => parseInt(a, 10) - parseInt(b, 10) || (a < b ? -1 : a > b ? 1 : 0));
}

function container(raw: unknown, source: string, networks: Map<string, Network>, others: Map<string, OtherNetwork>, unreproduced: Unreproduced, problems: Problems): { ctr: Container; started: string } | "stopped" | "unbridged" | undefined {
  const name = isObject(raw) && typeof raw.Name === "string" ? raw.Name.replace(/^\//, "") : "?";
  const id = isObject(raw) && typeof raw.Id === "string" ? raw.Id : "";
  const at = dockerOrigin({ kind: "container", name, id, source });
  const r = new Reader(problems, at, `container '${name}'`);
  if (!isObject(raw)) {
    r.fail(`a container is not an object`);
    return undefined;
  }
  r.field(raw, ["Name"], "string");
  r.field(raw, ["Id"], "string");
  const running = r.field(raw, ["State", "Running"], "boolean");
  if (running === false) return "stopped";
  const started = (r.field(raw, ["State", "StartedAt"], "string") as string | undefined) ?? "";
  const nets = (r.field(raw, ["NetworkSettings", "Networks"], "object") ?? {}) as Record<string, unknown>;
  const ports = (r.field(raw, ["NetworkSettings", "Ports"], "object", true) ?? {}) as Record<string, unknown>;
  const labels = (r.field(raw, ["Config", "Labels"], "object", true) ?? {}) as Record<string, unknown>;
  const mode = r.field(raw, ["HostConfig", "NetworkMode"], "string", true) as string | undefined;
  if (!r.ok) return undefined;
  const endpoints: Endpoint[] = [];
  let hostNetwork = mode === "host";
  for (const [netName, e] of Object.entries(nets)) {
    // The default bridge is `bridge` in inspect output too; networks of other drivers have no rules.
    const n = networks.get(netName);
    if (!n) {
      const other = others.get(netName);
      if (other?.driver === "host") hostNetwork = true;
      else if (other && !NO_TRAFFIC_DRIVERS.has(other.driver)) unreproduced.attachments.push({ container: name, span: at, network: netName, driver: other.driver, networkSpan: other.span, parent: other.parent });
      continue;
    }
    if (!isObject(e)) {
      r.fail(`NetworkSettings.Networks['${netName}'] is not an object`);
      continue;
    }
    const addresses: Located<Ip>[] = [];
    for (const k of ["IPAddress", "GlobalIPv6Address"] as const) {
      const text = e[k];
      if (text === undefined || text === null || text === "") continue;
      const ip = typeof text === "string" ? parseIp(text) : undefined;
      if (!ip || isError(ip)) r.fail(`its ${k} on network '${netName}' is '${String(text)}', not an address`);
      else addresses.push({ value: ip, span: at });
    }
    // (On an IPv6-only network, refused as such: facts/settings.ts.)
    if (!addresses.some((a) => a.value.family === 4) && n.subnets.some((s) => s.value.family === 4)) {
      r.fail(`it has no IPv4 address on network '${netName}' (NetworkSettings.Networks['${netName}'].IPAddress is empty)`, `a running container on a bridge network has one; save the facts again while it runs`);
      continue;
    }
    const prio = e.GwPriority;
    endpoints.push({ network: { name: n.name, span: at }, addresses, span: at, ...(typeof prio === "number" && prio !== 0 ? { gwPriority: prio } : {}) });
  }
  if (!r.ok) return undefined;
  if (hostNetwork) {
    // Docker discards -p with host networking (HostConfig.PortBindings keeps what was asked);
    // the image's EXPOSE says what it listens on. Either is a port of the host's own.
    const asked = r.field(raw, ["HostConfig", "PortBindings"], "object", true) as Record<string, unknown> | undefined;
    const exposed = r.field(raw, ["Config", "ExposedPorts"], "object", true) as Record<string, unknown> | undefined;
    unreproduced.hostNetwork.push({ container: name, span: at, ports: askedPorts(asked, exposed) });
  }
  if (endpoints.length === 0) return "unbridged";
  const project = labels["com.docker.compose.project"];
  const service = labels["com.docker.compose.service"];
  const ctr: Container = { name, span: at, endpoints, publishes: publishes(ports, r, at) };
  if (typeof project === "string" && typeof service === "string") ctr.compose = { project, service };
  return r.ok ? { ctr, started } : undefined;
}

/** The facts in the model's terms; errors name the network or container they are about. */
/**
 * What readFacts read of each container object before (watch: dockerd's objects, which the
 * engine client replaces and never changes): the object read again only when the networks it
 * is on read differently, or it was not read cleanly (a problem, or something not reproduced, is
 * said each time). Owned by its caller, for objects it does not change.
 */
export class FactsMemo {
  readonly containers = new WeakMap<object, { key: string; value: { ctr: Container; started: string } | "stopped" | "unbridged" }>();
}

/** What container() reads of the networks around one container: each of its networks, a bridge known or another driver. */
function contextKey(raw: unknown, source: string, networks: Map<string, Network>, others: Map<string, OtherNetwork>): string | undefined {
  if (!isObject(raw)) return undefined;
  const ns = raw.NetworkSettings;
  const nets = isObject(ns) && isObject(ns.Networks) ? Object.keys(ns.Networks) : [];
  let key = source;
  for (const n of nets) key += networks.has(n) ? `\0b${n}` : `\0o${n}\0${others.get(n)?.driver ?? ""}`;
  return key;
}

function readContainer(memo: FactsMemo | undefined, raw: unknown, source: string, networks: Map<string, Network>, others: Map<string, OtherNetwork>, unreproduced: Unreproduced, problems: Problems): ReturnType<typeof container> {
  const key = memo ? contextKey(raw, source, networks, others) : undefined;
  if (key === undefined) return container(raw, source, networks, others, unreproduced, problems);
  const was = memo!.containers.get(raw as object);
  if (was && was.key === key) return was.value;
  const before = problems.items.length + problems.omitted + unreproduced.attachments.length + unreproduced.hostNetwork.length;
  const value = container(raw, source, networks, others, unreproduced, problems);
  const clean = value !== undefined && problems.items.length + problems.omitted + unreproduced.attachments.length + unreproduced.hostNetwork.length === before;
  if (clean) memo!.containers.set(raw as object, { key, value });
  else memo!.containers.delete(raw as object);
  return value;
}

export function readFacts(raw: RawFacts, source: string, problems: Problems, memo?: FactsMemo): DockerFacts {
  const nets: { net: Network; created: string; id: string }[] = [];
  const others = new Map<string, OtherNetwork>();
  const unreproduced: Unreproduced = { options: [], attachments: [], hostNetwork: [] };
  for (const n of raw.networks) {
    const v = network(n, source, problems, others, unreproduced);
    if (v) nets.push(v);
  }
  inTimeOrder(nets, (n) => n.created, () => 0);
  const byName = new Map<string, Network>();
  // Containers name their networks as inspect prints them: the default bridge as `bridge`.
  for (const n of nets) byName.set(n.net.name, n.net);
  const ctrs: { ctr: Container; started: string }[] = [];
  const unbridged: string[] = [];
  for (const c of raw.containers) {
    const v = readContainer(memo, c, source, byName, others, unreproduced, problems);
    if (v === "unbridged") unbridged.push(isObject(c) && typeof c.Name === "string" ? c.Name.replace(/^\//, "") : "?");
    else if (v && v !== "stopped") ctrs.push(v);
  }
  inTimeOrder(ctrs, (c) => c.started, (a, b) => (a.ctr.name < b.ctr.name ? -1 : 1));
  let version: Version | undefined;
  if (raw.version !== undefined) {
    const text = isObject(raw.version) ? raw.version.Version : raw.version;
    const m = typeof text === "string" ? /^v?(\d+(?:\.\d+){0,2})/.exec(text) : null;
    const v = m ? parseVersion(m[1]!) : undefined;
    if (!v || isError(v)) problems.error("bad-facts", dockerOrigin({ kind: "daemon", name: "", id: "", source }), `the daemon's version is '${String(text)}', not a Docker version`);
    else version = v;
  }
  return { source, version, networks: nets.map((n) => n.net), containers: ctrs.map((c) => c.ctr), unbridged, unreproduced, firewallBackend: firewallBackend(raw.info, source, problems) };
}

/** GET /info's FirewallBackend.Driver; `iptables` when /info has none (Docker before 29); undefined without /info. */
function firewallBackend(info: unknown, source: string, problems: Problems): string | undefined {
  if (info === undefined || info === null) return undefined;
  const bad = (what: string) => {
    problems.error("bad-facts", dockerOrigin({ kind: "daemon", name: "", id: "", source }), what, {
      help: `give "info" as 'dockwall facts' writes it: {"FirewallBackend": {"Driver": …}} from GET /info, or {} for a daemon that does not report one`,
    });
    return undefined;
  };
  if (!isObject(info)) return bad(`the daemon's info is ${JSON.stringify(info)}, not an object`);
  const backend = info.FirewallBackend;
  if (backend === undefined || backend === null) return "iptables";
  const driver = isObject(backend) ? backend.Driver : undefined;
  if (typeof driver !== "string" || driver === "") return bad(`the daemon's FirewallBackend is ${JSON.stringify(backend)}, without a Driver`);
  return driver;
}
