// The policy lab: a policy's own world built from its model, in network namespaces, without
// dockerd. The host is one namespace with the policy's interfaces (veth ends, named as its
// zones say) and bridges (docker0, br-…, with the gateway addresses); behind each interface a
// neighbour namespace that sends from the addresses the policy's zones and rules name; each
// container a namespace on its networks at its addresses, listening on the ports it publishes.
// planPolicyLab is pure (the model in, the world and the packets to send out);
// startPolicyLab builds it and sends them. With "iptables": false dockerd writes no rules and
// only owns the bridges and containers, which this builds the same way; docker-proxy (where
// userland-proxy is on) is a listener on the host's published ports.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { compile, type CompileResult } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import type { Packet } from "../../src/analysis/evaluate.js";
import { rowInterfaces } from "../../src/analysis/matrix.js";
import type { Policy } from "../../src/model/types.js";
import { addressOn, byName, publishingNetwork } from "../../src/model/derive.js";
import { bits, broadcastOf, cidrContains, formatIp, hostMask, isError, networkOf, parseCidr, parseIp, specContains, type AddressSpec, type Family, type Ip, type Proto } from "../../src/model/values.js";
import { createNetns, deleteNetns, type Netns } from "./kernel.js";
import { run, runAsync, killQuiet } from "./proc.js";
import { spawn, type ChildProcess } from "node:child_process";

const NETPROBE = fileURLToPath(new URL("./netprobe.mjs", import.meta.url));

export interface LabIface {
  /** The host's interface, as the policy names it. */
  name: string;
  host4: string;
  host6: string;
  /** The neighbour's own addresses (no zone names them unless a range holds them). */
  nbr4: string;
  nbr6: string;
  /** More addresses the neighbour sends from: the ones the policy's zones and rules name. */
  sources: string[];
}

export interface LabBridge {
  name: string;
  /** Gateway addresses with the subnet's prefix. */
  addrs: string[];
  subnets: string[];
}

export interface LabContainer {
  name: string;
  /** A default route via its first endpoint's gateway (its gateway network's: none on internal networks alone). */
  routed: boolean;
  endpoints: { bridge: string; addrs: string[]; gateways: string[] }[];
  tcp: number[];
  udp: number[];
}

export interface LabListener {
  bind: string;
  proto: Proto;
  port: number;
}

export type ProbeProto = Proto | "icmp";

export interface LabProbe {
  /** Where it is sent from: a neighbour (by the host interface it sits behind) or a container. */
  from: { iface: string } | { container: string } | { host: true };
  family: Family;
  src: string;
  dst: string;
  proto: ProbeProto;
  port?: number;
  /** The source port (TCP and UDP): else one the kernel picks. */
  sport?: number;
}

export interface PolicyLabPlan {
  ifaces: LabIface[];
  bridges: LabBridge[];
  containers: LabContainer[];
  /** What listens on the host: its services (the host block) and docker-proxy's ports. */
  hostListeners: LabListener[];
  /** Hairpin mode on the bridges' ports (userland-proxy off, as dockerd sets it). */
  hairpin: boolean;
  probes: LabProbe[];
}

/** The interface sources arrive on when only a `from` places them (a zone without interfaces). */
export const ANY_IFACE = "dwx0";
/** Neighbours answer on this TCP port (forwarded and outbound paths). */
export const NEIGHBOUR_PORT = 7000;

const ip = (family: Family, value: bigint) => formatIp({ family, value });

/** Addresses that stand for a source: its first hosts and, for a wide range, one near its end. */
function representatives(a: AddressSpec): string[] {
  if (a.kind === "range") return [...new Set([ip(a.range.family, a.range.from), ip(a.range.family, a.range.to)])];
  const c = a.cidr;
  const size = hostMask(c);
  if (size === 0n) return [ip(c.family, c.value)];
  const net = networkOf(c);
  if (size < 4n) return [ip(c.family, net + 1n)];
  return [ip(c.family, net + 2n), ip(c.family, broadcastOf(c) - 2n)];
}

const portsOf = (r: { from: number; to: number }) => [...new Set([r.from, r.to])];

