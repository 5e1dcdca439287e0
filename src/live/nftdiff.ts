// What loading the --format nft file would change: the tables it replaces (dockwall's `inet
// dockwall`, and with `iptables off` Docker's `ip`/`ip6 docker-bridges`) as `nft list table`
// prints them now, against the same tables in the file, which is written in nft's own form
// (test/targets/nft-live.test.ts lists each back exactly). Compared chain by chain and rule by
// rule in order; a chain's type, hook, priority and policy as its header; a map's elements as
// a set (their order is nft's own); counters never. Pure: the command fetches the live side.
import { diffArrays } from "diff";
import type { DiffLine } from "./diff.js";

export interface NftPart {
  /** `inet dockwall` */
  table: string;
  kind: "chain" | "map" | "set";
  name: string;
  /** A base chain's `type … hook … priority …; policy …;`, a map's `type …`. */
  header: string[];
  /** A chain's rules in order; a map's elements, sorted. */
  lines: string[];
  /** `nft -a list` (a handle after each rule): each rule's handle, in the order of lines. */
  handles: number[];
}

export interface NftDiff {
  table: string;
  kind: "chain" | "map" | "set" | "table";
  name: string;
  status: "added" | "removed" | "changed";
  header?: { live: string; wanted: string };
  lines: DiffLine[];
}

const counters = (s: string) => s.replace(/counter packets \d+ bytes \d+/g, "counter packets 0 bytes 0");

