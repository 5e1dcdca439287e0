// Value parsers for the Words of the language: addresses, ports, publish specs, switches.
// Each returns the value or a ValueError that says which characters are wrong and why,
// so the diagnostic's caret lands on the exact spot (`172.17.0.0./16` → the stray '.').
import { bits, cidrContains, fastIpv4, readIp, type Cidr, type Family, type Ip, type IpRange } from "../ir/address.js";

export { bits, broadcastOf, cidrContains, cidrsOverlap, formatCidr, formatIp, formatNetwork, hostMask, networkOf, type Cidr, type Family, type Ip, type IpRange } from "../ir/address.js";
export type Proto = "tcp" | "udp";

export interface ValueError {
  error: string;
  /** Offset and length of the offending characters within the word. */
  offset: number;
  length: number;
  help?: string;
}

export function isError<T>(v: T | ValueError): v is ValueError {
  return typeof v === "object" && v !== null && "error" in v;
}

export type AddressSpec = { kind: "cidr"; cidr: Cidr } | { kind: "range"; range: IpRange };


function err(error: string, offset: number, length: number, help?: string): ValueError {
  return { error, offset, length, help };
}

function parseIpv4(text: string, base: number): Ip | ValueError {
  const fast = fastIpv4(text);
  if (fast !== undefined) return { family: 4, value: BigInt(fast) };
  const parts = text.split(".");
  if (parts.length !== 4) {
    if (parts.length > 4 || text.endsWith(".")) {
      // Point at the first '.' too many, or the trailing one.
      let seen = 0;
      for (let i = 0; i < text.length; i++) {
        if (text[i] === ".") {
          seen++;
          if (seen === 4 || (i === text.length - 1 && parts.length <= 5))
            return err(`stray '.' in IPv4 address '${text}'`, base + i, 1, `an IPv4 address has four numbers: remove this '.'`);
        }
      }
    }
    return err(`'${text}' is not an IPv4 address: it needs four numbers separated by '.'`, base, text.length);
  }
  let value = 0n;
  let offset = base;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) {
      const what = p === "" ? "an empty number" : `'${p}'`;
      return err(`${what} in IPv4 address '${text}': each part must be 0 to 255`, p === "" ? Math.max(base, offset - 1) : offset, Math.max(1, p.length));
    }
    value = (value << 8n) | BigInt(Number(p));
    offset += p.length + 1;
  }
  return { family: 4, value };
}

function parseIpv6(text: string, base: number): Ip | ValueError {
  const ip = readIp(text);
  if (!ip || ip.family !== 6) return err(`'${text}' is not an IPv6 address`, base, text.length);
  return ip;
}

/** A bare IPv4 or IPv6 address. */
export function parseIp(text: string, base = 0): Ip | ValueError {
  if (text.includes(":")) return parseIpv6(text, base);
  if (/^[\d.]+$/.test(text)) return parseIpv4(text, base);
  return err(`'${text}' is not an IP address`, base, text.length);
}

/** `ADDR` or `ADDR/PREFIX`. */
export function parseCidr(text: string, base = 0): Cidr | ValueError {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIp(addrText, base);
  if (isError(ip)) return ip;
  const max = bits(ip.family);
  // Fields written out (not spread): every Cidr then has one object shape.
  if (slash < 0) return { family: ip.family, value: ip.value, prefix: max, explicitPrefix: false };
  const pText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(pText) || Number(pText) > max) {
    return err(`prefix length '${pText}' must be a number from 0 to ${max}`, base + slash + 1, Math.max(1, pText.length));
  }
  return { family: ip.family, value: ip.value, prefix: Number(pText), explicitPrefix: true };
}

/** `ADDR[/PREFIX]` or `ADDR-ADDR`. */
export function parseAddressSpec(text: string, base = 0): AddressSpec | ValueError {
  const dash = text.indexOf("-");
  if (dash > 0) {
    const a = parseIp(text.slice(0, dash), base);
    if (isError(a)) return a;
    const b = parseIp(text.slice(dash + 1), base + dash + 1);
    if (isError(b)) return b;
    if (a.family !== b.family) return err(`range '${text}' mixes IPv4 and IPv6`, base, text.length);
    if (b.value < a.value) return err(`range '${text}' ends before it starts`, base, text.length, `write the lower address first`);
    return { kind: "range", range: { family: a.family, from: a.value, to: b.value } };
  }
  const c = parseCidr(text, base);
  return isError(c) ? c : { kind: "cidr", cidr: c };
}

/** Whether an address is in a `from` list's item: a network or an a-b range. */
export function specContains(spec: AddressSpec, ip: Ip): boolean {
  return spec.kind === "range" ? spec.range.family === ip.family && spec.range.from <= ip.value && ip.value <= spec.range.to : cidrContains(spec.cidr, ip);
}

