// The shell of `dockwall explain`: the packets parsed, the rules read (compiled, or the kernel's
// with --live), each packet explained (explain.ts), printed as text or JSON. Everything it
// decides is in explain.ts and packet.ts; here only what is read and printed.
import type { CompileResult } from "../compile.js";
import { formatPlace, JSON_VERSION, Problems } from "../diagnostics.js";
import type { Rule, Ruleset } from "../ir/ruleset.js";
import type { Policy } from "../model/types.js";
import { nftOrigins, NFT_TABLE } from "../targets/nft.js";
import { parseNftJson, type NftRuleset } from "./nfteval.js";
import type { Family } from "../model/values.js";
import { explain, ExplainError, formatExplain, type ExplainContext, type ExplainResult } from "./explain.js";
import { matrixCost, rowLabel, type MatrixContext } from "./matrix.js";
import { nftAfter, nftReachability, REACH_MAX, type ReachChange } from "./reach.js";
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
export function hostNetwork(addrJson: string, routes4: string, routes6: string): { addresses: string[]; routes: { dst: string; dev: string }[]; interfaces: string[] } {
  const addresses: string[] = [];
  const interfaces: string[] = [];
  for (const link of JSON.parse(addrJson) as { ifname?: string; master?: string; addr_info?: { local?: string }[] }[]) {
    // A bridge's port (a container's veth): what arrives there is seen on the bridge.
    if (link.ifname && !link.master) interfaces.push(link.ifname);
    for (const a of link.addr_info ?? []) if (a.local) addresses.push(a.local);
  }
  const routes: { dst: string; dev: string }[] = [];
  for (const [text, def] of [[routes4, "0.0.0.0/0"], [routes6, "::/0"]] as const) {
    for (const r of JSON.parse(text || "[]") as { dst?: string; dev?: string; type?: string }[]) {
      if (!r.dst || !r.dev || (r.type && r.type !== "unicast")) continue;
      routes.push({ dst: r.dst === "default" ? def : r.dst, dev: r.dev });
    }
  }
  return { addresses, routes, interfaces };
}

/**
 * The interfaces route_localnet is on for (IPv4; on for `all`, it is on for every one), from /proc (`read` throws where a
 * file cannot be read): where the host's connection to 127.0.0.1 can be DNATed out (evaluate.ts loopbackOut). Undefined
 * where `all` cannot be read (not known); an interface whose own cannot be read has no IPv4 configuration to route it by.
 */
export function routeLocalnet(read: (path: string) => string, interfaces: string[]): string[] | undefined {
  const on = (name: string) => read(`/proc/sys/net/ipv4/conf/${name}/route_localnet`).trim() !== "0";
  let all: boolean;
  try {
    all = on("all");
  } catch {
    return undefined;
  }
  return interfaces.filter((i) => {
    try {
      return all || on(i);
    } catch {
      return false;
    }
  });
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
  if (json) return JSON.stringify({ dockwall: JSON_VERSION, command: "explain", packets: results.map(({ decidingSpan: _, ...r }) => r) }, null, 2) + "\n";
  return results.map((r) => formatExplain(r, (span, label) => formatPlace(span, file ?? "<policy>", text ?? "", label))).join("\n");
}

/** The rules a compile made, per family. */
export function compiledRules(r: CompileResult): Partial<Record<Family, Ruleset>> {
  return r.generated?.rulesets ?? {};
}

/**
 * The host's addresses by interface and family, from `ip -j addr`: the first of each that is not
 * link-local (what a neighbour on that link sends to), else its link-local one (an interface with
 * no other IPv6 address is still reached by its neighbours there); undefined where it has none.
 */
