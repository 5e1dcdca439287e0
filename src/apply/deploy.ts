// The one way dockwall changes the kernel, for apply, rollback and watch: each family's
// change (iptables-restore --noflush input) tested first where asked, then loaded, IPv4 then
// IPv6; when a load is refused, every family this deploy touched is put back exactly as it
// was — the one refused too, since a refusal can come after some of its tables committed.
import { BUILTIN_CHAINS, type Table } from "../ir/ruleset.js";
import { parseSave } from "../live/save.js";

export interface Change {
  family: 4 | 6;
  /** iptables-restore --noflush input. */
  text: string;
  /** What was loaded before (iptables-save's text): what a refusal puts back. */
  before: string;
}

export type Deployed =
  | { ok: true }
  /** "test": nothing was changed. "load": what was loaded is put back, but for `putBackFailed`. */
  | { ok: false; stage: "test" | "load"; family: 4 | 6; error: string; putBackFailed: { family: 4 | 6; error: string }[] };

export interface Loader {
  /** Loads `text` into a family (flushing the tables it names unless `noflush`); throws with the tool's message. */
  load: (family: 4 | 6, text: string, noflush: boolean) => void;
  /** Tests a --noflush change without loading it (iptables-restore --test); none: not tested. */
  test?: (family: 4 | 6, text: string) => void;
  /** Once every change has passed its test, before anything is loaded (apply keeps what a rollback needs). */
  tested?: () => void;
}

/**
 * A tool's error, as one line (its stderr's first, without node's "Command failed"); a banner that
 * says nothing after its colon (`ip6tables-nft-restore v1.8.9 (nf_tables): `) takes the reason
 * from the line after it.
 */
export function firstLine(e: unknown): string {
  const lines = ((e as Error).message ?? String(e)).trim().split("\n").filter((l) => !/^Command failed/.test(l) && l.trim() !== "");
  const first = lines[0];
  if (first === undefined) return String(e);
  return /:\s*$/.test(first) && lines[1] !== undefined ? `${first.trimEnd()} ${lines[1].trim()}` : first;
}

/** Every table the text has, plus empty ones for the tables the new rules created: put back exactly. */
export function rollbackText(saved: string, touched: string[]): string {
  const have = new Set(parseSave(saved).keys());
  const empty = touched
    .filter((t) => !have.has(t))
    .map((t) => [`*${t}`, ...BUILTIN_CHAINS[t as Table["name"]].map((c) => `:${c} ACCEPT [0:0]`), "COMMIT"].join("\n") + "\n");
  return saved + empty.join("");
}

/** The tables an iptables-restore input names. */
export function tablesOf(text: string): string[] {
  return [...text.matchAll(/^\*(\S+)/gm)].map((m) => m[1]!);
}

export function deploy(changes: Change[], loader: Loader): Deployed {
  if (loader.test) {
    for (const c of changes) {
      try {
        loader.test(c.family, c.text);
      } catch (e) {
        return { ok: false, stage: "test", family: c.family, error: firstLine(e), putBackFailed: [] };
      }
    }
  }
  loader.tested?.();
  const loaded: Change[] = [];
  for (const c of changes) {
    try {
      loader.load(c.family, c.text, true);
      loaded.push(c);
    } catch (e) {
      const putBackFailed: { family: 4 | 6; error: string }[] = [];
      for (const d of [...loaded, c]) {
        try {
          loader.load(d.family, rollbackText(d.before, tablesOf(d.text)), false);
        } catch (e2) {
          putBackFailed.push({ family: d.family, error: firstLine(e2) });
        }
      }
      return { ok: false, stage: "load", family: c.family, error: firstLine(e), putBackFailed };
    }
  }
  return { ok: true };
}