export function familyOf(a: AddressSpec): Family {
  return a.kind === "cidr" ? a.cidr.family : a.range.family;
}

export interface PortRange {
  from: number;
  to: number;
}

export function parsePort(text: string, base = 0): number | ValueError {
  if (!/^\d+$/.test(text)) return err(`'${text}' is not a port number`, base, Math.max(1, text.length), `a port is a number from 1 to 65535`);
  const n = Number(text);
  if (n < 1 || n > 65535) return err(`port ${text} is out of range`, base, text.length, `a port is a number from 1 to 65535`);
  return n;
}

export function parsePortRange(text: string, base = 0): PortRange | ValueError {
  const dash = text.indexOf("-");
  if (dash < 0) {
    const p = parsePort(text, base);
    return isError(p) ? p : { from: p, to: p };
  }
  const a = parsePort(text.slice(0, dash), base);
  if (isError(a)) return a;
  const b = parsePort(text.slice(dash + 1), base + dash + 1);
  if (isError(b)) return b;
  if (b < a) return err(`port range '${text}' ends before it starts`, base, text.length, `write the lower port first`);
  return { from: a, to: b };
}

export const rangeLength = (r: PortRange): number => r.to - r.from + 1;

export function parseProto(text: string, base: number): Proto | ValueError {
  if (text === "tcp" || text === "udp") return text;
  return err(`unknown protocol '${text}'`, base, Math.max(1, text.length), `use /tcp or /udp`);
}

export interface PublishSpec {
  hostIp?: Ip;
  host: PortRange;
  container: PortRange;
  proto: Proto;
}

/** A port of 1 to 5 plain digits at `text[from, to)`, 1 to 65535; else 0. */
function plainPort(text: string, from: number, to: number): number {
  if (to <= from || to - from > 5) return 0;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return 0;
    n = n * 10 + (c - 48);
  }
  return n <= 65535 ? n : 0;
}

/** The common case, `HOSTPORT:CONTAINERPORT[/tcp|/udp]` with single ports, in one pass; undefined sends it to the careful path. */
function fastPublish(text: string): PublishSpec | undefined {
  const colon = text.indexOf(":");
  if (colon < 0) return undefined;
  const slash = text.indexOf("/", colon);
  const end = slash < 0 ? text.length : slash;
  let proto: Proto = "tcp";
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (p === "udp") proto = "udp";
    else if (p !== "tcp") return undefined;
  }
  const host = plainPort(text, 0, colon);
  const container = plainPort(text, colon + 1, end);
  if (!host || !container) return undefined;
  return { hostIp: undefined, host: { from: host, to: host }, container: { from: container, to: container }, proto };
}

/** `[HOSTADDR:]HOSTPORT:CONTAINERPORT[/tcp|/udp]`, as `docker run -p` takes it. IPv6 host addresses in brackets. */
export function parsePublish(text: string): PublishSpec | ValueError {
  const fast = fastPublish(text);
  if (fast) return fast;
  let rest = text;
  let proto: Proto = "tcp";
  const slash = rest.lastIndexOf("/");
  if (slash >= 0) {
    const p = parseProto(rest.slice(slash + 1), slash + 1);
    if (isError(p)) return p;
    proto = p;
    rest = rest.slice(0, slash);
  }
  let hostIp: Ip | undefined;
  let base = 0;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) return err(`missing ']' after the IPv6 host address`, 0, rest.length);
    const ip = parseIp(rest.slice(1, close), 1);
    if (isError(ip)) return ip;
    hostIp = ip;
    if (rest[close + 1] !== ":") return err(`expected ':' and the host port after ']'`, close + 1, 1);
    base = close + 2;
    rest = rest.slice(close + 2);
  }
  const parts = rest.split(":");
  if (parts.length === 3 && hostIp === undefined) {
    const ip = parseIp(parts[0]!, base);
    if (isError(ip)) return ip;
    if (ip.family === 6) return err(`an IPv6 host address goes in brackets: [${parts[0]}]`, base, parts[0]!.length);
    hostIp = ip;
    base += parts[0]!.length + 1;
    parts.shift();
  }
  if (parts.length !== 2) {
    return err(`'${text}' is not a publish spec`, 0, text.length, `write [HOSTADDR:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 8080:80 or 127.0.0.1:9000:9000/tcp`);
  }
  const host = parsePortRange(parts[0]!, base);
  if (isError(host)) return host;
  const container = parsePortRange(parts[1]!, base + parts[0]!.length + 1);
  if (isError(container)) return container;
  if (rangeLength(host) !== rangeLength(container)) {
    return err(
      `host ports ${parts[0]} (${rangeLength(host)}) and container ports ${parts[1]} (${rangeLength(container)}) are ranges of different length`,
      base,
      parts[0]!.length + 1 + parts[1]!.length,
      `give both sides the same number of ports, e.g. 8000-8002:80-82`,
    );
  }
  return { hostIp, host, container, proto };
}