/** `nft list table`/`list ruleset` output (or the file's tables) as its chains and maps, by `TABLE/NAME`; the tables named, even when empty. */
export function parseNftList(text: string): { parts: Map<string, NftPart>; tables: string[]; flags: Map<string, string[]> } {
  const parts = new Map<string, NftPart>();
  const tables: string[] = [];
  /** What a table says of itself (`flags dormant`: it filters nothing), by table. */
  const flags = new Map<string, string[]>();
  let table: string | undefined;
  let part: NftPart | undefined;
  let elements: string | undefined;
  for (const raw of text.split("\n")) {
    // `nft -a` writes each object's handle after it: kept apart, for the rules.
    const handled = / # handle (\d+)$/.exec(raw);
    const line = (handled ? raw.slice(0, handled.index) : raw).trim();
    if (!line || line.startsWith("#")) continue;
    let m: RegExpExecArray | null;
    if ((m = /^table (\S+ \S+) \{$/.exec(line))) {
      table = m[1]!;
      if (!tables.includes(table)) tables.push(table);
      continue;
    }
    if (!table) continue; // `table X`, `delete table X` of the file: not contents
    if ((m = /^(chain|map|set) (\S+) \{$/.exec(line))) {
      part = { table, kind: m[1] as NftPart["kind"], name: m[2]!, header: [], lines: [], handles: [] };
      parts.set(`${table}/${part.name}`, part);
      continue;
    }
    if (line === "}") {
      if (elements !== undefined && part) part.lines = elementsOf(elements);
      elements = undefined;
      if (part) part = undefined;
      else table = undefined;
      continue;
    }
    if (!part) {
      flags.set(table, [...(flags.get(table) ?? []), line]);
      continue;
    }
    if (elements !== undefined || line.startsWith("elements = {")) {
      elements = `${elements ?? ""} ${line}`;
      continue;
    }
    if (part.kind !== "chain" || /^type \S+ hook /.test(line) || /^policy \S+;$/.test(line)) part.header.push(line);
    else {
      part.lines.push(counters(line));
      if (handled) part.handles.push(Number(handled[1]));
    }
  }
  return { parts, tables, flags };
}

/** A map's `elements = { a : b, c : d }` as a sorted list of `a : b`. */
function elementsOf(text: string): string[] {
  const body = /elements = \{(.*)\}/s.exec(text)?.[1] ?? "";
  return body
    .split(",")
    .map((e) => e.trim().replace(/\s+/g, " "))
    .filter(Boolean)
    .sort();
}

/** Tables as parseNftList reads them. */
export type NftState = ReturnType<typeof parseNftList>;
const parsed = (x: string | NftState): NftState => (typeof x === "string" ? parseNftList(x) : x);

/** The file's tables against what nft lists now (`live`, which may lack some or all of them). */
export function diffNft(live: string | NftState, wanted: string | NftState): { changed: boolean; parts: NftDiff[]; tables: string[] } {
  const w = parsed(wanted);
  const l = parsed(live);
  const out: NftDiff[] = [];
  for (const table of w.tables) {
    // The table itself (a `flags dormant` there switches every chain of it off): only the whole file puts it back.
    const lf = (l.flags.get(table) ?? []).join("; ");
    const wf = (w.flags.get(table) ?? []).join("; ");
    if (l.tables.includes(table) && lf !== wf) out.push({ table, kind: "table", name: "", status: "changed", header: { live: lf || "(no flags)", wanted: wf || "(no flags)" }, lines: [] });
    const keys = [...new Set([...[...w.parts.keys()].filter((k) => k.startsWith(`${table}/`)), ...[...l.parts.keys()].filter((k) => k.startsWith(`${table}/`))])];
    for (const key of keys) {
      const a = l.parts.get(key);
      const b = w.parts.get(key);
      if (!a) {
        out.push({ table, kind: b!.kind, name: b!.name, status: "added", lines: [...b!.header, ...b!.lines].map((text, i) => ({ kind: "added", text, wanted: i + 1 })) });
        continue;
      }
      if (!b) {
        out.push({ table, kind: a.kind, name: a.name, status: "removed", lines: [...a.header, ...a.lines].map((text, i) => ({ kind: "removed", text, live: i + 1 })) });
        continue;
      }
      const header = a.header.join(" ") !== b.header.join(" ") ? { live: a.header.join(" "), wanted: b.header.join(" ") } : undefined;
      const lines = lineDiff(a.lines, b.lines);
      if (header || lines.some((x) => x.kind !== "same")) out.push({ table, kind: b.kind, name: b.name, status: "changed", ...(header ? { header } : {}), lines });
    }
  }
  return { changed: out.length > 0, parts: out, tables: w.tables };
}

function lineDiff(live: string[], wanted: string[]): DiffLine[] {
  const lines: DiffLine[] = [];
  let li = 0;
  let wi = 0;
  for (const p of diffArrays(live, wanted)) {
    for (let k = 0; k < p.value.length; k++) {
      if (p.added) lines.push({ kind: "added", text: wanted[wi]!, wanted: ++wi });
      else if (p.removed) lines.push({ kind: "removed", text: live[li]!, live: ++li });
      else lines.push({ kind: "same", text: wanted[wi]!, live: ++li, wanted: ++wi });
    }
  }
  return lines;
}

/** The differences as a unified diff, each chain or map with 3 lines of context; "" when there are none. */
export function renderNftDiff(d: { parts: NftDiff[] }, o: { liveName: string; wantedName: string }): string {
  if (d.parts.length === 0) return "";
  const out = [`--- ${o.liveName}`, `+++ ${o.wantedName}`];
  for (const p of d.parts) {
    if (p.kind === "table") {
      out.push(`@@ ${p.table} (the table itself) @@`, `- ${p.header!.live}`, `+ ${p.header!.wanted}`);
      continue;
    }
    out.push(`@@ ${p.table} ${p.kind} ${p.name}${p.status === "added" ? ` (new ${p.kind})` : p.status === "removed" ? ` (${p.kind} would be deleted)` : ""} @@`);
    if (p.header) out.push(`- ${p.header.live}`, `+ ${p.header.wanted}`);
    const near = new Uint8Array(p.lines.length);
    p.lines.forEach((l, i) => {
      if (l.kind !== "same") near.fill(1, Math.max(0, i - 3), i + 4);
    });
    let skipped = !near.includes(1); // a header change alone: no rule lines
    p.lines.forEach((l, i) => {
      if (!near[i]) {
        if (!skipped) out.push("  …");
        skipped = true;
        return;
      }
      skipped = false;
      out.push(`${l.kind === "added" ? "+" : l.kind === "removed" ? "-" : " "} ${l.text}`);
    });
  }
  return out.join("\n") + "\n";
}

/** At most this many rules that stay are deleted and appended again to place new rules before them without a read of the ruleset (nftDelta). */
const TAIL_MAX = 8;

/** A delta (nftDelta): its commands, and where each rule it adds lands, to know the kernel after it without listing it again. */
export interface NftDeltaPlan {
  /** One nft transaction; "" when nothing differs. */
  text: string;
  /** Each `add rule`/`insert rule` of text, in order: the chain (`TABLE/CHAIN`) and the rule's index among the file's rules of that chain. */
  adds: { key: string; index: number }[];
  /** Each changed or new chain's handles in the file's order, the rules to be added NaN. */
  layout: Map<string, number[]>;
}

/**
 * What turns the tables as listed now (`nft -a list table`: with each rule's handle) into the
 * file's, as one nft transaction that touches only what differs: a rule gone deleted by its
 * handle, a new one added at its place (after the rule before it that stays, or before the
 * next one), a map's elements added and deleted, a chain made or deleted. A container coming
 * or going then costs a few commands, not the whole file (Docker's tables are written rule for
 * rule, thousands at 2,000 containers). undefined when only the whole file will do: a table not
 * there yet, a chain's type, hook, priority or policy changed, a map made or its type changed,
 * a listing without handles. (A base chain made is a delta: it is made with its header.)
 * (test/live/nftdelta.test.ts: loaded into the kernel, the tables then list as the file.)
 */
export function nftDelta(liveWithHandles: string | NftState, wanted: string | NftState, needs?: Set<string>): NftDeltaPlan | undefined {
  const unknown = needs ?? new Set<string>();
  unknown.clear();
  const l = parsed(liveWithHandles);
  const w = parsed(wanted);
  if (w.tables.some((t) => !l.tables.includes(t))) return undefined;
  const d = diffNft(l, w);
  const made: string[] = [];
  const rules: string[] = [];
  const dels: string[] = [];
  const gone: string[] = [];
  const adds: NftDeltaPlan["adds"] = [];
  const layout: NftDeltaPlan["layout"] = new Map();
  for (const p of d.parts) {
    if (p.header) return undefined;
    const key = `${p.table}/${p.name}`;
    const at = `${p.table} ${p.name}`;
    if (p.kind !== "chain") {
      // A set or map made: declared first, its elements added; one gone: deleted last, once no rule looks it up.
      if (p.status === "added") {
        const want = w.parts.get(key)!;
        made.push(`add ${p.kind} ${at} { ${want.header.join("; ")}; }`);
        if (want.lines.length) rules.push(`add element ${at} { ${want.lines.join(", ")} }`);
        continue;
      }
      if (p.status === "removed") {
        gone.push(`delete ${p.kind} ${at}`);
        continue;
      }
      for (const x of p.lines) {
        if (x.kind === "added") rules.push(`add element ${at} { ${x.text} }`);
        else if (x.kind === "removed") dels.push(`delete element ${at} { ${x.text} }`);
      }
      continue;
    }
    const live = l.parts.get(key);
    if (p.status === "added") {
      const want = w.parts.get(key)!;
      // A base chain made, with its header (type, hook, priority, policy): the first published port of a policy whose guard
      // of dockerd's own sockets needs dockwall's input chain (a container coming, not a whole file).
      made.push(want.header.length ? `add chain ${at} { ${want.header.join(" ")} }` : `add chain ${at}`);
      want.lines.forEach((x, index) => {
        rules.push(`add rule ${at} ${x}`);
        adds.push({ key, index });
      });
      layout.set(key, want.lines.map(() => NaN));
      continue;
    }
    if (!live || live.handles.length !== live.lines.length) return undefined;
    if (p.status === "removed") {
      if (live.handles.some((h) => Number.isNaN(h))) unknown.add(key);
      for (const h of live.handles) dels.push(`delete rule ${at} handle ${h}`);
      gone.push(`delete chain ${at}`);
      continue;
    }
    // Deletes first (by handle), then each run of new rules next to a rule that stays.
    const handleOf = (x: DiffLine) => {
      const h = live.handles[x.live! - 1]!;
      // Not known (a rule the watcher added without learning its handle yet): the chain must be listed first.
      if (Number.isNaN(h)) unknown.add(key);
      return h;
    };
    for (const x of p.lines) if (x.kind === "removed") dels.push(`delete rule ${at} handle ${handleOf(x)}`);
    // nft reads the whole ruleset from the kernel to place a rule by handle (some 75 ms at 2,000 containers, and
    // as much again to echo handles); to append, to insert at the head or to delete by handle it reads nothing. A
    // run of new rules between two that stay (a new container's accept before the final drop of Docker's per-bridge
    // chain) is then placed by deleting the few rules that stay after it and appending them again after the run:
    // the same chain, in one transaction, with no read. Only past TAIL_MAX such rules is a rule placed by handle.
    const firstBetween = p.lines.findIndex((x, i) => x.kind === "added" && p.lines.slice(0, i).some((y) => y.kind === "same") && p.lines.slice(i).some((y) => y.kind === "same"));
    const tail = firstBetween < 0 ? [] : p.lines.slice(firstBetween).filter((x) => x.kind === "same");
    const reAppend = firstBetween >= 0 && tail.length <= TAIL_MAX ? firstBetween : p.lines.length;
    for (const x of tail.length <= TAIL_MAX ? tail : []) dels.push(`delete rule ${at} handle ${handleOf(x)}`);
    layout.set(
      key,
      p.lines.flatMap((x, i) => (x.kind === "removed" ? [] : [x.kind === "same" && i < reAppend ? handleOf(x) : NaN])),
    );
    let i = 0;
    while (i < reAppend) {
      if (p.lines[i]!.kind !== "added") {
        i++;
        continue;
      }
      let j = i;
      while (j < reAppend && p.lines[j]!.kind === "added") j++;
      const run = p.lines.slice(i, j);
      const before = p.lines.slice(0, i).reverse().find((x) => x.kind === "same");
      const after = p.lines.slice(j).find((x) => x.kind === "same");
      // At the end (nothing kept after it): appended, in order. At the head (nothing kept before it): inserted, in
      // reverse. Between two kept rules (more than TAIL_MAX kept after it): after the one before, in reverse.
      const where = !after ? "end" : !before ? "head" : "between";
      for (const x of where === "end" ? run : [...run].reverse()) {
        rules.push(where === "end" ? `add rule ${at} ${x.text}` : where === "head" ? `insert rule ${at} ${x.text}` : `add rule ${at} position ${handleOf(before!)} ${x.text}`);
        adds.push({ key, index: x.wanted! - 1 });
      }
      i = j;
    }
    // From the first run between kept rules on: the new rules and the kept ones after them, appended in order.
    for (const x of p.lines.slice(reAppend)) {
      if (x.kind === "removed") continue;
      rules.push(`add rule ${at} ${x.text}`);
      adds.push({ key, index: x.wanted! - 1 });
    }
  }
  if (unknown.size) return undefined;
  const all = [...made, ...dels, ...rules, ...gone];
  return { text: all.length ? all.join("\n") + "\n" : "", adds, layout };
}

/**
 * The tables once a delta is loaded, as `nft -a list` would print them: the rules that stayed
 * with their handles, each rule the delta added with the handle nft echoed for it (`nft --echo
 * --handle`: each rule it added, in the order of the commands), or with none (NaN) when nothing
 * was echoed (learnHandles finds them later). undefined when an echo does not account for every
 * rule added.
 */
export function afterDelta(live: NftState, wanted: NftState, plan: NftDeltaPlan, echoed?: string): NftState | undefined {
  const layout = new Map([...plan.layout].map(([k, v]) => [k, [...v]]));
  if (echoed !== undefined) {
    const handles = [...echoed.matchAll(/^(?:add|insert) rule .* # handle (\d+)$/gm)].map((m) => Number(m[1]));
    if (handles.length !== plan.adds.length) return undefined;
    plan.adds.forEach((a, i) => (layout.get(a.key)![a.index] = handles[i]!));
  }
  const parts = new Map<string, NftPart>();
  for (const [key, part] of wanted.parts) {
    const h = layout.get(key) ?? live.parts.get(key)?.handles ?? [];
    if (part.kind === "chain" && (h.length !== part.lines.length || (echoed !== undefined && h.some((x) => Number.isNaN(x))))) return undefined;
    parts.set(key, { ...part, handles: part.kind === "chain" ? h : [] });
  }
  return { parts, tables: wanted.tables, flags: wanted.flags };
}

/** The chains (`TABLE/CHAIN`) with a rule whose handle is not known: what to list (`nft -a list chain`) to learn it. */
export function unknownHandles(state: NftState): string[] {
  return [...state.parts].filter(([, p]) => p.kind === "chain" && p.handles.some((h) => Number.isNaN(h))).map(([k]) => k);
}

/**
 * The tables with the handles of the chains listed (`nft -a list chain` of each, joined): a chain
 * listed must hold exactly the rules the state says, else what the kernel holds is not what was
 * loaded and undefined says so (the tables are listed again, whole).
 */
export function learnHandles(state: NftState, listing: string): NftState | undefined {
  const listed = parseNftList(listing);
  const parts = new Map(state.parts);
  for (const [key, l] of listed.parts) {
    const p = parts.get(key);
    if (!p || p.kind !== "chain" || l.kind !== "chain" || l.handles.length !== l.lines.length || l.lines.length !== p.lines.length || l.lines.some((x, i) => x !== p.lines[i])) return undefined;
    parts.set(key, { ...p, handles: l.handles });
  }
  return { parts, tables: state.tables, flags: state.flags };
}
