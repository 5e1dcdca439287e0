// The shell of `dockwall explain`: the packets parsed, the rules read (compiled, or the kernel's
// with --live), each packet explained (explain.ts), printed as text or JSON. Everything it
// decides is in explain.ts and packet.ts; here only what is read and printed.
import type { CompileResult } from "../compile.js";
import { formatPlace } from "../diagnostics.js";
import type { Ruleset } from "../ir/ruleset.js";
import type { Family } from "../model/values.js";
import { explain, ExplainError, formatExplain, type ExplainContext, type ExplainResult } from "./explain.js";
import { parsePacket, type PacketSpec } from "./packet.js";

/** Whether an argument is a packet (it starts with a protocol), not a policy file. */
export function looksLikePacket(arg: string): boolean {
  return /^\s*(tcp|udp|icmp|icmpv6)\s/.test(arg);
}

/** Each packet parsed; the first bad one as an error to print (`packet 2: col 9: …`). */
export function parsePackets(args: string[]): PacketSpec[] | string {
  const out: PacketSpec[] = [];
  const errors: string[] = [];
  args.forEach((a, i) => {
    const p = parsePacket(a);
    if ("error" in p) errors.push(`dockwall: packet ${i + 1} ('${a}'), column ${p.col}: ${p.error}${p.help ? `\n  = help: ${p.help}` : ""}`);
    else out.push(p);
  });
  return errors.length ? errors.join("\n") + "\n" : out;
}

/** The host's addresses and routes from `ip -j addr` and `ip -j route` (both families). */
export function hostNetwork(addrJson: string, routes4: string, routes6: string): { addresses: string[]; routes: { dst: string; dev: string }[] } {
  const addresses: string[] = [];
  for (const link of JSON.parse(addrJson) as { addr_info?: { local?: string }[] }[]) for (const a of link.addr_info ?? []) if (a.local) addresses.push(a.local);
  const routes: { dst: string; dev: string }[] = [];
  for (const [text, def] of [[routes4, "0.0.0.0/0"], [routes6, "::/0"]] as const) {
    for (const r of JSON.parse(text || "[]") as { dst?: string; dev?: string; type?: string }[]) {
      if (!r.dst || !r.dev || (r.type && r.type !== "unicast")) continue;
      routes.push({ dst: r.dst === "default" ? def : r.dst, dev: r.dev });
    }
  }
  return { addresses, routes };
}

/** Every packet explained: the results, or the first packet that cannot be (an error to print, exit 2). */
export function explainAll(ctx: ExplainContext, packets: PacketSpec[], live: boolean): ExplainResult[] | string {
  const out: ExplainResult[] = [];
  for (const [i, p] of packets.entries()) {
    try {
      out.push(explain(ctx, p, live));
    } catch (e) {
      if (!(e instanceof ExplainError)) throw e;
      return `dockwall: packet ${i + 1} ('${p.text}'): ${e.message}${e.help ? `\n  = help: ${e.help}` : ""}\n`;
    }
  }
  return out;
}

export function renderExplain(results: ExplainResult[], json: boolean, file: string | undefined, text: string | undefined): string {
  if (json) return JSON.stringify({ packets: results.map(({ decidingSpan: _, ...r }) => r) }, null, 2) + "\n";
  return results.map((r) => formatExplain(r, (span, label) => formatPlace(span, file ?? "<policy>", text ?? "", label))).join("\n");
}

/** The rules a compile made, per family. */
export function compiledRules(r: CompileResult): Partial<Record<Family, Ruleset>> {
  return r.generated?.rulesets ?? {};
}
