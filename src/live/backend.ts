// Which iptables backend holds the rules. A Debian 12 host has both: /usr/sbin/iptables is
// iptables-nft (what dockerd uses), while ferm prefers iptables-legacy where it is installed.
// The kernel filters every packet through both, so rules in the one dockwall does not read —
// a DNAT that ferm loaded, Docker's chains from before "iptables": false — act unseen: a
// stale DNAT there sends a published port to whichever container has the address now.
// dockwall reads and writes one backend: the one that holds rules; when both do, it says
// exactly what the other holds and how to empty it. Pure: the saves come in, text goes out.
import { parseSave, type SavedRuleset } from "./save.js";

export type Backend = "nft" | "legacy";

/** The save and restore tools of a backend (undefined: the system's own, `iptables-save`…). */
export function toolOf(backend: Backend | undefined, family: 4 | 6, what: "save" | "restore"): string {
  const base = family === 4 ? "iptables" : "ip6tables";
  return backend ? `${base}-${backend}-${what}` : `${base}-${what}`;
}

/** What a backend holds beyond empty tables: `filter: INPUT (3 rules, policy DROP), DOCKER-USER (5 rules)`. */
export interface Holding {
  table: string;
  /** Chains with rules, user chains, and built-in chains whose policy is not ACCEPT. */
  chains: { name: string; rules: number; policy?: string; user: boolean; marked?: boolean }[];
}

export function holdings(saved: SavedRuleset): Holding[] {
  const out: Holding[] = [];
  for (const [name, t] of saved) {
    const chains = [...t.chains.values()]
      .filter((c) => c.rules.length > 0 || c.policy === "-" || c.policy === "DROP")
      .map((c) => ({
        name: c.name,
        rules: c.rules.length,
        ...(c.policy !== "-" && c.policy !== "ACCEPT" ? { policy: c.policy } : {}),
        user: c.policy === "-",
        ...(c.rules.some((r) => / -m comment --comment dockwall( |$)/.test(r.text)) ? { marked: true } : {}),
      }));
    if (chains.length) out.push({ table: name, chains });
  }
  return out;
}

/** A save's text read for what it holds; text that is not a save holds nothing we can see. */
export function holdingsOf(text: string | undefined): Holding[] {
  if (text === undefined || text.trim() === "") return [];
  return holdings(parseSave(text));
}

export interface BackendChoice {
  /** The backend to read and write (undefined: the system's own tools). */
  use?: Backend;
  /** Why that one: it alone holds rules, it holds dockwall's, or it is the system's. */
  why?: "only" | "dockwall's" | "system's";
  /** Both hold rules: what the other holds, and the commands that empty it (one a line). */
  conflict?: { other: Backend; holds: Holding[]; empty: string[] };
}

/** Rules dockwall wrote: its own chains, its comment, or a DOCKER-USER that does more than return (dockerd writes only the RETURN). */
function dockwalls(holds: Holding[]): boolean {
  return holds.some((h) => h.chains.some((c) => c.name.startsWith("DOCKWALL") || (c.name === "DOCKER-USER" && c.rules > 1) || c.marked));
}

/**
 * Given what each backend holds (undefined: its tools are not installed), the one to use: the
 * only one that holds rules; with both, the one that holds dockwall's (else the system's,
 * `systemIs`), and a conflict naming the other; with neither, undefined (the caller decides:
 * the backend of the other family, or the system's).
 */
export function chooseBackend(family: 4 | 6, held: Record<Backend, Holding[] | undefined>, systemIs: Backend): BackendChoice {
  const has = (b: Backend) => (held[b]?.length ?? 0) > 0;
  if (has("nft") && has("legacy")) {
    const mine = (["nft", "legacy"] as const).filter((b) => dockwalls(held[b]!));
    const use: Backend = mine.length === 1 ? mine[0]! : systemIs;
    const other: Backend = use === "nft" ? "legacy" : "nft";
    return { use, why: mine.length === 1 ? "dockwall's" : "system's", conflict: { other, holds: held[other]!, empty: emptying(family, other, held[other]!) } };
  }
  if (has("legacy")) return { use: "legacy", why: "only" };
  if (has("nft")) return { use: "nft", why: "only" };
  return {};
}