/** The lab for a compiled policy (its model with Docker's facts added). */
export function planPolicyLab(p: Policy): PolicyLabPlan {
  // Interfaces: every one a zone names, a stand-in for each wildcard (as the matrix has: eth+ → eth0), and one for `from`-only zones.
  // (A zone on a Docker network's bridge has that bridge: no interface of its own.)
  const bridgeNames = new Set(p.networks.map((n) => n.bridge.value));
  const names: string[] = rowInterfaces(p, undefined).filter((i) => !bridgeNames.has(i));
  if (p.zones.some((z) => !z.builtin && z.interfaces.length === 0) || names.length === 0) names.push(ANY_IFACE);
  const ifaces: LabIface[] = names.map((name, i) => ({ name, host4: `10.200.${i}.1`, host6: `fd00:200:${i}::1`, nbr4: `10.200.${i}.2`, nbr6: `fd00:200:${i}::2`, sources: [] }));
  const ifaceOfZone = (zone: string | undefined): string => {
    const z = p.zones.find((x) => x.name === zone);
    const first = z?.interfaces.map((i) => (i.value.endsWith("+") ? names.find((n) => n.startsWith(i.value.slice(0, -1))) : i.value)).find((i) => i !== undefined && names.includes(i));
    return first ?? (z && !z.builtin ? ANY_IFACE : names[0]!);
  };
  const placed = new Set<string>(ifaces.flatMap((f) => [f.host4, f.host6, f.nbr4, f.nbr6]));
  // An address of a Docker network's is its containers' (a zone on the network's bridge names them): a neighbour sending from
  // it, with the host's route to it, would take it over (a review found every container cell closed that way).
  const subnets = p.networks.flatMap((n) => n.subnets.map((sn) => sn.value));
  const place = (addr: string, iface: string) => {
    const v = parseIp(addr);
    if (placed.has(addr) || addr.startsWith("127.") || addr === "::1" || (!isError(v) && subnets.some((sn) => sn.family === v.family && cidrContains(sn, v)))) return;
    placed.add(addr);
    (ifaces.find((f) => f.name === iface) ?? ifaces[0]!).sources.push(addr);
  };
  // A zone's addresses sit behind its interface; a rule's narrower ones behind its first zone's.
  for (const z of p.zones) for (const s of z.sources) for (const a of representatives(s.value)) place(a, ifaceOfZone(z.name));
  const rules = [...p.allows, ...p.forwards, ...(p.host?.rules ?? [])];
  for (const r of rules) for (const s of r.sources) for (const a of representatives(s.value)) {
    const v = parseIp(a) as Ip; // made by representatives(): always an address
    const zone = r.zones.find((z) => p.zones.find((x) => x.name === z.name)?.sources.some((src) => specContains(src.value, v))) ?? r.zones[0];
    place(a, ifaceOfZone(zone?.name));
  }

  // Bridges and containers, as dockerd makes them.
  const bridges: LabBridge[] = [];
  for (const n of p.networks) {
    if (!p.containers.some((c) => c.endpoints.some((e) => e.network.name === n.name)) && !n.implicit) continue;
    const addrs = n.subnets.map((s) => {
      const gw = n.gateways.find((g) => g.value.family === s.value.family)?.value;
      return `${gw ? formatIp(gw) : ip(s.value.family, networkOf(s.value) + 1n)}/${s.value.prefix}`;
    });
    bridges.push({ name: n.bridge.value, addrs, subnets: n.subnets.map((s) => `${ip(s.value.family, networkOf(s.value))}/${s.value.prefix}`) });
  }
  const nets = byName(p.networks);
  const containers: LabContainer[] = p.containers.map((c) => {
    // Its gateway network first: the default route goes there, as dockerd sets it (none for a container on internal networks alone).
    const gw = publishingNetwork(c, nets);
    const endpoints = [...c.endpoints].sort((a, b) => Number(b.network.name === gw?.name) - Number(a.network.name === gw?.name));
    const tcp = new Set<number>();
    const udp = new Set<number>();
    // Every port of a published range listens (a matrix probes each; the probes here, its ends).
    for (const pub of c.publishes) for (let port = pub.spec.container.from; port <= pub.spec.container.to && port < pub.spec.container.from + 64; port++) (pub.spec.proto === "udp" ? udp : tcp).add(port);
    return {
      name: c.name,
      routed: gw !== undefined,
      endpoints: endpoints.map((e) => {
        const n = p.networks.find((x) => x.name === e.network.name)!;
        const bridge = bridges.find((b) => b.name === n.bridge.value)!;
        return {
          bridge: bridge.name,
          addrs: e.addresses.map((a) => `${formatIp(a.value)}/${n.subnets.find((s) => s.value.family === a.value.family)?.value.prefix ?? bits(a.value.family)}`),
          gateways: bridge.addrs.map((g) => g.split("/")[0]!),
        };
      }),
      tcp: [...tcp],
      udp: [...udp],
    };
  });

  // The host's listeners: its services, and docker-proxy on every published port.
  const hostListeners: LabListener[] = [];
  const listen = (l: LabListener) => {
    if (!hostListeners.some((x) => x.bind === l.bind && x.proto === l.proto && x.port === l.port)) hostListeners.push(l);
  };
  for (const r of p.host?.rules ?? []) {
    if (r.proto.value === "icmp") continue;
    for (const range of r.ports) for (const port of portsOf(range.value)) listen({ bind: "::", proto: r.proto.value as Proto, port });
  }
  if (p.docker.userlandProxy) {
    for (const c of p.containers) for (const pub of c.publishes) for (const port of portsOf(pub.spec.host)) listen({ bind: pub.spec.hostIp ? formatIp(pub.spec.hostIp) : "::", proto: pub.spec.proto, port });
  }

  // The packets: from every neighbour address to the host (its services, every published
  // port, ping), to 127.0.0.1 where a port is published on it, straight to every container's
  // published ports, and to the other neighbours; from every container out to a neighbour.
  const probes: LabProbe[] = [];
  const add = (pr: LabProbe) => {
    if (!probes.some((x) => JSON.stringify(x) === JSON.stringify(pr))) probes.push(pr);
  };
  const hostPorts: [Proto, number][] = [];
  const addPort = (proto: Proto, port: number) => {
    if (!hostPorts.some(([a, b]) => a === proto && b === port)) hostPorts.push([proto, port]);
  };
  for (const l of hostListeners) addPort(l.proto, l.port);
  for (const c of p.containers) for (const pub of c.publishes) for (const port of portsOf(pub.spec.host)) addPort(pub.spec.proto, port);
  const loopback = p.containers.flatMap((c) => c.publishes.filter((pub) => pub.spec.hostIp && formatIp(pub.spec.hostIp) === "127.0.0.1"));
  for (const f of ifaces) {
    for (const src of [f.nbr4, f.nbr6, ...f.sources]) {
      const family: Family = src.includes(":") ? 6 : 4;
      const hostAddr = family === 4 ? f.host4 : f.host6;
      const from = { iface: f.name };
      for (const [proto, port] of hostPorts) add({ from, family, src, dst: hostAddr, proto, port });
      add({ from, family, src, dst: hostAddr, proto: "icmp" });
      if (family === 4) for (const pub of loopback) add({ from, family, src, dst: "127.0.0.1", proto: pub.spec.proto, port: pub.spec.host.from });
      for (const c of containers) {
        for (const e of c.endpoints) {
          for (const a of e.addrs) {
            const dst = a.split("/")[0]!;
            if (dst.includes(":") !== (family === 6)) continue;
            for (const port of c.tcp) add({ from, family, src, dst, proto: "tcp", port });
            for (const port of c.udp) add({ from, family, src, dst, proto: "udp", port });
          }
        }
      }
      for (const g of ifaces) if (g !== f) add({ from, family, src, dst: family === 4 ? g.nbr4 : g.nbr6, proto: "tcp", port: NEIGHBOUR_PORT });
    }
  }
  for (const c of containers) {
    for (const a of c.endpoints[0]?.addrs ?? []) {
      const src = a.split("/")[0]!;
      const family: Family = src.includes(":") ? 6 : 4;
      add({ from: { container: c.name }, family, src, dst: family === 4 ? ifaces[0]!.nbr4 : ifaces[0]!.nbr6, proto: "tcp", port: NEIGHBOUR_PORT });
    }
  }
  return { ifaces, bridges, containers, hostListeners, probes, hairpin: !p.docker.userlandProxy };
}

