// `dockwall apply --format nft` and its rollback, over SystemIo (the decisions are in nft.ts;
// the confirmation, `confirm` and `rollback` are apply/command.ts's, shared with iptables).
import { nftReachabilityOf } from "../analysis/command.js";
import { formatReachability } from "../analysis/reach.js";
import type { CompileResult } from "../compile.js";
import type { Diagnostic } from "../diagnostics.js";
import { diffNft, renderNftDiff } from "../live/nftdiff.js";
import { parseSave, SaveSyntaxError, toRuleset } from "../live/save.js";
import { firstLine } from "./deploy.js";
import { sessionPacket } from "./guard.js";
import { inputChains, isDockerTable, nftLockout, restoreText, rollbackToText, tablesOfFile, unreadNote } from "./nft.js";
import { compileNow, type FactsNow, type PolicyRecord, type RollbackState } from "./rollback.js";
import { applyPrelude, confirmOrRollBack, doneApplying, EXIT, formatSwitchNote, markApplying, path, readJson, startSaves, told, type ApplyOptions, type SystemIo } from "./command.js";

const missingTable = (e: unknown) => /No such file or directory|does not exist/.test((e as Error).message ?? "");

/** Each table as `nft list table` prints it now (null: not there); throws when nft fails otherwise. */
function listTables(io: SystemIo, tables: string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const t of tables) {
    const [family, name] = t.split(" ");
    try {
      out[t] = io.run("nft", ["list", "table", family!, name!]);
    } catch (e) {
      if (!missingTable(e)) throw e;
      out[t] = null;
    }
  }
  return out;
}

export async function runApplyNft(io: SystemIo, out: { stdout: (s: string) => void; stderr: (s: string) => void }, compiled: CompileResult, opts: ApplyOptions): Promise<number | Diagnostic> {
  const { say, report, refuse, waiting } = applyPrelude(io, out, opts);
  if (waiting !== undefined) return waiting;
  const file = compiled.output!;
  const policy = compiled.policy!;
  const tables = tablesOfFile(file);

  // What is loaded now: the tables the file replaces.
  let listed: Record<string, string | null>;
  try {
    listed = listTables(io, tables);
  } catch (e) {
    const why = firstLine(e);
    return refuse("save", `not applied: cannot list the loaded tables with nft: ${why}${/ENOENT/.test(why) ? " (install nftables)" : /root|ermission/.test(why) ? " (run as root)" : ""}`);
  }
  const live = tables.map((t) => listed[t] ?? "").join("");
  const d = diffNft(live, file);
  report.changed = d.changed;
  const diffText = renderNftDiff(d, { liveName: "live: nft list table (lines marked - would be removed by loading the file)", wantedName: `compiled from ${opts.policyName} -f nft (lines marked + would be added)` });
  report.nft = { tables, diff: diffText };

  // The lockout guard: the session's next connection through every base chain on the input hook.
  const ssh = io.env.SSH_CONNECTION;
  if (ssh && !opts.force) {
    const pk = sessionPacket(ssh, io.run, firstLine);
    if ("refused" in pk) return refuse("lockout", pk.refused);
    const saves = opts.saves ?? startSaves(io);
    const got = await saves[pk.family];
    let iptables;
    try {
      if ("error" in got) {
        if (!/not installed|ENOENT/.test(firstLine(got.error))) throw got.error;
      } else iptables = toRuleset(parseSave(got.text), pk.family);
    } catch (e) {
      return refuse(e instanceof SaveSyntaxError ? "read" : "save", `not applied: the lockout guard cannot read the iptables rules loaded now (${firstLine(e)}); --force applies without it`);
    }
    let others;
    try {
      others = inputChains(io.run("nft", ["-j", "list", "ruleset"]), tables);
    } catch (e) {
      return refuse("lockout", `not applied: the lockout guard cannot list this host's nftables chains (nft -j list ruleset: ${firstLine(e)}); --force applies without it`);
    }
    const g = nftLockout(policy, compiled.generated!.rulesets[pk.family]!, iptables, others, pk);
    if (g) {
      report.refused = { reason: "lockout", message: `${opts.check ? "would not apply" : "not applied"}: ${g.message}` };
      return g;
    }
    const unread = unreadNote(others, pk.family);
    if (unread) say(unread);
  }
  // What the change does to who reaches what, before anything is loaded (and while --confirm waits, above its prompt):
  // once nft has checked the file.
  const reachability = () => {
    if (!d.changed) return;
    const families = ([4, 6] as const).filter((f) => (compiled.generated!.rulesets[f]?.tables.length ?? 0) > 0);
    const reach = nftReachabilityOf(io.run, policy, file, tables, families, { compiled: compiled.generated!.rulesets });
    report.reachability = reach.changes;
    const text = formatReachability(reach.changes);
    if (text) out.stderr(text);
    else if (reach.note) say(reach.note);
  };
  // nft's own check of the file (nothing loaded).
  const test = () => {
    try {
      io.run("nft", ["-c", "-f", "-"], file);
      return undefined;
    } catch (e) {
      return firstLine(e);
    }
  };
  if (opts.check) {
    const bad = test();
    if (bad) return refuse("test", `would not apply: nft -c refuses the file: ${bad}`);
    reachability();
    say(d.changed ? `check: applying ${opts.policyName} would change ${tables.join(", ")}; nothing was changed` : `check: ${opts.policyName} is what is loaded; nothing to change`);
    return EXIT.ok;
  }
  const record: PolicyRecord = { ...opts.record, format: "nft" };
  if (d.changed || opts.confirm !== undefined) {
    const bad = test();
    if (bad) return refuse("test", `not applied: nft -c refused the file: ${bad}; nothing was changed`);
    reachability();
    // Kept for rollback: the nft policy whose tables are in place now, and the tables as they are.
    const previous = readJson<PolicyRecord>(io, "policy.json");
    const state: RollbackState = { previous: previous?.format === "nft" ? previous : null, owned: {}, nft: { tables, listed } };
    io.writeFile(path(io, "rollback.json"), JSON.stringify(state, null, 2) + "\n");
    markApplying(io);
    try {
      io.run("nft", ["-f", "-"], file);
    } catch (e) {
      doneApplying(io);
      // One transaction: a refused file changed nothing.
      return refuse("load", `not applied: nft refused the file: ${firstLine(e)}; nothing was changed (one transaction)`);
    }
  }
  const switched = formatSwitchNote(io, readJson<PolicyRecord>(io, "policy.json"), "nft");
  io.writeFile(path(io, "policy.json"), JSON.stringify(record, null, 2) + "\n");
  if (switched) say(switched);
  say(d.changed ? `applied ${opts.policyName}: ${tables.join(", ")} (nft, one transaction)` : `applied ${opts.policyName}: nothing to change, the loaded tables are what it says`);
  if (opts.confirm === undefined) return told(io, say, opts.record.path);
  return confirmOrRollBack(io, say, { ...opts, record }, [4, 6], report);
}