export function interfaceAddresses(addrJson: string): (family: 4 | 6, iface: string) => string | undefined {
  const by = new Map<string, { 4?: string; 6?: string }>();
  for (const link of JSON.parse(addrJson) as { ifname?: string; addr_info?: { family?: string; local?: string; scope?: string }[] }[]) {
    const e: { 4?: string; 6?: string } = {};
    const near: { 4?: string; 6?: string } = {};
    for (const a of link.addr_info ?? []) {
      if (!a.local) continue;
      const f = a.family === "inet" ? 4 : a.family === "inet6" ? 6 : undefined;
      if (f === undefined) continue;
      const to = a.scope === "link" ? near : e;
      if (!to[f]) to[f] = a.local;
    }
    if (link.ifname) by.set(link.ifname, { 4: e[4] ?? near[4], 6: e[6] ?? near[6] });
  }
  return (family, iface) => by.get(iface)?.[family];
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The matrix as a picture: one grid per family, a cell per row and column with a mark per path; colours and marks both say it (● open, · closed, ? unknown, ! not what the policy says). */
export function renderSvg(m: import("./matrix.js").Matrix, title: string): string {
  const CELL = 64;
  const ROW = 26;
  const LEFT = 340;
  const parts: string[] = [];
  let y = 40;
  for (const family of [4, 6] as const) {
    const cells = m.cells.filter((c) => c.family === family);
    if (cells.length === 0) continue;
    const rows = m.rows.filter((r) => cells.some((c) => c.row === r.id));
    const cols = m.columns.filter((c) => cells.some((x) => x.column === c.id));
    parts.push(`<text x="10" y="${y}" font-weight="bold">IPv${family}</text>`);
    y += 10;
    cols.forEach((c, i) => parts.push(`<text transform="translate(${LEFT + i * CELL + CELL / 2},${y + 110}) rotate(-45)" font-size="11">${esc(c.id)}</text>`));
    y += 120;
    for (const r of rows) {
      // Zone and interface first: a long list of sources is what gets cut.
      const label = rowLabel(r);
      parts.push(`<text x="10" y="${y + 17}" font-size="11">${esc(label.length > 52 ? `${label.slice(0, 51)}…` : label)}</text>`);
      cols.forEach((c, i) => {
        const here = cells.filter((x) => x.row === r.id && x.column === c.id);
        const bad = here.some((x) => x.mismatch);
        const open = here.some((x) => x.verdict === "open");
        const unknown = here.some((x) => x.verdict === "unknown");
        const fill = bad ? "#f8d0d0" : unknown ? "#fff0c0" : open ? "#cdeccd" : "#eeeeee";
        const mark = here.map((x) => `${x.path === "dnat" || x.path === "host" ? "" : x.path[0]}${x.verdict === "open" ? "●" : x.verdict === "closed" ? "·" : "?"}${x.mismatch ? "!" : ""}`).join(" ");
        const tip = here.map((x) => `${x.path}: ${x.verdict}, ${x.intent}${x.mismatch ? " (MISMATCH)" : ""}; dockwall explain '${x.probe}'`).join("\n");
        parts.push(`<g><title>${esc(tip)}</title><rect x="${LEFT + i * CELL}" y="${y}" width="${CELL - 2}" height="${ROW - 2}" fill="${fill}" stroke="${bad ? "#b00020" : "#999"}" stroke-width="${bad ? 2 : 1}"/><text x="${LEFT + i * CELL + 4}" y="${y + 17}" font-size="11">${esc(mark)}</text></g>`);
      });
      y += ROW;
    }
    y += 30;
  }
  const legend = `${title} — ● open · closed ? unknown ! not what the policy says (d: straight to the container, l: 127.0.0.1 routed from a neighbour, or the host's own)`;
  const width = Math.max(LEFT + Math.max(1, m.columns.length) * CELL + 40, Math.ceil(legend.length * 7.5) + 20);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 40}" font-family="sans-serif">\n<title>${esc(title)}</title>\n<text x="10" y="20" font-size="14">${esc(legend)}</text>\n${parts.join("\n")}\n</svg>\n`;
}

/** The tables iptables-nft makes (and reads back with iptables-save), by family and name. */
const IPTABLES_NFT = new Set(["filter", "nat", "raw", "mangle", "security"]);

/**
 * nftables tables with base chains that are not iptables-nft's (`nft -j list chains`): dockwall's
 * own `inet dockwall` (--format nft), Docker 29's `ip docker-bridges`, firewalld's, nftables.conf's.
 * The evaluator reads only what iptables-save prints, so with any of these a verdict about the
 * loaded rules would be a guess. None where nft is not installed.
 */
export function foreignNftTables(run: (cmd: string, args: string[]) => string): string[] {
  let text: string;
  try {
    text = run("nft", ["-j", "list", "chains"]);
  } catch (e) {
    if (/ENOENT|not found/.test((e as Error).message)) return [];
    throw e;
  }
  const chains = (JSON.parse(text) as { nftables?: { chain?: { family: string; table: string; hook?: string } }[] }).nftables ?? [];
  const out = new Set<string>();
  for (const { chain: c } of chains) {
    if (!c?.hook) continue;
    if ((c.family === "ip" || c.family === "ip6") && IPTABLES_NFT.has(c.table)) continue;
    out.add(`${c.family} ${c.table}`);
  }
  return [...out];
}

