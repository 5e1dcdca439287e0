// A matrix cell's probe read back into the packet the matrix walked (tests that walk it again).
import type { Packet } from "../../src/analysis/evaluate.js";

/** A matrix probe (`tcp 203.0.113.2:40000 -> [2001:db8::1]:8080 in eth0`) as the packet the matrix walked. */
export function probePacket(probe: string, family: 4 | 6, local: string[], routes: Packet["routes"]): Packet {
  const m = /^(tcp|udp|icmp|icmpv6) (\S+) -> (\S+) in (\S+)$/.exec(probe);
  if (!m) throw new Error(`not a probe: ${probe}`);
  // ADDR, ADDR:PORT, [ADDR]:PORT, or an IPv6 ADDR alone.
  const end = (w: string): [string, number | undefined] => {
    const b = /^\[(.+)\]:(\d+)$/.exec(w);
    if (b) return [b[1]!, Number(b[2])];
    if (w.split(":").length > 2) return [w, undefined];
    const [a, port] = w.split(":");
    return [a!, port === undefined ? undefined : Number(port)];
  };
  const [src, sport] = end(m[2]!);
  const [dst, dport] = end(m[3]!);
  const proto = m[1] === "icmpv6" ? "icmp" : (m[1] as Packet["proto"]);
  return { family, in: m[4]!, src, dst, proto, sport, dport, icmpType: proto === "icmp" ? (family === 4 ? 8 : 128) : undefined, state: "NEW", local, routes };
}
