// Reachability in `diff` and `apply` (issue 23, item 5): what a change of rules does to who
// reaches what, in the policy's words — the matrix of the rules after the change, each cell
// walked over the rules before it too, and the cells whose verdict changes, each with the
// statement or rule that now decides it. Pure.
import type { CompileResult } from "../compile.js";
import { dockersOwn, dockerWrites } from "../generate.js";
import type { Ruleset } from "../ir/ruleset.js";
import { toRuleset, type SavedRuleset } from "../live/save.js";
import { reconcileStep } from "../watch/reconcile.js";
import type { Policy } from "../model/types.js";
import type { Family } from "../model/values.js";
import { explain, type OriginJson } from "./explain.js";
import { buildMatrix, matrixCost, type MatrixCell, type MatrixContext, type MatrixRow } from "./matrix.js";
import { nftMatrixWalk, type NftRuleset } from "./nfteval.js";
import { parsePacket } from "./packet.js";

export interface ReachChange {
  row: string;
  column: string;
  family: Family;
  path: MatrixCell["path"];
  before: MatrixCell["verdict"];
  after: MatrixCell["verdict"];
  /** Who, in the policy's words: the zone and its sources, the interface. */
  from: string;
  probe: string;
  /** What decides it after the change (the statement that opens it, or the rule that closes it). */
  by?: OriginJson;
}

function who(r: MatrixRow | undefined): string {
  if (!r) return "?";
  if (r.kind === "host") return "the host itself";
  if (r.kind === "containers") return `containers of ${r.network} ${r.sources.join(" ")}`;
  return `${r.zone ?? "any other source"} ${r.sources.join(" ")} in ${r.interfaces.join(",")}`;
}

export function reachability(p: Policy, before: Partial<Record<Family, Ruleset>>, after: Partial<Record<Family, Ruleset>>, families: Family[], where: { file?: string; text?: string; compiled?: Partial<Record<Family, Ruleset>>; docker?: Partial<Record<Family, Ruleset>> } = {}): ReachChange[] {
  // The host's other ports too (a review: a host block's 'policy accept' going away closed every port, and no line said so).
  const m = buildMatrix({ policy: p, rulesets: after, before, otherPorts: true }, families);
  const out: ReachChange[] = [];
  for (const c of m.cells) {
    if (c.before === undefined || c.before === c.verdict) continue;
    const row = m.rows.find((r) => r.id === c.row);
    let by: OriginJson | undefined;
    const pk = parsePacket(c.probe);
    if (!("error" in pk)) {
      try {
        // The rules after are read back: each is named by the compiled (or Docker's) rule it equals.
        const e = explain({ rulesets: after, policy: p, file: where.file, text: where.text, compiled: where.compiled, docker: where.docker }, pk, true);
        // An opened cell: the policy statement on its way; a closed one: the rule that drops it.
        by = c.verdict === "open" ? (e.path.find((s) => s.origin.kind === "policy")?.origin ?? e.decided_by?.origin) : e.decided_by?.origin;
      } catch {
        by = undefined;
      }
    }
    out.push({ row: c.row, column: c.column, family: c.family, path: c.path, before: c.before, after: c.verdict, from: who(row), probe: c.probe, ...(by ? { by } : {}) });
  }
  return out;
}

/** The lines diff and apply print before the rule diff: `+ open  FROM -> COLUMN (PATH)  STATEMENT  FILE:LINE:COL`. */
/** A change as JSON (diff --json, apply --json; src/schema/dockwall.schema.json). */
export function reachabilityJson(changes: ReachChange[]): ReachChange[] {
  return changes.map(({ row, column, family, path, before, after, from, probe, by }) => ({ row, column, family, path, before, after, from, probe, ...(by ? { by } : {}) }));
}

export function formatReachability(changes: ReachChange[]): string {
  if (changes.length === 0) return "";
  const out: string[] = [];
  for (const family of [4, 6] as const) {
    const cs = changes.filter((c) => c.family === family);
    if (cs.length === 0) continue;
    out.push(`reachability (IPv${family}):`);
    // A cell that could not be told before is no opening or closing: said (a review read "- closed" for unknown -> closed).
    const left = cs.map((c) => `${c.after === "open" ? "+ open  " : c.after === "closed" ? "- closed" : "? unknown"} ${c.from} -> ${c.column} (${c.path})${c.before === "unknown" ? ", could not be told before" : ""}`);
    const w = Math.max(...left.map((l) => l.length));
    cs.forEach((c, i) => {
      const o = c.by;
      const why = !o ? "" : o.kind === "policy" ? `${/^host\s*\{\s*$/.test(o.text) ? "host { … } drops what it does not allow" : o.text}   ${o.file}:${o.line}:${o.column}` : o.kind === "dockwall" ? `dockwall: ${o.why}` : o.kind === "docker" ? `Docker's rule${o.object.type === "daemon" ? "" : ` for ${o.object.type} ${o.object.name}`}` : `another tool's chain ${o.chain}`;
      out.push(`${left[i]!.padEnd(w)}   ${why}`.trimEnd());
    });
  }
  return out.join("\n") + "\n\n";
}

