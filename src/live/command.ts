// `dockwall diff` / `compile --diff`: fetch the live rule set (iptables-save, or a dump
// given with --live), compare it with the compiled one, print the changes.
import { JSON_VERSION } from "../diagnostics.js";
import type { CompileResult } from "../compile.js";
import { dockersOwn, dockerWrites } from "../generate.js";
import { formatReachability, reachabilityJson, reachabilityOf, type ReachChange } from "../analysis/reach.js";
import { dockerFilterChains } from "../docker/engine.js";
import { layoutFor } from "../docker/layouts.js";
import { PROXY_CHAIN } from "../policy/owned.js";
import { ruleText } from "../targets/iptables.js";
import { diffRulesets, renderDiffParts, summarise, type ChainDiff, type DiffResult } from "./diff.js";
import { diffNft, renderNftDiff } from "./nftdiff.js";
import { fromRuleset, parseSave, SaveSyntaxError, type SavedRuleset } from "./save.js";
import { hostsInput, isForeignChain, policyOf, sharedChain, strandedMessage, strandedWithoutHostBlock, type InputDrop } from "../apply/merge.js";
import { chooseBackends, conflictMessage, holdingsOf, systemBackend, toolOf, type Backend } from "./backend.js";

export interface DiffIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  readFile: (path: string) => string;
  readStdin: () => string;
  /** Runs a program (iptables-save); returns its stdout or throws. */
  runProgram: (cmd: string, args: string[]) => string;
}

export interface DiffOptions {
  /** iptables-save output for IPv4 ("-" for stdin); default: run iptables-save. */
  live?: string;
  /** ip6tables-save output for IPv6. */
  live6?: string;
  json: boolean;
  all: boolean;
  ignore: string[];
  color: boolean;
  /** For the header line. */
  policyName?: string;
  /** The policy's text: reachability names the statements that open what a change opens. */
  policyText?: string;
}

/** Chains of other tools that dockwall leaves alone by default. */
export const FOREIGN_CHAINS = ["f2b-*", "fail2ban-*", "sshguard*"];

