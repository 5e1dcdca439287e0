// The packets `dockwall explain` is asked about, as ../shared/spec/analysis.md writes them:
//
//   PACKET := PROTO SRC -> DST [in IFACE] [state new|established|related]
//   PROTO  := tcp | udp | icmp | icmpv6          (icmp: echo-request unless `type NAME` follows)
//   SRC    := ADDR[:PORT] | host[:PORT] | container:NAME[@NETWORK][:PORT]
//   DST    := ADDR[:PORT]                        (IPv6 with a port: [2001:db8::7]:443)
//
// Pure: text → a PacketSpec, or what is wrong with it and where (a column in the text).
import { formatIp, isError, parseIp, type Family, type Ip } from "../model/values.js";

export type PacketSource = { kind: "address"; ip: Ip; port?: number } | { kind: "host"; port?: number } | { kind: "container"; name: string; network?: string; port?: number };

export interface PacketSpec {
  text: string;
  proto: "tcp" | "udp" | "icmp";
  /** icmpv6 was written (or the addresses are IPv6). */
  family: Family;
  /** ICMP type, by number (echo-request unless `type NAME` says). */
  icmpType?: number;
  src: PacketSource;
  dst: Ip;
  dport?: number;
  in?: string;
  state: "NEW" | "ESTABLISHED" | "RELATED";
}

export interface PacketError {
  error: string;
  /** 1-based column in the packet's text. */
  col: number;
  help?: string;
}

