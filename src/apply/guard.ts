// The lockout guard of `apply`: would the new rules still accept a new connection of the SSH
// session the admin is in (SSH_CONNECTION)? Decided by the packet evaluator over the compiled
// rule set, and reported as a diagnostic in the policy — the host block, and the rule that
// would have to admit it. Pure.
import { Problems, startOfFile, type Diagnostic } from "../diagnostics.js";
import type { Ruleset } from "../ir/ruleset.js";
import type { Policy } from "../model/types.js";
import { ruleText } from "../targets/iptables.js";
import { evaluate, type Packet } from "../analysis/evaluate.js";
import { isError, parseIp, specContains } from "../model/values.js";
import { formatIp, readIp, unmapped } from "../ir/address.js";

export interface HostAddress {
  iface: string;
  /** a.b.c.d/len or x::y/len */
  cidr: string;
}

/** `ip -o addr show` → every interface's addresses. */
export function parseIpAddr(text: string): HostAddress[] {
  const out: HostAddress[] = [];
  for (const line of text.split("\n")) {
    const m = /^\d+:\s+(\S+?)(?:@\S+)?\s+inet6?\s+(\S+)/.exec(line);
    if (m) out.push({ iface: m[1]!, cidr: m[2]! });
  }
  return out;
}

/** The packet that opens a new connection of the session in SSH_CONNECTION (`CLIENT CPORT SERVER SPORT`). */
export function sshPacket(sshConnection: string, addrs: HostAddress[]): Packet | string {
  const [client, cport, server, sport] = sshConnection.trim().split(/\s+/);
  // (A link-local address's zone, `%eth0`, stays on it: no interface's address is written with one.)
  const zone = (a: string) => (a.includes("%") ? a.slice(a.indexOf("%")) : "");
  const read = (a: string) => readIp(a.slice(0, a.length - zone(a).length));
  if (!client || !server || !read(client) || !read(server) || !/^\d+$/.test(sport ?? "")) return `SSH_CONNECTION='${sshConnection}' is not 'CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT'`;
  const plain = (a: string) => formatIp(unmapped(read(a)!)) + zone(a);
  const serverIp = plain(server);
  const holder = addrs.find((a) => hostAddress(a.cidr) === serverIp);
  if (!holder) return `no interface holds the SSH server address ${serverIp} (SSH_CONNECTION)`;
  return {
    family: serverIp.includes(":") ? 6 : 4,
    in: holder.iface,
    src: plain(client),
    dst: serverIp,
    proto: "tcp",
    sport: Number(cport),
    dport: Number(sport),
    state: "NEW",
    local: addrs.map((a) => hostAddress(a.cidr)),
  };
}

/** An interface's address (`ADDR/LEN`, as `ip -j addr` gives it) as packets are written. */
function hostAddress(cidr: string): string {
  const ip = readIp(cidr.split("/")[0]!);
  if (!ip) throw new Error(`'${cidr}' is not an interface address`);
  return formatIp(ip);
}

/** Zones of the policy that hold this packet (interface and source), for the help text. */
function zonesHolding(p: Policy, pk: Packet): string[] {
  return p.zones
    .filter((z) => (z.interfaces.length === 0 || z.interfaces.some((i) => (i.value.endsWith("+") ? pk.in.startsWith(i.value.slice(0, -1)) : i.value === pk.in))))
    .filter((z) => {
      if (z.sources.length === 0) return true;
      const a = parseIp(pk.src);
      if (isError(a)) return false;
      return z.sources.some((s) => specContains(s.value, a));
    })
    .map((z) => z.name);
}

/**
 * undefined when the session's next connection would be accepted by `rs` (the rules the kernel
 * will hold: apply passes the compiled rules laid over what is loaded); a diagnostic that says
 * why not otherwise. No rule set: the session's family is not touched.
 */