/** A published port an allow opens, resolved: one container's host port(s). */
export interface TargetSpec {
  container: string;
  ports: PortRange;
  proto?: Proto;
}

/**
 * An allow's target as written: `NAME[:PORT[-PORT]][/tcp|/udp]`, where NAME is a container
 * or `PROJECT/SERVICE` (every container of a compose service). No port: every port it publishes.
 */
export interface TargetRef {
  /** The container's name, or `PROJECT/SERVICE` as written. */
  name: string;
  service?: { project: string; service: string };
  ports?: PortRange;
  proto?: Proto;
}

/** `NAME[:PORT[-PORT][/tcp|/udp]]` or `PROJECT/SERVICE[:…]` in `allow … to`. */
export function parseTarget(text: string): TargetRef | ValueError {
  const colon = text.indexOf(":");
  const name = colon < 0 ? text : text.slice(0, colon);
  if (name === "") return err(`'${text}' names no container`, 0, 1, `write CONTAINER[:HOSTPORT], e.g. web:8080, api:5353/udp or web (every port it publishes)`);
  let service: TargetRef["service"];
  const slash = name.indexOf("/");
  if (slash >= 0) {
    const project = name.slice(0, slash);
    const svc = name.slice(slash + 1);
    if (!COMPOSE_NAME_RE.test(project) || !COMPOSE_NAME_RE.test(svc)) {
      return err(`'${name}' is neither a container name nor PROJECT/SERVICE`, 0, name.length, `a compose service is named PROJECT/SERVICE (the labels com.docker.compose.project and .service), e.g. shop/web:8080`);
    }
    service = { project, service: svc };
  } else if (!DOCKER_NAME_RE.test(name)) {
    const bad = name.search(/[^A-Za-z0-9_.-]/);
    return err(`'${name}' is not a container name`, Math.max(0, bad), bad >= 0 ? 1 : name.length, `container names have letters, digits, '_', '.' and '-' and start with a letter or digit`);
  }
  if (colon < 0) return service ? { name, service } : { name };
  let rest = text.slice(colon + 1);
  let proto: Proto | undefined;
  const pslash = rest.indexOf("/");
  if (pslash >= 0) {
    const p = parseProto(rest.slice(pslash + 1), colon + 1 + pslash + 1);
    if (isError(p)) return p;
    proto = p;
    rest = rest.slice(0, pslash);
  }
  const ports = parsePortRange(rest, colon + 1);
  if (isError(ports)) return ports;
  return service ? { name, service, ports, proto } : { name, ports, proto };
}

export function parseSwitch(text: string): boolean | ValueError {
  if (text === "on" || text === "yes") return true;
  if (text === "off" || text === "no") return false;
  return err(`expected on or off, not '${text}'`, 0, text.length, `write on/off (yes/no also work)`);
}

export interface Version {
  /** As written. */
  text: string;
  major: number;
  minor?: number;
  patch?: number;
}

export function parseVersion(text: string): Version | ValueError {
  const m = /^(\d+)(?:\.(\d+)(?:\.(\d+))?)?$/.exec(text);
  if (!m) return err(`'${text}' is not a Docker version`, 0, text.length, `write MAJOR[.MINOR[.PATCH]], e.g. 20.10 or 28`);
  return { text, major: Number(m[1]), minor: m[2] === undefined ? undefined : Number(m[2]), patch: m[3] === undefined ? undefined : Number(m[3]) };
}

export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** What Docker accepts as a container or network name (and the policy therefore too). */
export const DOCKER_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Compose project and service names: lower-case letters, digits, '_' and '-' (compose normalises to these). */
const COMPOSE_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Linux refuses interface names longer than 15 bytes, with '/', ':' or white space, and "." / "..". */
export function checkInterfaceName(text: string, allowWildcard: boolean): ValueError | undefined {
  const core = allowWildcard && text.endsWith("+") ? text.slice(0, -1) : text;
  if (text.length > 15) return err(`interface name '${text}' is ${text.length} characters long; Linux allows at most 15`, 15, text.length - 15);
  const bad = core.search(/[/:\s+]/);
  if (bad >= 0) return err(`interface name '${text}' contains '${core[bad]}', which Linux does not allow`, bad, 1);
  if (core === "." || core === ".." || core === "") return err(`'${text}' is not a valid interface name`, 0, text.length);
  if (!/^[\x21-\x7e]+$/.test(core)) return err(`interface name '${text}' has characters Linux does not allow`, 0, text.length);
  return undefined;
}