const ICMP4: Record<string, number> = { "echo-reply": 0, "destination-unreachable": 3, "echo-request": 8, "time-exceeded": 11, "parameter-problem": 12 };
const ICMP6: Record<string, number> = { "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4, "echo-request": 128, "echo-reply": 129, "router-solicitation": 133, "router-advertisement": 134, "neighbour-solicitation": 135, "neighbour-advertisement": 136 };

const SHAPE = "write a packet as PROTO SRC -> DST [in IFACE] [state new|established|related], e.g. 'tcp 203.0.113.7 -> 198.51.100.1:8080 in eth0'";

/** ADDR[:PORT], [V6]:PORT or a bare IPv6 address. */
function addressPort(word: string): { ip: Ip; port?: number } | string {
  let addr = word;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(word);
  if (v6) {
    addr = v6[1]!;
    port = v6[2];
  } else if ((word.match(/:/g) ?? []).length === 1) {
    [addr, port] = word.split(":") as [string, string];
  }
  const ip = parseIp(addr);
  if (isError(ip)) return `'${addr}' is not an address (${ip.error})`;
  if (port === undefined) return { ip };
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return `'${port}' is not a port (1 to 65535)`;
  return { ip, port: Number(port) };
}

export function parsePacket(text: string): PacketSpec | PacketError {
  // Words with their columns.
  const words: { w: string; col: number }[] = [];
  for (const m of text.matchAll(/\S+/g)) words.push({ w: m[0], col: m.index! + 1 });
  const at = (i: number) => words[i]?.col ?? text.length + 1;
  const fail = (error: string, i: number, help = SHAPE): PacketError => ({ error, col: at(i), help });
  if (words.length === 0) return fail("the packet is empty", 0);
  const protoWord = words[0]!.w;
  if (!["tcp", "udp", "icmp", "icmpv6"].includes(protoWord)) return fail(`'${protoWord}' is not a protocol (tcp, udp, icmp or icmpv6)`, 0);
  const proto = protoWord === "icmpv6" ? "icmp" : (protoWord as PacketSpec["proto"]);
  let i = 1;
  let typeName: { name: string; at: number } | undefined;
  const takeType = () => {
    if (words[i]?.w === "type" && proto === "icmp") {
      if (!words[i + 1]) return fail("'type' needs an ICMP type name or number", i + 1);
      typeName = { name: words[i + 1]!.w, at: i + 1 };
      i += 2;
    }
    return undefined;
  };
  const early = takeType();
  if (early) return early;
  if (!words[i]) return fail("the packet has no source", i);
  const srcWord = words[i]!.w;
  let src: PacketSource;
  // A source port after the host or a container (their names hold no ':'): the one they send from (else any one).
  const named = /^(host|container:[^:]*)(?::(.*))?$/.exec(srcWord);
  let sport: number | undefined;
  if (named && named[2] !== undefined) {
    if (!/^\d+$/.test(named[2]) || Number(named[2]) < 1 || Number(named[2]) > 65535) return fail(`the source port '${named[2]}' is not a port (1-65535)`, i);
    sport = Number(named[2]);
  }
  if (named?.[1] === "host") src = { kind: "host", ...(sport !== undefined ? { port: sport } : {}) };
  else if (named) {
    const [name, network] = named[1]!.slice("container:".length).split("@");
    if (!name) return fail("container: needs a container's name (container:NAME or container:NAME@NETWORK)", i);
    src = { kind: "container", name, network, ...(sport !== undefined ? { port: sport } : {}) };
  } else {
    const a = addressPort(srcWord);
    if (typeof a === "string") return fail(`the source ${a}`, i, "the source is ADDR, ADDR:PORT, [IPv6]:PORT, host, or container:NAME");
    src = { kind: "address", ip: a.ip, port: a.port };
  }
  i++;
  if (words[i]?.w !== "->") return fail(`expected '->' after the source${words[i] ? `, not '${words[i]!.w}'` : ""}`, i);
  i++;
  if (!words[i]) return fail("the packet has no destination", i);
  const d = addressPort(words[i]!.w);
  if (typeof d === "string") return fail(`the destination ${d}`, i, "the destination is ADDR, ADDR:PORT or [IPv6]:PORT");
  const dstAt = i;
  i++;
  let iface: string | undefined;
  let state: PacketSpec["state"] = "NEW";
  while (i < words.length) {
    const w = words[i]!.w;
    if (w === "in") {
      if (!words[i + 1]) return fail("'in' needs the interface the packet arrives on", i + 1);
      iface = words[i + 1]!.w;
      i += 2;
    } else if (w === "state") {
      const s = words[i + 1]?.w;
      if (s !== "new" && s !== "established" && s !== "related") return fail(`'state' is new, established or related${s ? `, not '${s}'` : ""}`, i + 1);
      state = s.toUpperCase() as PacketSpec["state"];
      i += 2;
    } else if (w === "type" && proto === "icmp") {
      const e = takeType();
      if (e) return e;
    } else return fail(`unexpected '${w}'`, i);
  }
  const family: Family = d.ip.family;
  if (protoWord === "icmpv6" && family === 4) return fail(`icmpv6 to the IPv4 address ${formatIp(d.ip)}`, dstAt, "use icmp for IPv4, icmpv6 for IPv6");
  if (protoWord === "icmp" && family === 6) return fail(`icmp to the IPv6 address ${formatIp(d.ip)}`, dstAt, "use icmpv6 for IPv6");
  if (src.kind === "address" && src.ip.family !== family) return fail(`the source is IPv${src.ip.family} and the destination IPv${family}`, 1, "a packet has one family");
  if (proto === "icmp" && d.port !== undefined) return fail("an ICMP packet has no port", dstAt);
  if (proto !== "icmp" && d.port === undefined) return fail(`a ${proto} packet needs a destination port (ADDR:PORT, [IPv6]:PORT)`, dstAt);
  let icmpType: number | undefined;
  if (proto === "icmp") {
    const names = family === 4 ? ICMP4 : ICMP6;
    if (typeName) {
      const n = /^\d+$/.test(typeName.name) ? Number(typeName.name) : names[typeName.name];
      if (n === undefined || n > 255) return fail(`'${typeName.name}' is not an ICMP${family === 6 ? "v6" : ""} type`, typeName.at, `one of ${Object.keys(names).join(", ")}, or a number`);
      icmpType = n;
    } else icmpType = family === 4 ? 8 : 128;
  }
  return { text, proto, family, icmpType, src, dst: d.ip, dport: d.port, in: iface, state };
}