export function lockout(p: Policy, rs: Ruleset | undefined, pk: Packet): Diagnostic | undefined {
  if (!rs) return undefined;
  const v = evaluate(rs, pk);
  if (v.verdict === "ACCEPT" && v.path === "input") return undefined;
  const session = `${pk.src} → ${pk.dst.includes(":") ? `[${pk.dst}]` : pk.dst}:${pk.dport} on ${pk.in}`;
  const problems = new Problems();
  const at = p.host?.span ?? p.docker.span ?? startOfFile;
  const zones = zonesHolding(p, pk);
  const help = zones.length
    ? `add 'allow ${zones[0]} tcp ${pk.dport};' to the host block (zone '${zones[0]}' holds ${pk.src} on ${pk.in}); or apply anyway with --force`
    : `declare a zone that holds ${pk.src}, e.g. zone admin { from ${pk.src}; }, and add 'allow admin tcp ${pk.dport};' to the host block; or apply anyway with --force`;
  let why: string;
  if (v.verdict === "unknown") why = `dockwall cannot tell whether it would pass (${v.why})`;
  else if (v.path === "forward") why = `it would be forwarded to ${v.dnat!.addr}:${v.dnat!.port ?? pk.dport} (a container publishes port ${pk.dport})`;
  else if (v.decided && v.decided.index >= 0) why = `${v.verdict === "DROP" ? "dropped" : "rejected"} by ${v.decided.table} ${v.decided.chain} rule ${v.decided.index + 1}: ${ruleText(v.decided.chain, v.decided.rule!)}`;
  else why = `no rule accepts it, and ${v.decided?.chain ?? "INPUT"}'s policy is ${v.verdict}`;
  problems.error("lockout", at, `the new rules would not accept your SSH session's next connection (${session}): ${why}`, {
    help,
    notes: [{ message: `SSH_CONNECTION says this session came from ${pk.src}` }],
  });
  return problems.items[0];
}

/** `[v6]:port` or `v4:port` (ss's spelling) → address and port. */
function endpoint(s: string): { addr: string; port: string } | undefined {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  if (!m) return undefined;
  const addr = m[1]!.replace(/%.*$/, "");
  return readIp(addr) ? { addr, port: m[2]! } : undefined;
}

/**
 * The SSH sessions open now, as SSH_CONNECTION would say each (`CLIENT CPORT SERVER SPORT`):
 * the established TCP connections (`ss -Htn state established`) to a port sshd listens on
 * (`ss -Htlnp`, whose users are named).
 */
export function sshSessions(listening: string, established: string): string[] {
  const ports = new Set<string>();
  for (const line of listening.split("\n")) {
    if (!/users:\(\("sshd"/.test(line)) continue;
    const local = line.trim().split(/\s+/).map(endpoint).find((e) => e);
    if (local) ports.add(local.port);
  }
  const out: string[] = [];
  for (const line of established.split("\n")) {
    const [local, peer] = line.trim().split(/\s+/).map(endpoint).filter((e) => e);
    if (local && peer && ports.has(local.port)) out.push(`${peer.addr} ${peer.port} ${local.addr} ${local.port}`);
  }
  return out;
}

/**
 * The packet of the SSH session's next connection (SSH_CONNECTION), for apply's lockout guard;
 * a string that says why it cannot be had (the addresses unreadable, SSH_CONNECTION malformed).
 */
export function sessionPacket(sshConnection: string, run: (cmd: string, args: string[]) => string, firstLine: (e: unknown) => string): Packet | { refused: string } {
  let addrs;
  try {
    addrs = parseIpAddr(run("ip", ["-o", "addr", "show"]));
  } catch (e) {
    return { refused: `not applied: cannot list the host's addresses for the lockout guard (${firstLine(e)}); --force applies without it` };
  }
  const pk = sshPacket(sshConnection, addrs);
  return typeof pk === "string" ? { refused: `not applied: the lockout guard cannot check your SSH session: ${pk}; --force applies without it` } : pk;
}
