// The interfaces zones tell apart: a zone sees an interface only through which of its names and
// wildcards (`eth+`) match it, so one interface of each kind stands for all (the lint's covering
// test, check/covered.ts; the compiled matrix's rows, analysis/matrix.ts).

// What a name may hold past a wildcard's prefix: Linux takes any printable character but '/' and ':' (digits and letters first, for names like eth1).
const NAME_CHARS = [..."0123456789abcdefghijklmnopqrstuvwxyz", ...[...Array(0x7f - 0x21).keys()].map((k) => String.fromCharCode(0x21 + k)).filter((c) => !/[0-9a-z/:]/.test(c))];

/**
 * An interface of each kind the zones' interfaces tell apart: every one a zone names; for each wildcard, one it takes that
 * no zone names and no longer wildcard takes (eth+ beside eth0 and eth0+: eth1); and one no zone names and no wildcard takes.
 * A zone sees only which of its names and wildcards an interface matches, so whatever holds on these holds on every interface.
 * A kind no name can be of (every one is named, or a longer wildcard's) has none.
 */
export function interfaceKinds(interfaces: string[]): string[] {
  const exact = new Set(interfaces.filter((i) => !i.endsWith("+")));
  const prefixes = [...new Set(interfaces.filter((i) => i.endsWith("+")).map((i) => i.slice(0, -1)))];
  const kind = (name: string) => prefixes.filter((q) => name.startsWith(q)).sort().join("+");
  const fits = (name: string, want: string) => name !== "" && name !== "." && name !== ".." && name.length <= 15 && !exact.has(name) && kind(name) === want;
  // A name from `stem` on of the wildcards `want`: a character more, else the stem itself, else past a name a zone names
  // (a longer wildcard's stem takes every name past it).
  const find = (stem: string, want: string): string | undefined => {
    const next = stem.length < 15 ? NAME_CHARS.map((c) => stem + c) : [];
    const found = next.find((n) => fits(n, want)) ?? (fits(stem, want) ? stem : undefined);
    if (found !== undefined) return found;
    for (const n of next) {
      if (kind(n) !== want) continue;
      const deeper = find(n, want);
      if (deeper !== undefined) return deeper;
    }
    return undefined;
  };
  const out = [...exact];
  for (const p of prefixes) {
    const name = find(p, kind(p));
    if (name !== undefined) out.push(name);
  }
  const none = fits("dwnone0", "") ? "dwnone0" : find("", "");
  if (none !== undefined) out.push(none);
  return out;
}

/** For each wildcard of `interfaces` (`eth+`), the interface of its own kind that interfaceKinds picks (`eth1` beside `eth0`), where there is one. */
export function wildcardStandIns(interfaces: string[]): Map<string, string> {
  const prefixes = [...new Set(interfaces.filter((i) => i.endsWith("+")).map((i) => i.slice(0, -1)))];
  const kind = (name: string) => prefixes.filter((q) => name.startsWith(q)).sort().join("+");
  const out = new Map<string, string>();
  const picked = interfaceKinds(interfaces).filter((n) => !interfaces.includes(n));
  for (const p of prefixes) {
    const name = picked.find((n) => kind(n) === kind(p) && n.startsWith(p));
    if (name !== undefined) out.set(`${p}+`, name);
  }
  return out;
}