function matcher(patterns: string[]): (chain: string) => boolean {
  const res = patterns.map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`));
  return (chain) => res.some((r) => r.test(chain));
}


/** What dockerd itself writes for this policy: the same policy with `iptables off; published open;` and nothing of dockwall's. */
class LiveError extends Error {}

/** cli.ts's EXIT.error (not imported: the CLI module loads this one lazily). */
const EXIT_ERROR = 2;

/** A dump's text (--live FILE, --live6 FILE; "-" is standard input). */
function dumpText(io: DiffIo, file: string): string {
  try {
    return file === "-" || file === "" ? io.readStdin() : io.readFile(file);
  } catch (e) {
    throw new LiveError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
}

/** What is loaded, in the iptables backend that holds it (live/backend.ts: both are read where both are installed). */
function loadedTexts(io: DiffIo, families: readonly (4 | 6)[]): Partial<Record<4 | 6, { text: string; conflict?: string }>> {
  const run = (tool: string): string | undefined => {
    try {
      return io.runProgram(tool, []);
    } catch (e) {
      if (/ENOENT|not found/.test((e as Error).message)) return undefined;
      throw new LiveError(`cannot run ${tool}: ${(e as Error).message.split("\n")[0]} (run as root, or compare with a dump: --live FILE)`);
    }
  };
  const texts = Object.fromEntries(families.map((f) => [f, { nft: run(toolOf("nft", f, "save")), legacy: run(toolOf("legacy", f, "save")) }])) as Record<4 | 6, Record<Backend, string | undefined>>;
  const out: Partial<Record<4 | 6, { text: string; conflict?: string }>> = {};
  if (families.every((f) => texts[f].nft === undefined && texts[f].legacy === undefined)) {
    for (const f of families) {
      const text = run(toolOf(undefined, f, "save"));
      if (text === undefined) throw new LiveError(`cannot run ${toolOf(undefined, f, "save")}: not installed (compare with a dump: --live FILE)`);
      out[f] = { text };
    }
    return out;
  }
  let system: Backend = "nft";
  try {
    system = systemBackend(io.runProgram("iptables", ["--version"])) ?? "nft";
  } catch {
    // the system's iptables cannot say: nf_tables, today's default
  }
  const held = (f: 4 | 6) => ({ nft: texts[f]?.nft === undefined ? undefined : holdingsOf(texts[f].nft), legacy: texts[f]?.legacy === undefined ? undefined : holdingsOf(texts[f].legacy) });
  const choice = chooseBackends({ 4: held(4), 6: held(6) }, system);
  for (const f of families) out[f] = { text: texts[f][choice[f].use] ?? "", conflict: conflictMessage(f, choice[f]) };
  return out;
}


function parseLive(text: string, what: string): SavedRuleset {
  try {
    return parseSave(text);
  } catch (e) {
    if (e instanceof SaveSyntaxError) throw new LiveError(`${what}: ${e.message}`);
    throw e;
  }
}

export function computeDiff(compiled: CompileResult, lives: Partial<Record<4 | 6, SavedRuleset>>, opts: Pick<DiffOptions, "all" | "ignore" | "policyName">): DiffResult {
  const policy = compiled.policy!;
  const generated = compiled.generated!;
  const named = matcher(opts.all ? opts.ignore : [...FOREIGN_CHAINS, ...opts.ignore]);
  const coexist = policy.docker.iptables;
  const ownedChains = ["DOCKER-USER", PROXY_CHAIN, ...(policy.host ? ["INPUT"] : [])];
  const chains: ChainDiff[] = [];
  const ignored: string[] = [];
  const warnings: string[] = [];
  // No host block, over the DROP policy of the one dockwall loaded before: apply refuses it (apply/merge.ts strandedInput).
  const drops: Partial<Record<4 | 6, InputDrop>> = {};
  for (const family of [4, 6] as const) {
    const live = lives[family];
    if (!live) continue;
    const drop = policy.host ? undefined : strandedWithoutHostBlock(live, generated.rulesets[family]!);
    if (drop) drops[family] = drop;
    // Other tools' chains (neither Docker's nor dockwall's) are kept by apply: not a change.
    const others = new Set<string>();
    if (!opts.all) for (const [t, table] of live) for (const c of table.chains.keys()) if (isForeignChain(t, c)) others.add(c);
    const foreign = (chain: string) => named(chain) || others.has(chain);
    const rs = generated.rulesets[family]!;
    const wanted = fromRuleset(rs, ruleText);
    // No host block (iptables off): apply leaves INPUT the host's but for what dockwall writes
    // there (its jumps first; a removed host block's rules go), so a deploy changes only that.
    const input = wanted.get("filter")?.chains.get("INPUT");
    if (!coexist && !policy.host && !opts.all && input) {
      const hosts = live.get("filter")?.chains.get("INPUT");
      input.policy = hosts?.policy ?? input.policy;
      input.rules = [...input.rules, ...hostsInput(hosts)];
    }
    // Built-in chains dockwall does not own but needs a jump in, first (FORWARD's to DOCKER-USER
    // with iptables on): as apply would leave them.
    const owned = new Set(ownedChains);
    for (const j of rs.firstJumps ?? []) {
      const table = wanted.get(j.table);
      if (!table || table.chains.has(j.chain)) continue;
      const have = live.get(j.table)?.chains.get(j.chain);
      const texts = sharedChain(rs, j.table, j.chain, have, j.table === "filter" && j.chain === "INPUT" && !policy.host);
      const chain = parseSave(`*${j.table}\n:${j.chain} ${policyOf(rs, j.table, j.chain) ?? have?.policy ?? "ACCEPT"} [0:0]\n${texts.map((t) => t + "\n").join("")}COMMIT\n`).get(j.table)!.chains.get(j.chain)!;
      table.chains.set(j.chain, chain);
      owned.add(j.chain);
    }
    const d = diffRulesets(family, live, wanted, { chains: coexist ? owned : undefined, isForeign: foreign });
    chains.push(...d.chains);
    for (const c of d.chains) {
      if (!coexist || c.policy?.live !== "ACCEPT" || c.policy.wanted !== "DROP" || !policyOf(rs, c.table, c.chain)) continue;
      const writes = dockerWrites(policy, family);
      warnings.push(
        `IPv${family} ${c.chain}'s policy goes from ACCEPT to DROP: ${writes ? "dockerd left it ACCEPT (IP forwarding was on before it started)" : "dockerd writes no rules for this family and leaves it as it is"}, so the host routes between all its interfaces now; ` +
          `after this deploy it routes only what ${writes ? "Docker's rules" : "DOCKER-USER lets through for Docker's networks"}, other tools' rules in ${c.chain}, or a 'forward' statement let through (routing the policy does not allow stops)`,
      );
    }
    ignored.push(...d.ignored.map((c) => `${family === 4 ? "ip" : "ip6"} ${c}`));
    // Other tools' jumps in INPUT: apply and ferm keep them, a plain iptables-restore of the output does not.
    const liveInput = live.get("filter")?.chains.get("INPUT");
    const jumps = coexist && policy.host && !opts.all ? (liveInput?.rules ?? []).filter((r) => r.target !== undefined && isForeignChain("filter", r.target) && live.get("filter")!.chains.has(r.target)) : [];
    if (jumps.length) {
      warnings.push(
        `IPv${family} INPUT jumps to other tools' chains (${[...new Set(jumps.map((r) => r.target))].join(", ")}): 'dockwall apply' and the ferm output keep ${jumps.length === 1 ? "that jump" : "those jumps"}, ` +
          `but loading the --format ${family === 4 ? "iptables" : "ip6tables"} output with ${family === 4 ? "iptables" : "ip6tables"}-restore --noflush flushes INPUT and drops ${jumps.length === 1 ? "it" : "them"} (until that tool adds ${jumps.length === 1 ? "it" : "them"} again)`,
      );
    }
    // dockerd writes no rules for this family (IPv6 with ip6tables off): nothing of Docker's to check.
    if (coexist && dockerWrites(policy, family)) {
      const predicted = fromRuleset(dockersOwn(policy, family).rulesets[family]!, ruleText);
      // Docker's own chains (checked for drift when dockerd manages them).
      const dockerChains = new Set(["FORWARD", "PREROUTING", "OUTPUT", "POSTROUTING", ...dockerFilterChains(layoutFor(policy.docker.version?.value)!)]);
      const drift = diffRulesets(family, live, predicted, { chains: dockerChains, isForeign: foreign });
      // A chain's policy is the host's to choose (dockerd sets FORWARD's only when it turns forwarding on): rules only.
      const changed = drift.chains.filter((c) => c.lines.some((l) => l.kind !== "same") || (c.status === "added" && c.lines.length > 0));
      if (changed.length) {
        const v = policy.docker.version?.value.text ?? "the newest Docker";
        const s = summarise(changed);
        warnings.push(
          `Docker's own chains (IPv${family}) are not what dockerd ${v} writes for this policy: ${changed.map((c) => `${c.table} ${c.chain}`).join(", ")} differ ` +
            `(${s.rulesAdded} rule${s.rulesAdded === 1 ? "" : "s"} missing, ${s.rulesRemoved} unexpected, ${s.rulesMoved} moved). Docker was upgraded, the policy's version is wrong, or its networks and containers are not what runs.`,
        );
      }
    }
  }
  if (Object.keys(drops).length) warnings.push(strandedMessage(opts.policyName ?? "the policy", drops, "then apply (until then 'dockwall apply' refuses it)"));
  const summary = summarise(chains);
  return { changed: chains.length > 0, chains, summary, warnings, ignored };
}