/**
 * Rolls back an apply --format nft (rollback.json's `nft`): to the nft policy before it,
 * compiled with Docker's facts now, its file loaded (and what the rolled-back apply made that it
 * does not write, and that was not there before, deleted); without one, each table as it was
 * (restoreText: Docker's only deleted). One nft transaction: when it fails, nothing changed.
 */
export async function rollBackNft(io: SystemIo, factsNow: FactsNow, state: RollbackState): Promise<{ ok: boolean; said: string }> {
  const unchanged = "the rules in place stay (nothing was changed)";
  const { tables, listed } = state.nft!;
  const prev = state.previous?.format === "nft" ? state.previous : null;
  let text: string;
  if (prev) {
    const r = await compileNow(prev, factsNow);
    if (typeof r === "string") return { ok: false, said: `cannot roll back to ${prev.file}: ${r}; ${unchanged}` };
    text = rollbackToText(r.output!, tables, listed);
  } else text = restoreText(tables, listed);
  try {
    io.run("nft", ["-f", "-"], text);
  } catch (e) {
    return { ok: false, said: `cannot roll back: nft refused the tables from before: ${firstLine(e)}; ${unchanged}` };
  }
  if (prev) io.writeFile(path(io, "policy.json"), JSON.stringify(prev, null, 2) + "\n");
  else io.removeFile(path(io, "policy.json"));
  if (prev) return { ok: true, said: `the tables of ${prev.file} are back in place (nft), compiled again with Docker's facts as they are now` };
  const docker = tables.filter((t) => isDockerTable(t) && listed[t]);
  const gone = tables.filter((t) => !listed[t]);
  return {
    ok: true,
    said: `the nftables tables from before the last apply are back in place${gone.length ? `; ${gone.join(", ")} deleted (not there before)` : ""}${docker.length ? `; Docker's ${docker.join(", ")} not put back from then (no policy of dockwall's was in place before, and they may lead a removed container's port to another container): published ports stay closed until a policy is applied` : ""}`,
  };
}