/** The commands that leave a backend's tables empty (built-in chains ACCEPT, no rules, no user chains). */
export function emptying(family: 4 | 6, backend: Backend, holds: Holding[]): string[] {
  const cmd = `${family === 4 ? "iptables" : "ip6tables"}-${backend}`;
  return holds.flatMap((h) => [
    `${cmd} -t ${h.table} -F`,
    `${cmd} -t ${h.table} -X`,
    ...h.chains.filter((c) => c.policy).map((c) => `${cmd} -t ${h.table} -P ${c.name} ACCEPT`),
  ]);
}

/** One line: `filter INPUT (2 rules, policy DROP), DOCKER (user chain, 4 rules); nat DOCKER (…)`. */
export function describeHoldings(holds: Holding[]): string {
  return holds
    .map((h) => `${h.table} ${h.chains.map((c) => `${c.name} (${[c.user ? "user chain" : "", `${c.rules} rule${c.rules === 1 ? "" : "s"}`, c.policy ? `policy ${c.policy}` : ""].filter(Boolean).join(", ")})`).join(", ")}`)
    .join("; ");
}

/** What to say when both backends hold rules. */
export function conflictMessage(family: 4 | 6, choice: BackendChoice): string | undefined {
  const c = choice.conflict;
  if (!c) return undefined;
  const name = (b: Backend) => `${family === 4 ? "iptables" : "ip6tables"}-${b}`;
  const who = c.holds.some((h) => h.chains.some((x) => x.name.startsWith("DOCKER"))) ? " (Docker's chains among them: from a dockerd that wrote them there, or a ferm.conf loaded with it)" : "";
  return (
    `both iptables backends hold IPv${family} rules, and the kernel filters every packet through both: ${name(c.other)} holds ${describeHoldings(c.holds)}${who}. ` +
    `dockwall reads and writes ${name(choice.use!)} (${choice.why === "dockwall's" ? "where its rules are" : "the system's iptables"}), so what ${name(c.other)} holds acts unseen (a stale DNAT there reaches whichever container has the address now). ` +
    `Empty it: ${c.empty.join("; ")}` +
    ` — and load rules through one backend only (ferm uses ${name("legacy")} where it is installed: deploy with 'dockwall apply', or set the system's iptables to legacy with update-alternatives --set ${family === 4 ? "iptables" : "ip6tables"} /usr/sbin/${name("legacy")})`
  );
}

/**
 * The backend of the system's own tools, from `iptables --version` ("iptables v1.8.9
 * (nf_tables)") or a save's first line (iptables-legacy-save writes no "(…)" there); undefined
 * when the text does not say.
 */
export function systemBackend(text: string): Backend | undefined {
  const first = text.split("\n", 1)[0]!;
  if (/\(nf_tables\)/.test(first)) return "nft";
  if (/\(legacy\)/.test(first) || /^# Generated by ip6?tables-save v[\d.]+ on /.test(first)) return "legacy";
  return undefined;
}

/**
 * Both families' backends, decided together: each family's own choice, and a family that holds
 * no rules in either backend follows the other family (ferm and apply load both families
 * through one backend), else the system's.
 */
export function chooseBackends(held: Record<4 | 6, Record<Backend, Holding[] | undefined>>, systemIs: Backend): Record<4 | 6, BackendChoice & { use: Backend }> {
  const c4 = chooseBackend(4, held[4], systemIs);
  const c6 = chooseBackend(6, held[6], systemIs);
  const fallback = c4.use ?? c6.use ?? systemIs;
  const installed = (f: 4 | 6, b: Backend) => held[f][b] !== undefined;
  const settle = (f: 4 | 6, c: BackendChoice): BackendChoice & { use: Backend } => {
    let use = c.use ?? fallback;
    if (!installed(f, use) && installed(f, use === "nft" ? "legacy" : "nft")) use = use === "nft" ? "legacy" : "nft";
    return { ...c, use };
  };
  return { 4: settle(4, c4), 6: settle(6, c6) };
}