/**
 * What loading the compiled rules changes in each family, as the plain text of `dockwall diff`
 * (apply --json): - lines loaded now, + lines compiled; "" where nothing differs.
 */
export function familyDiffs(compiled: CompileResult, lives: Partial<Record<4 | 6, SavedRuleset>>, policyName: string): Partial<Record<4 | 6, string>> {
  const out: Partial<Record<4 | 6, string>> = {};
  for (const f of [4, 6] as const) {
    const live = lives[f];
    if (!live) continue;
    const r = computeDiff(compiled, { [f]: live }, { all: false, ignore: [] });
    if (!r.changed) {
      out[f] = "";
      continue;
    }
    const save = f === 4 ? "iptables-save" : "ip6tables-save";
    const render = { color: false, context: 3, liveName: `loaded (${save})`, wantedName: `compiled from ${policyName}` };
    out[f] = [...renderDiffParts({ ...r, warnings: [] }, render)].join("");
  }
  return out;
}

export async function runDiff(io: DiffIo, compiled: CompileResult, opts: DiffOptions): Promise<number> {
  const lives: Partial<Record<4 | 6, SavedRuleset>> = {};
  const conflicts: string[] = [];
  const wants6 = compiled.generated!.rulesets[6]!.tables.length > 0;
  try {
    if (opts.live === undefined && opts.live6 === undefined) {
      const loaded = loadedTexts(io, wants6 ? [4, 6] : [4]);
      for (const f of [4, 6] as const) {
        const l = loaded[f];
        if (!l) continue;
        lives[f] = parseLive(l.text, f === 4 ? "iptables-save" : "ip6tables-save");
        if (l.conflict) conflicts.push(l.conflict);
      }
    } else {
      if (opts.live !== undefined) lives[4] = parseLive(dumpText(io, opts.live), opts.live === "-" ? "<stdin>" : opts.live);
      if (opts.live6 !== undefined) lives[6] = parseLive(dumpText(io, opts.live6), opts.live6 === "-" ? "<stdin>" : opts.live6);
    }
  } catch (e) {
    if (e instanceof LiveError) {
      io.stderr(`dockwall: ${e.message}\n`);
      return EXIT_ERROR;
    }
    throw e;
  }
  const result = computeDiff(compiled, lives, opts);
  result.warnings.push(...conflicts);
  const reach = reachabilityOf(compiled, lives, opts);
  if (reach.note) result.warnings.push(reach.note);
  if (opts.json) io.stdout(JSON.stringify({ dockwall: JSON_VERSION, command: "diff", ...result, compared: Object.keys(lives).map((f) => `IPv${f}`), reachability: reachabilityJson(reach.changes) }, null, 2) + "\n");
  else {
    io.stdout(formatReachability(reach.changes));
    // Which side is which: - lines are live (loading removes them), + lines compiled (loading adds them).
    const from = (family: 4 | 6, file: string | undefined) => `IPv${family} from ${file === undefined ? (family === 4 ? "iptables-save" : "ip6tables-save") : file === "-" || file === "" ? "standard input" : file}`;
    const sources = ([4, 6] as const).filter((f) => lives[f]).map((f) => from(f, f === 4 ? opts.live : opts.live6));
    const render = {
      color: opts.color,
      context: 3,
      liveName: `live: ${sources.join(", ")} (lines marked - would be removed by loading the compiled rules)`,
      wantedName: `compiled from ${opts.policyName ?? "the policy"} (lines marked + would be added)`,
    };
    for (const part of renderDiffParts(result, render)) io.stdout(part);
    if (wants6 && lives[6] === undefined) io.stderr("dockwall: IPv6 not compared (give its dump with --live6 FILE)\n");
  }
  return result.changed ? 1 : 0;
}