/** With "iptables": true, what dockerd itself writes for the policy's networks and containers
 *  (dockwall reproduces it rule for rule: the parity tests) — the rules a coexisting policy meets. */
export function dockersOwn(text: string, p: Policy): string {
  const lines = text.split("\n").map((l) => l.replace(/#.*/, ""));
  // The whole block that starts on the line of the span, to its closing brace.
  const block = (s: { line: number }) => {
    const out: string[] = [];
    let depth = 0;
    for (let i = s.line - 1; i < lines.length; i++) {
      out.push(lines[i]!);
      depth += (lines[i]!.match(/\{/g) ?? []).length - (lines[i]!.match(/\}/g) ?? []).length;
      if (depth <= 0 && out.join("").includes("{")) break;
    }
    return out.join("\n");
  };
  const docker = block(p.docker.span!)
    .replace(/\bpublished\s+\w+\s*;/, "")
    .replace(/\biptables\s+(on|yes)\s*;/, "iptables off; published open;");
  return [docker, ...p.networks.filter((n) => !n.implicit).map((n) => block(n.span)), ...p.containers.map((c) => block(c.span))].join("\n") + "\n";
}

/** Every example and golden policy, by path, with its text: what the lab's tests run. */
export function shippedPolicies(): [string, string][] {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  return [
    ...readdirSync(`${root}examples`).filter((f) => f.endsWith(".dw")).map((f): [string, string] => [`examples/${f}`, readFileSync(`${root}examples/${f}`, "utf8")]),
    ...readdirSync(`${root}test/golden`, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d): [string, string] => [`test/golden/${d.name}/policy.dw`, readFileSync(`${root}test/golden/${d.name}/policy.dw`, "utf8")]),
  ];
}

/**
 * The policy's rules loaded into the lab's host as a user loads them: the commands to run first
 * (Docker 28.0.0's ipsets), with "iptables": true dockerd's own chains, then the policy's with
 * --noflush. What the loads said on stderr
 * (empty when every one loaded).
 */
export function loadPolicy(lab: PolicyLab, text: string, p: Policy): string {
  const said: string[] = [];
  // The commands its header says to run first (Docker 28.0.0's ipsets, which its rules match).
  const setup = compile(text, { noRender: true }).generated?.setup;
  // (With iptables on, dockerd's own rules stand in for it here: their commands too, where its rules match sets of its own, Docker 28.0.0's.)
  const ownSetup = p.docker.iptables ? compile(dockersOwn(text, p), { noRender: true }).generated?.setup : undefined;
  for (const f of [4, 6] as const) for (const c of new Set([...(setup?.[f] ?? []), ...(ownSetup?.[f] ?? [])])) said.push(lab.host.run(c.split(" ")).stderr);
  if (p.docker.iptables) {
    const own = dockersOwn(text, p);
    for (const f of [4, 6] as const) said.push(lab.host.restore(f, compile(own, { format: f === 4 ? "iptables" : "ip6tables" }).output!).stderr);
  }
  for (const f of [4, 6] as const) said.push(lab.host.restore(f, compile(text, { format: f === 4 ? "iptables" : "ip6tables" }).output!, { noflush: p.docker.iptables }).stderr);
  // Then the jumps its header says to make once (apply and watch make them), first in their chains.
  const rulesets = compile(text, { noRender: true }).generated?.rulesets ?? {};
  for (const f of [4, 6] as const) {
    const tool = f === 4 ? "iptables" : "ip6tables";
    for (const j of rulesets[f]?.firstJumps ?? []) {
      if (j.dockerMakes) continue;
      if (lab.host.run([tool, "-t", j.table, "-C", j.chain, "-j", j.target]).status !== 0) said.push(lab.host.run([tool, "-t", j.table, "-I", j.chain, "-j", j.target]).stderr);
    }
  }
  return said.filter(Boolean).join("\n");
}

/** The policy compiled, its world built and its rules loaded; `fn` runs in it, and the world is taken down after. */
export async function inPolicyLab<T>(name: string, text: string, fn: (w: { r: CompileResult; p: Policy; plan: PolicyLabPlan; lab: PolicyLab }) => Promise<T>): Promise<T> {
  const r = compile(text, { noRender: true, file: name });
  if (!r.ok) throw new Error(formatDiagnostics(r.diagnostics, name, text));
  const plan = planPolicyLab(r.policy!);
  const lab = await startPolicyLab(plan);
  try {
    const said = loadPolicy(lab, text, r.policy!);
    if (said) throw new Error(`${name}: its rules did not load: ${said}`);
    return await fn({ r, p: r.policy!, plan, lab });
  } finally {
    await lab.stop();
  }
}

/** The host's addresses and routes, and where route_localnet is on (the lab's bridges with hairpin: as dockerd sets it), as the packet evaluator takes them. */
export function hostView(plan: PolicyLabPlan): Pick<Packet, "local" | "routes" | "localnet"> {
  const local = [...plan.ifaces.flatMap((f) => [f.host4, f.host6]), ...plan.bridges.flatMap((b) => b.addrs.map((a) => a.split("/")[0]!))];
  const routes = [
    ...plan.bridges.flatMap((b) => b.subnets.map((dst) => ({ dst, dev: b.name }))),
    ...plan.ifaces.flatMap((f) => [
      { dst: `10.200.${plan.ifaces.indexOf(f)}.0/24`, dev: f.name },
      { dst: `fd00:200:${plan.ifaces.indexOf(f)}::/64`, dev: f.name },
      ...f.sources.map((s) => ({ dst: s, dev: f.name })),
    ]),
  ];
  return { local, routes, localnet: { on: plan.hairpin ? plan.bridges.map((b) => b.name) : [], read: true } };
}

/** The packet a probe sends, as the evaluator takes it (the first packet of a new connection). */
export function packetOf(plan: PolicyLabPlan, pr: LabProbe): Packet {
  const c = "container" in pr.from ? plan.containers.find((x) => x.name === (pr.from as { container: string }).container)! : undefined;
  return {
    family: pr.family,
    in: c ? c.endpoints[0]!.bridge : (pr.from as { iface: string }).iface,
    src: pr.src,
    dst: pr.dst,
    proto: pr.proto,
    sport: 40000,
    dport: pr.port,
    icmpType: pr.proto === "icmp" ? (pr.family === 4 ? 8 : 128) : undefined,
    state: "NEW",
    ...hostView(plan),
  };
}

/** Whether something answers where a packet ends up (after DNAT, if any). */
export function listening(plan: PolicyLabPlan, pr: LabProbe, path: "input" | "forward" | "output", to: { addr: string; port?: number }): boolean {
  if (pr.proto === "icmp") return true;
  const port = to.port ?? pr.port!;
  if (path === "input") {
    return plan.hostListeners.some((l) => l.proto === pr.proto && l.port === port && (l.bind === "::" || l.bind === to.addr));
  }
  if (plan.ifaces.some((f) => f.nbr4 === to.addr || f.nbr6 === to.addr)) return pr.proto === "tcp" && port === NEIGHBOUR_PORT;
  const c = plan.containers.find((x) => x.endpoints.some((e) => e.addrs.some((a) => a.split("/")[0] === to.addr)));
  return c !== undefined && (pr.proto === "tcp" ? c.tcp : c.udp).includes(port);
}

export interface PolicyLab {
  host: Netns;
  plan: PolicyLabPlan;
  /** Sends every probe (all at once, per namespace); open: something answered. */
  probe(probes: LabProbe[], timeoutMs?: number): Promise<{ open: boolean; reply: string }[]>;
  /** One more address the neighbour behind IFACE sends from (routed back to it by the host); false when another neighbour has it. */
  addSource(iface: string, addr: string): boolean;
  /** The host listens on these ports too (on every address), where it does not yet: a service the policy does not name. */
  listenHost(ports: { proto: Proto; port: number }[]): Promise<void>;
  /** Every container listens on these ports too, where it does not yet: a port it does not publish. */
  listenContainers(ports: { proto: Proto; port: number }[]): Promise<void>;
  stop(): Promise<void>;
}

function ipOk(ns: Netns, argv: string[]): void {
  const r = ns.run(argv);
  if (r.status !== 0) throw new Error(`${argv.join(" ")} in ${ns.name}: ${r.stderr.trim()}`);
}

/**
 * The lab's `ip` commands and sysctls, run in the order given: each run of commands in one namespace
 * is one `ip -n NS -batch -` (a lab is a thousand commands; one process each was most of a lab's start).
 */
class IpBatch {
  private steps: { ns: Netns; argv: string[] }[] = [];
  ip(ns: Netns, argv: string[]): void {
    if (argv[0] !== "ip") throw new Error(`not an ip command: ${argv.join(" ")}`);
    // A batch line has no options: the family comes from the addresses (all of the lab's are literal).
    const args = argv.slice(1).filter((a) => a !== "-6");
    this.steps.push({ ns, argv: args });
  }
  sysctl(ns: Netns, setting: string): void {
    this.steps.push({ ns, argv: ["sysctl", setting] });
  }
  /**
   * Each namespace's steps in the order given, its ip commands before its sysctls, the first namespace's (the host's, which makes
   * the links into the others) before the others': one batch per namespace.
   */
  run(): void {
    const order = [...new Set(this.steps.map((x) => x.ns))];
    const steps = order.flatMap((ns) => {
      const mine = this.steps.filter((x) => x.ns === ns);
      return [...mine.filter((x) => x.argv[0] !== "sysctl"), ...mine.filter((x) => x.argv[0] === "sysctl")];
    });
    this.steps = [];
    for (let i = 0; i < steps.length; ) {
      const { ns } = steps[i]!;
      const sysctl = steps[i]!.argv[0] === "sysctl";
      let j = i;
      while (j < steps.length && steps[j]!.ns === ns && (steps[j]!.argv[0] === "sysctl") === sysctl) j++;
      const group = steps.slice(i, j);
      if (sysctl) {
        ipOk(ns, ["sysctl", "-qw", ...group.map((g) => g.argv[1]!)]);
      } else {
        const r = run(["ip", "-n", ns.name, "-batch", "-"], { input: group.map((g) => g.argv.join(" ")).join("\n") + "\n" });
        if (r.status !== 0) {
          const line = Number(/-:(\d+)/.exec(r.stderr)?.[1] ?? 0);
          const failed = group[line - 1]?.argv.join(" ") ?? "(a batch)";
          throw new Error(`ip ${failed} in ${ns.name}: ${r.stderr.trim()}`);
        }
      }
      i = j;
    }
  }
}

type ProbeResult = { open: boolean; reply: string };

/** A listener in a namespace, which sends that namespace's probes too (netprobe.mjs: one process, not one per batch). */
interface Agent {
  child: ChildProcess;
  ns: Netns;
  send(probes: object[], timeoutMs: number): Promise<ProbeResult[]>;
}

async function startListener(ns: Netns, name: string, args: string[]): Promise<Agent> {
  const child = spawn("nsenter", [`--net=${ns.path}`, process.execPath, NETPROBE, "listen", name, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  const pending = new Map<number, { ok: (r: ProbeResult[]) => void; fail: (e: Error) => void }>();
  let nextId = 0;
  let err = "";
  let gone: Error | undefined;
  child.stderr!.on("data", (d) => (err += d));
  child.stdin!.on("error", () => {});
  await new Promise<void>((ok, fail) => {
    let out = "";
    let ready = false;
    child.stdout!.on("data", (d) => {
      out += d;
      let nl;
      while ((nl = out.indexOf("\n")) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (!ready) {
          if (line === "ready") {
            ready = true;
            ok();
          }
          continue;
        }
        const { id, results } = JSON.parse(line) as { id: number; results: ProbeResult[] };
        pending.get(id)?.ok(results);
        pending.delete(id);
      }
    });
    child.on("exit", (code) => {
      gone = new Error(`listener ${name} in ${ns.name} exited ${code}: ${err.trim()}`);
      for (const w of pending.values()) w.fail(gone);
      pending.clear();
      fail(gone);
    });
  });
  return {
    child,
    ns,
    send(probes, timeoutMs) {
      if (gone) return Promise.reject(gone);
      const id = nextId++;
      return new Promise<ProbeResult[]>((ok, fail) => {
        pending.set(id, { ok, fail });
        child.stdin!.write(JSON.stringify({ id, timeout: timeoutMs, probes }) + "\n");
      });
    },
  };
}

export async function startPolicyLab(plan: PolicyLabPlan): Promise<PolicyLab> {
  const made: Netns[] = [];
  const children: ChildProcess[] = [];
  const agents = new Map<Netns, Agent>();
  const stop = async () => {
    for (const c of children) if (c.pid) killQuiet(c.pid, "SIGKILL");
    for (const ns of made) deleteNetns(ns.name);
  };
  try {
    const host = createNetns("-ph");
    made.push(host);
    const batch = new IpBatch();
    batch.sysctl(host, "net.ipv4.ip_forward=1");
    batch.sysctl(host, "net.ipv6.conf.all.forwarding=1");
    const neighbours = new Map<string, Netns>();
    for (const f of plan.ifaces) {
      const nb = createNetns("-pn");
      made.push(nb);
      neighbours.set(f.name, nb);
      batch.ip(host, ["ip", "link", "add", f.name, "type", "veth", "peer", "name", "up0", "netns", nb.name]);
      batch.ip(host, ["ip", "addr", "add", `${f.host4}/24`, "dev", f.name]);
      batch.ip(host, ["ip", "addr", "add", `${f.host6}/64`, "dev", f.name, "nodad"]);
      batch.ip(host, ["ip", "link", "set", f.name, "up"]);
      batch.ip(nb, ["ip", "addr", "add", `${f.nbr4}/24`, "dev", "up0"]);
      batch.ip(nb, ["ip", "addr", "add", `${f.nbr6}/64`, "dev", "up0", "nodad"]);
      for (const s of f.sources) {
        batch.ip(nb, ["ip", "addr", "add", s.includes(":") ? `${s}/128` : `${s}/32`, "dev", "up0", ...(s.includes(":") ? ["nodad"] : [])]);
        batch.ip(host, ["ip", "route", "add", s, "via", s.includes(":") ? f.nbr6 : f.nbr4, "dev", f.name]);
      }
      batch.ip(nb, ["ip", "link", "set", "up0", "up"]);
      // The neighbour routes everything via the host, 127.0.0.0/8 included (its own is gone).
      batch.ip(nb, ["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"]);
      batch.ip(nb, ["ip", "route", "add", "default", "via", f.host4]);
      batch.ip(nb, ["ip", "route", "add", "127.0.0.0/8", "via", f.host4]);
      // …and takes answers from 127.0.0.1 on its link, as a neighbour probing the host this way would.
      batch.sysctl(nb, "net.ipv4.conf.up0.route_localnet=1");
      batch.ip(nb, ["ip", "-6", "route", "add", "default", "via", f.host6]);
    }
    for (const b of plan.bridges) {
      batch.ip(host, ["ip", "link", "add", b.name, "type", "bridge"]);
      for (const a of b.addrs) batch.ip(host, ["ip", "addr", "add", a, "dev", b.name, ...(a.includes(":") ? ["nodad"] : [])]);
      batch.ip(host, ["ip", "link", "set", b.name, "up"]);
      // With userland-proxy off, dockerd lets its bridges route 127.0.0.1 (the host's own connections DNATed there from loopback).
      if (plan.hairpin) batch.sysctl(host, `net.ipv4.conf.${b.name}.route_localnet=1`);
    }
    const containerNs = new Map<string, Netns>();
    for (const [ci, c] of plan.containers.entries()) {
      const ns = createNetns("-pc");
      made.push(ns);
      containerNs.set(c.name, ns);
      for (const [ei, e] of c.endpoints.entries()) {
        const veth = `dwv${ci}e${ei}`;
        batch.ip(host, ["ip", "link", "add", veth, "type", "veth", "peer", "name", `eth${ei}`, "netns", ns.name]);
        batch.ip(host, ["ip", "link", "set", veth, "master", e.bridge, "up"]);
        for (const a of e.addrs) batch.ip(ns, ["ip", "addr", "add", a, "dev", `eth${ei}`, ...(a.includes(":") ? ["nodad"] : [])]);
        batch.ip(ns, ["ip", "link", "set", `eth${ei}`, "up"]);
        if (ei === 0 && c.routed) for (const g of e.gateways) batch.ip(ns, ["ip", ...(g.includes(":") ? ["-6"] : []), "route", "add", "default", "via", g]);
        // With userland-proxy off, dockerd turns hairpin mode on for each port of a bridge: a container reaches its own published port through the host's address.
        if (plan.hairpin) batch.ip(host, ["ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on"]);
      }
    }
    batch.run();
    // Everything listens before the first probe.
    const starts: Promise<Agent>[] = [];
    for (const [name, nb] of neighbours) starts.push(startListener(nb, `neighbour-${name}`, [`tcp=${NEIGHBOUR_PORT}`]));
    for (const c of plan.containers) starts.push(startListener(containerNs.get(c.name)!, c.name, [`tcp=${c.tcp.join(",")}`, `udp=${c.udp.join(",")}`]));
    const binds = [...new Set(plan.hostListeners.map((l) => l.bind))];
    for (const bind of binds) {
      const ls = plan.hostListeners.filter((l) => l.bind === bind);
      const ports = (proto: Proto) => ls.filter((l) => l.proto === proto).map((l) => l.port).join(",");
      starts.push(startListener(host, `host`, [`tcp=${ports("tcp")}`, `udp=${ports("udp")}`, `bind=${bind}`]));
    }
    for (const s of await Promise.allSettled(starts)) {
      if (s.status === "fulfilled") {
        children.push(s.value.child);
        if (!agents.has(s.value.ns)) agents.set(s.value.ns, s.value);
      } else throw s.reason;
    }
    const nsOf = (pr: LabProbe): Netns => ("iface" in pr.from ? neighbours.get(pr.from.iface)! : "container" in pr.from ? containerNs.get(pr.from.container)! : host);
    return {
      host,
      plan,
      async probe(probes, timeoutMs = 800) {
        const groups = new Map<Netns, number[]>();
        probes.forEach((pr, i) => {
          const ns = nsOf(pr);
          groups.set(ns, [...(groups.get(ns) ?? []), i]);
        });
        const results: { open: boolean; reply: string }[] = new Array(probes.length);
        await Promise.all(
          [...groups].map(async ([ns, idx]) => {
            const batch = idx.map((i) => ({ src: probes[i]!.src, dst: probes[i]!.dst, port: probes[i]!.port, sport: probes[i]!.sport, proto: probes[i]!.proto }));
            const agent = agents.get(ns);
            let out: ProbeResult[];
            if (agent) out = await agent.send(batch, timeoutMs);
            else {
              // A namespace where nothing listens (the host, without services or docker-proxy): a process for the batch.
              const r = await runAsync(["nsenter", `--net=${ns.path}`, process.execPath, NETPROBE, "probe", String(timeoutMs)], { input: JSON.stringify(batch), timeoutMs: timeoutMs * 4 + 10_000 });
              if (r.status !== 0) throw new Error(`probes from ${ns.name} failed (${r.status}): ${r.stderr.trim()}`);
              out = JSON.parse(r.stdout) as ProbeResult[];
            }
            idx.forEach((i, k) => (results[i] = out[k]!));
          }),
        );
        return results;
      },
      addSource(iface, addr) {
        const nb = neighbours.get(iface);
        const f = plan.ifaces.find((x) => x.name === iface);
        if (!nb || !f) throw new Error(`no neighbour behind ${iface}`);
        const v6 = addr.includes(":");
        if (f.sources.includes(addr) || addr === f.nbr4 || addr === f.nbr6) return true;
        if (plan.ifaces.some((x) => x !== f && (x.sources.includes(addr) || x.nbr4 === addr || x.nbr6 === addr))) return false;
        // An address of a Docker network's (a container's own, spoofed from outside) stays the bridge's: a route to the neighbour would steal it.
        const ip = parseIp(addr);
        if (isError(ip) || plan.bridges.some((b) => b.subnets.some((sn) => { const c = parseCidr(sn); return !isError(c) && c.family === ip.family && cidrContains(c, ip); }))) return false;
        ipOk(nb, ["ip", "addr", "add", v6 ? `${addr}/128` : `${addr}/32`, "dev", "up0", ...(v6 ? ["nodad"] : [])]);
        ipOk(host, ["ip", "route", "add", addr, "via", v6 ? f.nbr6 : f.nbr4, "dev", iface]);
        f.sources.push(addr);
        return true;
      },
      async listenHost(ports) {
        const more = ports.filter((x) => !plan.hostListeners.some((l) => l.proto === x.proto && l.port === x.port));
        if (!more.length) return;
        const list = (proto: Proto) => [...new Set(more.filter((x) => x.proto === proto).map((x) => x.port))].join(",");
        const agent = await startListener(host, "host", [`tcp=${list("tcp")}`, `udp=${list("udp")}`]);
        children.push(agent.child);
        if (!agents.has(host)) agents.set(host, agent);
        for (const x of more) plan.hostListeners.push({ bind: "::", proto: x.proto, port: x.port });
      },
      async listenContainers(ports) {
        for (const c of plan.containers) {
          const more = ports.filter((x) => !(x.proto === "tcp" ? c.tcp : c.udp).includes(x.port));
          if (!more.length) continue;
          const list = (proto: Proto) => [...new Set(more.filter((x) => x.proto === proto).map((x) => x.port))].join(",");
          const agent = await startListener(containerNs.get(c.name)!, c.name, [`tcp=${list("tcp")}`, `udp=${list("udp")}`]);
          children.push(agent.child);
          for (const x of more) (x.proto === "tcp" ? c.tcp : c.udp).push(x.port);
        }
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Every matrix cell of the policy that a neighbour in this world can send, sent for real: the
 * matrix of `rulesets` (what the policy means, with this world's host addresses), its
 * sendable cells, and what the kernel did with each. Once to warm the world up (a new IPv6
 * path's first packets can be lost while neighbours are found), then for the record; a cell
 * the kernel answers otherwise than `expected` says is tried twice more: what stays different
 * is a difference.
 */
export async function probeMatrix(
  lab: PolicyLab,
  plan: PolicyLabPlan,
  p: Policy,
  rulesets: import("../../src/analysis/matrix.js").MatrixContext["rulesets"],
  expected: (c: import("../../src/analysis/matrix.js").MatrixCell) => boolean,
  /** The nftables evaluator's walk instead (a host whose rules are nftables tables). */
  nft?: import("../../src/analysis/matrix.js").MatrixContext["nft"],
  /** More of the matrix's context (nftBefore: each cell's verdict over the rules before a change too). */
  more: Partial<import("../../src/analysis/matrix.js").MatrixContext> = {},
  /** Only the rows of neighbours (zones, any other source): where the containers' and the host's rows are sent elsewhere. */
  opts: { neighboursOnly?: boolean } = {},
): Promise<{ cells: import("../../src/analysis/matrix.js").MatrixCell[]; sendable: import("../../src/analysis/matrix.js").MatrixCell[]; probes: LabProbe[]; open: boolean[] }> {
  const { buildMatrix } = await import("../../src/analysis/matrix.js");
  const { parsePacket } = await import("../../src/analysis/packet.js");
  const view = hostView(plan);
  const m = buildMatrix(
    {
      policy: p,
      rulesets,
      hostAddress: (family, iface) => {
        const f = plan.ifaces.find((x) => x.name === iface);
        return f ? (family === 4 ? f.host4 : f.host6) : undefined;
      },
      host: { addresses: view.local, routes: view.routes ?? [], localnet: view.localnet?.on },
      ...(nft ? { nft } : {}),
      ...more,
    },
    [4, 6],
  );
  const rowOf = new Map(m.rows.map((r) => [r.id, r]));
  const nets = byName(p.networks);
  // Each cell's probe, as sent here: from a neighbour (its source added behind its interface), a container (from its own
  // address on the row's network), or the host itself (from the address the kernel picks: the destination's own, its
  // bridge's toward a container, 127.0.0.1 to loopback).
  const probeOf = (c: (typeof m.cells)[number]): LabProbe | undefined => {
    if (opts.neighboursOnly && !["zone", "other"].includes(rowOf.get(c.row)!.kind)) return undefined;
    const pk = parsePacket(c.probe);
    if ("error" in pk) throw new Error(`${c.probe}: ${pk.error}`);
    const dst = formatIp(pk.dst);
    const base = { family: pk.family, dst, proto: pk.proto, port: pk.dport, ...(pk.src.port !== undefined && pk.src.port !== 40000 ? { sport: pk.src.port } : {}) };
    if (pk.src.kind === "container") {
      const row = rowOf.get(c.row)!;
      const ct = p.containers.find((x) => x.name === (pk.src as { name: string }).name)!;
      const n = nets.get(row.network!)!;
      const a = addressOn(ct, n, pk.family);
      if (!a) throw new Error(`${c.probe}: no address on ${n.name}`);
      // (Not sent: a connection from a port the container's own listener holds, which a socket here cannot bind.)
      const held = plan.containers.find((x) => x.name === ct.name);
      if (base.sport !== undefined && (pk.proto === "tcp" ? held?.tcp : pk.proto === "udp" ? held?.udp : undefined)?.includes(base.sport)) return undefined;
      return { from: { container: ct.name }, src: formatIp(a), ...base };
    }
    if (pk.src.kind === "host") {
      // (Not sent: a port of the host's own that only a listener on one address holds here, docker-proxy's stand-in for a port published on 127.0.0.1: nothing would answer on the others.)
      if (pk.dport !== undefined && !dst.startsWith("127.") && plan.hostListeners.some((l) => l.proto === pk.proto && l.port === pk.dport && l.bind !== "::") && !plan.hostListeners.some((l) => l.proto === pk.proto && l.port === pk.dport && l.bind === "::")) return undefined;
      const gw = plan.bridges.find((b) => b.subnets.some((sn) => { const x = parseCidr(sn); return !isError(x) && x.family === pk.family && cidrContains(x, pk.dst); }))?.addrs.find((g) => g.includes(":") === (pk.family === 6));
      const src = dst.startsWith("127.") ? "127.0.0.1" : gw ? gw.split("/")[0]! : dst;
      return { from: { host: true }, src, ...base };
    }
    // (Not sent: a source that sits behind another interface in this world, as a from-only zone's does, or that is a Docker network's own.)
    if (!pk.in || !plan.ifaces.some((f) => f.name === pk.in) || !lab.addSource(pk.in, formatIp(pk.src.ip))) return undefined;
    return { from: { iface: pk.in }, src: formatIp(pk.src.ip), ...base };
  };
  const all = m.cells.map(probeOf);
  const which = all.map((x) => x !== undefined);
  const sendable = m.cells.filter((_, i) => which[i]);
  // The host's other ports (a column per class of them): something listens there, so that what the kernel lets in answers.
  await lab.listenHost(m.columns.filter((c) => c.kind === "host" && c.host_port !== undefined).map((c) => ({ proto: c.proto as Proto, port: c.host_port! })));
  // The containers' ports that columns of their own addresses name (rules another tool's, or a hand's, accept there).
  await lab.listenContainers(m.columns.filter((c) => c.kind === "network" && c.container_port !== undefined).map((c) => ({ proto: c.proto as Proto, port: c.container_port! })));
  // From the cell's source port where the rules tell ports apart (else one the kernel picks).
  const probes: LabProbe[] = all.filter((x): x is LabProbe => x !== undefined);
  await lab.probe(probes, 800);
  const kernel = await lab.probe(probes, 800);
  for (let round = 0; round < 2; round++) {
    const again = sendable.map((c, i) => (expected(c) !== kernel[i]!.open ? i : -1)).filter((i) => i >= 0);
    if (again.length === 0) break;
    await new Promise((r) => setTimeout(r, 500));
    const res = await lab.probe(again.map((i) => probes[i]!), 800);
    again.forEach((i, k) => (kernel[i] = res[k]!));
  }
  return { cells: m.cells, sendable, probes, open: kernel.map((k) => k.open) };
}

/**
 * Each probe sent (twice: the first warms up neighbour discovery), then the ones whose answer is not
 * `expected` sent again, twice more at most, half a second apart: a connection the kernel let
 * through is sometimes not answered within the timeout on a loaded machine (a SYN-ACK waiting for
 * neighbour discovery), and a real difference stays. Whether each got through.
 */
export async function probeSettled(lab: PolicyLab, probes: LabProbe[], expected: boolean[], timeout = 1000): Promise<boolean[]> {
  await lab.probe(probes, timeout);
  const open = (await lab.probe(probes, timeout)).map((k) => k.open);
  for (let round = 0; round < 2; round++) {
    const again = probes.map((_, i) => i).filter((i) => open[i] !== expected[i]);
    if (again.length === 0) break;
    await new Promise((r) => setTimeout(r, 500));
    const res = await lab.probe(again.map((i) => probes[i]!), timeout);
    again.forEach((i, k) => (open[i] = res[k]!.open));
  }
  return open;
}

/** Each probe sent twice (IPv6 between two neighbours is answered from the second try on), said as "WHAT: open|closed"; "lan" and "wan" stand for those neighbours' addresses. */
export async function probeTwice(lab: PolicyLab, plan: PolicyLabPlan, probes: [string, LabProbe][]): Promise<string[]> {
  const at = (name: string, family: 4 | 6) => {
    const f = plan.ifaces.find((x) => x.name === (name === "lan" ? "eth1" : "eth0"))!;
    return family === 4 ? f.nbr4 : f.nbr6;
  };
  const sent = probes.map(([, p]) => ({ ...p, src: p.src === "lan" || p.src === "wan" ? at(p.src, p.family) : p.src, dst: p.dst === "lan" || p.dst === "wan" ? at(p.dst, p.family) : p.dst }));
  await lab.probe(sent, 2000);
  const got = await lab.probe(sent, 800);
  return probes.map(([what], i) => `${what}: ${got[i]!.open ? "open" : "closed"}`);
}
