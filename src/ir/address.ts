// The one address library: addresses as values (a family and a number), parsed, compared and
// written the same way everywhere — the policy's words (model/values.ts adds their diagnostics),
// the rules dockwall makes, what iptables-save and nft print, what the evaluator walks, and what
// the host says (SSH_CONNECTION, ss). IPv6 text goes through ipaddr.js; IPv4 is read here.
import ipaddr from "ipaddr.js";

export type Family = 4 | 6;

export interface Ip {
  family: Family;
  value: bigint;
}

/** An address with a prefix length: a network (`10.0.0.0/8`) or a single host (`/32`, `/128`). */
export interface Cidr extends Ip {
  prefix: number;
  /** Whether the text carried an explicit `/prefix`. */
  explicitPrefix: boolean;
}

/** An inclusive address range `a-b` (iptables' iprange). */
export interface IpRange {
  family: Family;
  from: bigint;
  to: bigint;
}

export const bits = (f: Family): number => (f === 4 ? 32 : 128);

/** The common case, four plain numbers, without allocating; undefined sends it to the careful path. */
export function fastIpv4(text: string): number | undefined {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return undefined;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else return undefined;
  }
  return dots === 3 && digits > 0 ? value * 256 + part : undefined;
}

export function hostMask(c: { family: Family; prefix: number }): bigint {
  return (1n << BigInt(bits(c.family) - c.prefix)) - 1n;
}

export function networkOf(c: Cidr): bigint {
  return c.value & ~hostMask(c);
}

export function broadcastOf(c: Cidr): bigint {
  return networkOf(c) | hostMask(c);
}

export function cidrContains(net: Cidr, ip: Ip): boolean {
  return net.family === ip.family && (ip.value & ~hostMask(net)) === networkOf(net);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const p = Math.min(a.prefix, b.prefix);
  const mask = hostMask({ family: a.family, prefix: p });
  return (a.value & ~mask) === (b.value & ~mask);
}

export function formatIp(ip: Ip | { family: Family; value: bigint }): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
  }
  const bytes: number[] = [];
  for (let i = 15; i >= 0; i--) bytes.push(Number((ip.value >> BigInt(i * 8)) & 255n));
  return ipaddr.fromByteArray(bytes).toString();
}

/** `a.b.c.d/p` as iptables-save prints it (always with the prefix). */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c)}/${c.prefix}`;
}

/** The network itself (host bits cleared), as iptables prints a source network. */
export function formatNetwork(c: Cidr): string {
  return `${formatIp({ family: c.family, value: networkOf(c) })}/${c.prefix}`;
}

/**
 * An address as a tool prints it (iptables-save, nft, ss, SSH_CONNECTION): four decimal numbers,
 * or IPv6 (a zone, `%eth0`, is not an address); undefined for anything else.
 */
export function readIp(text: string): Ip | undefined {
  const v4 = fastIpv4(text);
  if (v4 !== undefined) return { family: 4, value: BigInt(v4) };
  if (!text.includes(":") || text.includes("%") || !ipaddr.IPv6.isValid(text)) return undefined;
  let value = 0n;
  for (const b of ipaddr.IPv6.parse(text).toByteArray()) value = (value << 8n) | BigInt(b);
  return { family: 6, value };
}

/** `::ffff:a.b.c.d` as the IPv4 address it maps; any other address as it is. */
export function unmapped(ip: Ip): Ip {
  return ip.family === 6 && ip.value >> 32n === 0xffffn ? { family: 4, value: ip.value & 0xffffffffn } : ip;
}

/** The prefix length a netmask (`255.255.255.0`) stands for; undefined when its ones are not contiguous. */
export function prefixOfMask(mask: Ip): number | undefined {
  const width = bits(mask.family);
  const inverted = ~mask.value & ((1n << BigInt(width)) - 1n);
  // The host part must be 0…01…1.
  if ((inverted & (inverted + 1n)) !== 0n) return undefined;
  return width - inverted.toString(2).replace(/^0+$/, "").length;
}

const PLAIN_V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

/**
 * An address or network as one spelling (`NETWORK/PREFIX`, host bits cleared), whichever way
 * iptables-save or a rule wrote it (`10.1.2.3/8`, `10.0.0.0/255.0.0.0`, `::1`); text that is not
 * one, or a mask that is not a prefix (`10.0.0.0/255.0.255.0`: no /N says the same), as written.
 */
export function canonicalAddress(v: string): string {
  // Fast path: a dotted quad with a numeric prefix (what iptables-save prints).
  const m = PLAIN_V4.exec(v);
  if (m) {
    const prefix = m[5] === undefined ? 32 : Number(m[5]);
    const parts = [m[1], m[2], m[3], m[4]].map(Number);
    if (prefix <= 32 && parts.every((x) => x <= 255)) {
      const value = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
      const net = prefix === 0 ? 0 : (value & (0xffffffff << (32 - prefix))) >>> 0;
      return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${prefix}`;
    }
  }
  const slash = v.indexOf("/");
  const ip = readIp(slash < 0 ? v : v.slice(0, slash));
  if (!ip) return v;
  const width = bits(ip.family);
  let prefix = width;
  if (slash >= 0) {
    const p = v.slice(slash + 1);
    if (/^\d+$/.test(p)) prefix = Number(p);
    else {
      const mask = readIp(p);
      if (mask) {
        const len = prefixOfMask(mask);
        if (len === undefined) return v;
        prefix = len;
      }
    }
  }
  const net = prefix >= width ? ip.value : ip.value & ~hostMask({ family: ip.family, prefix });
  return `${formatIp({ family: ip.family, value: net })}/${prefix}`;
}