/**
 * explain --live, matrix --live, verify on a host that filters through nftables tables beside
 * (or instead of) iptables-nft's: the whole ruleset (`nft -j list ruleset`, iptables-nft's tables
 * too), for the nftables evaluator (nfteval.ts), with dockwall's own table's rules by handle and
 * the compiled rule each translates (their origin). undefined: no such table (the iptables
 * evaluator reads everything). `refuse`: what cannot be judged, said.
 */
export function readNftLive(
  run: (cmd: string, args: string[]) => string,
  opts: { legacyRules: boolean; policy?: Policy; compiled?: Partial<Record<Family, Ruleset>> },
): { ruleset: NftRuleset; ours?: Map<number, Rule>; texts: Map<string, string>; tables: string[]; listing: string } | { refuse: string } | undefined {
  const tables = foreignNftTables(run);
  if (tables.length === 0) return undefined;
  // iptables-legacy's rules are not in nftables' listing: a walk through both at once is not one dockwall can make.
  if (opts.legacyRules) return { refuse: `this host filters packets through iptables-legacy's rules and through nftables tables (${tables.join(", ")}) at once: dockwall reads one or the other, not both together, and what it would say would be a guess` };
  const ruleset = parseNftJson(run("nft", ["-j", "list", "ruleset"]));
  const xt = xtTables(ruleset);
  if (xt.length) {
    return {
      refuse: `this host filters packets through iptables rules (${xt.join(", ")}, through iptables-nft) and through nftables tables of their own (${tables.join(", ")}) at once: dockwall's evaluators read one or the other, not both together, so what it would say of the loaded rules would be a guess, and it says nothing. ${tables.includes(NFT_TABLE) ? "For dockwall's own table (--format nft), 'dockwall diff POLICY -f nft' compares it with the policy" : "Ask with 'dockwall explain POLICY' (the compiled rules)"}`,
    };
  }
  // Each rule as nft itself prints it (`FAMILY TABLE HANDLE` → text, counters left out), and dockwall's by the compiled rule it translates.
  const texts = new Map<string, string>();
  const listing = run("nft", ["-a", "list", "ruleset"]);
  markDormant(ruleset, listing);
  let table = "";
  for (const line of listing.split("\n")) {
    const t = /^table (\S+ \S+) \{/.exec(line);
    if (t) table = t[1]!;
    const m = /^\t\t(.*) # handle (\d+)$/.exec(line);
    if (m && !/^(type|policy|elements|flags) /.test(m[1]!)) texts.set(`${table} ${m[2]}`, m[1]!.replace(/counter packets \d+ bytes \d+/g, "counter"));
  }
  let ours: Map<number, Rule> | undefined;
  if (opts.policy && opts.compiled && tables.includes(NFT_TABLE)) {
    const origins = nftOrigins(opts.policy, opts.compiled, new Problems());
    ours = new Map();
    for (const [k, text] of texts) {
      const r = k.startsWith(`${NFT_TABLE} `) ? origins.get(text) : undefined;
      if (r) ours.set(Number(k.slice(NFT_TABLE.length + 1)), r);
    }
  }
  return { ruleset, ...(ours ? { ours } : {}), texts, tables, listing };
}

/**
 * Tables as `nft list table FAMILY NAME` prints them, each in turn, carved out of the whole ruleset's listing with handles
 * (`nft -a list ruleset`, read once): the same text, without the ` # handle N` nft adds to each line.
 */
export function tablesListed(listing: string, tables: string[]): string {
  const by = new Map<string, string[]>();
  let on: string[] | undefined;
  for (const line of listing.split("\n")) {
    const t = /^table (\S+ \S+) \{/.exec(line);
    if (t && tables.includes(t[1]!)) by.set(t[1]!, (on = []));
    on?.push(line.replace(/ # handle \d+$/, ""));
    if (line === "}") on = undefined;
  }
  return tables.map((t) => (by.has(t) ? `${by.get(t)!.join("\n")}\n` : "")).join("");
}

/**
 * iptables-nft's tables that hold iptables rules with xt matches nftables' listing cannot show
 * (conntrack, addrtype…): walked together with nftables tables, most packets would be "cannot
 * tell". Said once, instead.
 */
function xtTables(ruleset: NftRuleset): string[] {
  return ruleset.tables
    .filter((t) => (t.family === "ip" || t.family === "ip6") && IPTABLES_NFT.has(t.name) && [...t.chains.values()].some((c) => c.rules.some((r) => JSON.stringify(r.expr).includes('"xt"'))))
    .map((t) => `${t.family} ${t.name}`);
}

/** A dormant table filters nothing (nft's JSON does not say so; its listing, `nft list ruleset`, does). */
function markDormant(ruleset: NftRuleset, listing: string): void {
  let table = "";
  for (const line of listing.split("\n")) {
    const t = /^table (\S+ \S+) \{/.exec(line);
    if (t) table = t[1]!;
    if (/^\tflags .*\bdormant\b/.test(line)) {
      const d = ruleset.tables.find((x) => `${x.family} ${x.name}` === table);
      if (d) d.dormant = true;
    }
  }
}

/** An nftables file as nft lists it once loaded alone in a scratch network namespace (`unshare --net`), or why it did not load. */
export function nftScratch(run: (cmd: string, args: string[], input?: string) => string, text: string, what: string): NftRuleset | string {
  try {
    // (Its listing as text only where a table may be dormant, which nft's JSON does not say: at 1,000 containers it is 0.8 s. A
    // file it includes may say so: a review.)
    const dormant = /\bdormant\b|\binclude\b/.test(text);
    const out = run("unshare", ["--net", "sh", "-c", `nft -f - && echo "@@@" && nft -j list ruleset${dormant ? ' && echo "@@@" && nft list ruleset' : ""}`], text);
    const [, json, listing] = out.split("@@@\n");
    const rs = parseNftJson(json!);
    if (dormant) markDormant(rs, listing ?? "");
    return rs;
  } catch (e) {
    return `${what} did not load in a scratch network namespace (unshare --net, nft -f): ${(e as Error).message.split("\n").find((l) => l.trim()) ?? ""}`;
  }
}

/**
 * Reachability of `diff -f nft` and `apply -f nft`: the nftables ruleset before (loaded here, or
 * a saved `nft list ruleset`, `before`) and after the file (its tables as nft lists them once
 * loaded alone in a scratch network namespace, `unshare --net`, in place of the loaded ones),
 * walked cell by cell (reach.ts). With this host's addresses and routes when it reads the loaded
 * ruleset. A note instead where the walk would be a guess (iptables-legacy's rules beside, iptables
 * rules through iptables-nft, a file or dump nft cannot load there).
 */
export function nftReachabilityOf(
  run: (cmd: string, args: string[], input?: string) => string,
  p: Policy,
  file: string,
  fileTables: string[],
  families: Family[],
  opts: { before?: string; compiled?: Partial<Record<Family, Ruleset>> },
): { changes: ReachChange[]; note?: string } {
  const not = (why: string) => ({ changes: [], note: `who reaches what was not worked out: ${why}` });
  // Too many cells: said before any load (the compiled rules name the sources the loaded ones would, near enough for a bound).
  if (opts.compiled) {
    const early = matrixCost({ policy: p, rulesets: opts.compiled }, families);
    if (early > REACH_MAX) return { changes: [], note: `who reaches what was not worked out (${early} cells, more than ${REACH_MAX}): run 'dockwall matrix --live' after the change for it` };
  }
  // iptables-legacy's rules are not in nftables' listing (and the kernel filters through both).
  const legacy = (save: string) => {
    try {
      return /^-A /m.test(run(save, []));
    } catch {
      return false;
    }
  };
  if (opts.before === undefined && (legacy("iptables-legacy-save") || legacy("ip6tables-legacy-save"))) return not("this host filters packets through iptables-legacy's rules too, which nftables' listing does not show");
  const scratch = (text: string, what: string) => nftScratch(run, text, what);
  let before: NftRuleset;
  if (opts.before !== undefined) {
    const b = scratch(opts.before, "the saved ruleset");
    if (typeof b === "string") return not(b);
    before = b;
  } else {
    try {
      before = parseNftJson(run("nft", ["-j", "list", "ruleset"]));
      markDormant(before, run("nft", ["list", "ruleset"]));
    } catch (e) {
      return not(`cannot list this host's nftables ruleset (${(e as Error).message.split("\n")[0]})`);
    }
  }
  const xt = xtTables(before);
  if (xt.length) return not(`iptables rules through iptables-nft (${xt.join(", ")}) are walked with nftables tables only where they use no xt match`);
  const loaded = scratch(file, "the file");
  if (typeof loaded === "string") return not(loaded);
  const after = nftAfter(before, loaded, fileTables);
  let host: Pick<MatrixContext, "host" | "hostAddress"> | undefined;
  if (opts.before === undefined) {
    try {
      const addr = run("ip", ["-j", "addr", "show"]);
      host = { host: hostNetwork(addr, run("ip", ["-j", "-4", "route", "show", "table", "all"]), run("ip", ["-j", "-6", "route", "show", "table", "all"])), hostAddress: interfaceAddresses(addr) };
    } catch (e) {
      return not(`cannot read this host's addresses and routes (ip -j addr, ip -j route): ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return nftReachability(p, before, after, families, host);
}