/**
 * `dockwall diff -f nft`: the tables of the --format nft file against what `nft list table`
 * prints for each now (a table not there is all new), or against a saved `nft list ruleset`
 * (--live FILE). Exit 1 when they differ.
 */
export function runNftDiff(io: DiffIo, file: string, opts: { live?: string; json: boolean; policyName: string; reach?: (before: string | undefined) => { changes: ReachChange[]; note?: string } }): number {
  let live = "";
  try {
    if (opts.live !== undefined) live = dumpText(io, opts.live);
    else {
      for (const m of file.matchAll(/^table (\S+) (\S+) \{$/gm)) {
        try {
          live += io.runProgram("nft", ["list", "table", m[1]!, m[2]!]);
        } catch (e) {
          const why = (e as Error).message;
          // A table not made yet: everything in it is new.
          if (/No such file or directory|does not exist/.test(why)) continue;
          throw new LiveError(`cannot run nft list table ${m[1]} ${m[2]}: ${why.split("\n")[0]}${/ENOENT/.test(why) ? " (install nftables)" : " (run as root, or compare with a dump: --live FILE)"}`);
        }
      }
    }
  } catch (e) {
    if (e instanceof LiveError) {
      io.stderr(`dockwall: ${e.message}\n`);
      return EXIT_ERROR;
    }
    throw e;
  }
  const d = diffNft(live, file);
  // What the change does to who reaches what (none when nothing changes): the saved ruleset, or the one loaded here, before.
  const reach = d.changed && opts.reach ? opts.reach(opts.live === undefined ? undefined : live) : { changes: [] };
  if (reach.note) io.stderr(`dockwall: ${reach.note}\n`);
  if (opts.json) io.stdout(JSON.stringify({ dockwall: JSON_VERSION, command: "diff", format: "nft", changed: d.changed, tables: d.tables, parts: d.parts, reachability: reachabilityJson(reach.changes) }, null, 2) + "\n");
  else {
    io.stdout(formatReachability(reach.changes));
    const from = opts.live === undefined ? "nft list table" : opts.live === "-" || opts.live === "" ? "standard input" : opts.live;
    io.stdout(renderNftDiff(d, { liveName: `live: ${from} (lines marked - would be removed by loading the file)`, wantedName: `compiled from ${opts.policyName} -f nft (lines marked + would be added)` }));
    io.stdout(d.changed ? `dockwall diff: ${d.parts.length} chain${d.parts.length === 1 ? "" : "s"} or map${d.parts.length === 1 ? "" : "s"} of ${d.tables.join(", ")} differ\n` : `dockwall diff: no changes; ${d.tables.join(", ")} as the file has them\n`);
  }
  return d.changed ? 1 : 0;
}