/**
 * Cells a reachability works out at most (diff stays fast on a big host; dockwall matrix does the
 * rest): about 100 containers of bench/generate.ts's policy, 1.1 s for the whole diff here. Cells
 * whose walk a piece shares with an earlier one (matrix.ts, sameWay) cost a few microseconds.
 */
export const REACH_MAX = 400_000;

/** What loading the compiled rules over the loaded ones changes in who reaches what (analysis/reach.ts). */
export function reachabilityOf(compiled: CompileResult, lives: Partial<Record<4 | 6, SavedRuleset>>, opts: { policyName?: string; policyText?: string }): { changes: ReachChange[]; note?: string } {
  const p = compiled.policy!;
  // Too many packets to walk: said before any work (a diff of 2,000 containers stays as fast as it was). The compiled rules name the sources the loaded ones would after the load, but for other tools' rules: near enough for a bound.
  const early = matrixCost({ policy: p, rulesets: compiled.generated!.rulesets }, ([4, 6] as const).filter((f) => lives[f]));
  if (early > REACH_MAX) return { changes: [], note: `who reaches what was not worked out (${early} cells, more than ${REACH_MAX}): run 'dockwall matrix' for it` };
  const before: Partial<Record<4 | 6, Ruleset>> = {};
  const after: Partial<Record<4 | 6, Ruleset>> = {};
  const families: (4 | 6)[] = [];
  for (const f of [4, 6] as const) {
    const live = lives[f];
    const wanted = compiled.generated!.rulesets[f];
    if (!live || !wanted || wanted.tables.length === 0) continue;
    before[f] = toRuleset(live, f);
    // What the kernel holds once the compiled rules are loaded over these (other tools' chains, Docker's own with iptables on, kept).
    after[f] = toRuleset(reconcileStep(live, wanted, { ownsInput: p.host !== undefined }).after, f);
    families.push(f);
  }
  const docker = p.docker.iptables ? Object.fromEntries(families.filter((f) => dockerWrites(p, f)).map((f) => [f, dockersOwn(p, f).rulesets[f]!])) : undefined;
  return { changes: reachability(p, before, after, families, { file: opts.policyName, text: opts.policyText, compiled: compiled.generated!.rulesets, docker }) };
}


/**
 * Reachability of a change of nftables tables (`diff -f nft`, `apply -f nft`): the matrix of the
 * ruleset after it (the loaded one with the file's tables in place of theirs), each cell walked
 * over the loaded one too, and the cells whose verdict changes. The nftables evaluator names no
 * policy statement: a change says who and what, not which line. A note, and no changes, where
 * its rules read sources or ports in a way the classes cannot follow, or there are too many cells.
 */
export function nftReachability(p: Policy, before: NftRuleset, after: NftRuleset, families: Family[], host?: Pick<MatrixContext, "host" | "hostAddress">): { changes: ReachChange[]; note?: string } {
  const a = nftMatrixWalk(after);
  const b = nftMatrixWalk(before);
  if ("gap" in a || "gap" in b) return { changes: [], note: `who reaches what was not worked out: the nftables rules read sources or ports in a way dockwall cannot tell into classes (${"gap" in a ? a.gap : "gap" in b ? b.gap : ""})` };
  const empty = (family: Family): Ruleset => ({ family, tables: [], scope: "owned" });
  const ctx: MatrixContext = { policy: p, rulesets: Object.fromEntries(families.map((f) => [f, empty(f)])), nft: a, nftBefore: b, otherPorts: true, ...host };
  const cost = matrixCost(ctx, families);
  if (cost > REACH_MAX) return { changes: [], note: `who reaches what was not worked out (${cost} cells, more than ${REACH_MAX}): run 'dockwall matrix --live' after the change for it` };
  const m = buildMatrix(ctx, families);
  const rows = new Map(m.rows.map((r) => [r.id, r]));
  return {
    changes: m.cells
      .filter((c) => c.before !== undefined && c.before !== c.verdict)
      .map((c) => ({ row: c.row, column: c.column, family: c.family, path: c.path, before: c.before!, after: c.verdict, from: who(rows.get(c.row)), probe: c.probe })),
  };
}

/**
 * The nftables ruleset once `file` is loaded over the loaded one: the loaded tables the file
 * names replaced by the file's own, as nft lists them after loading it alone (`loaded`). Pure.
 */
export function nftAfter(before: NftRuleset, loaded: NftRuleset, fileTables: string[]): NftRuleset {
  const replaced = new Set(fileTables);
  return { tables: [...before.tables.filter((t) => !replaced.has(`${t.family} ${t.name}`)), ...loaded.tables] };
}
