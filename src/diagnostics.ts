// Diagnostics: every problem carries a source span (1-based line and column) and may
// point at a second place in a note ("first declared here"). One formatter prints them.

export interface Span {
  line: number;
  col: number;
  /** Last line and the column just past the span's last character (exclusive). */
  endLine: number;
  endCol: number;
  /** Set when the fact came from Docker, not from the policy text: the object it came from
   *  (then line and col mean nothing, and diagnostics name the object instead). */
  docker?: DockerObject;
  /** Set when the value came from the command line, not the policy: the option as given
   *  (`--docker-version 99`); diagnostics then name it instead of a place in the file. */
  option?: string;
  /** Set when the place is in another file than the policy (/etc/nftables.conf): its name, and its text for the excerpt. */
  other?: { file: string; text: string };
}

/** A Docker object a fact came from: a container or network, where it was read from. */
export interface DockerObject {
  kind: "container" | "network" | "daemon";
  name: string;
  id: string;
  /** Where the facts were read: the daemon's address or the facts file. */
  source: string;
}

/** The origin of a fact read from Docker. */
export function dockerOrigin(o: DockerObject): Span {
  return { line: 0, col: 0, endLine: 0, endCol: 0, docker: o };
}

/** How a diagnostic names a Docker object: `container 'web' (b54ec30152cc)`. */
export function describeDockerObject(o: DockerObject): string {
  if (o.kind === "daemon") return "the daemon";
  return `${o.kind} '${o.name}'${o.id ? ` (${o.id.slice(0, 12)})` : ""}`;
}

export type Severity = "error" | "warning";

/**
 * Every diagnostic's stable code, one list: tests assert codes, and a test fails when a code
 * has no row in the table of bad inputs (test/check/cases.ts). Add a code here first.
 */
/** The version of dockwall's JSON output (src/schema/dockwall.schema.json), printed as "dockwall" in each: a field removed or changed in meaning raises it. */
export const JSON_VERSION = 1;

export const CODES = [
  "allow-from-bridge",
  "bad-arity",
  "bad-facts",
  "bad-gateway",
  "gateway-priority",
  "ipv6-only",
  "bad-name",
  "bad-value",
  "bad-version",
  "covered-allow",
  "duplicate-address",
  "duplicate-allow",
  "duplicate-block",
  "duplicate-bridge",
  "duplicate-endpoint",
  "duplicate-name",
  "duplicate-option",
  "duplicate-publish",
  "duplicate-subnet",
  "empty-policy",
  "facts-mismatch",
  "family-mismatch",
  "ferm-backend",
  "firewall-backend",
  "forward-docker-bridges",
  "gateway-mode",
  "host-bits",
  "host-network",
  "host-only-port",
  "host-port-published",
  "host-prerequisite",
  "internal-publish",
  "literal-wildcard",
  "lockout",
  "missing-address",
  "missing-option",
  "missing-value",
  "needs-facts",
  "newer-version",
  "nftables-flush",
  "nft-format",
  "no-interface",
  "no-network",
  "no-version",
  "not-in-docker",
  "not-published",
  "not-running",
  "nothing-published",
  "outside-subnet",
  "outside-zone",
  "overlapping-subnets",
  "proxy-with-iptables-off",
  "reserved-address",
  "syntax",
  "trusted-interfaces",
  "unfiltered-network",
  "unknown-name",
  "unknown-option",
  "unpublished-family",
  "unreachable-port",
] as const;
export type Code = (typeof CODES)[number];

export interface Note {
  message: string;
  span?: Span;
}

export interface Diagnostic {
  /** Stable code that tests assert, e.g. "unknown-name". */
  code: Code;
  severity: Severity;
  message: string;
  span: Span;
  notes: Note[];
  /** How to fix it, printed as `help:` after the caret. */
  help?: string;
  /**
   * A warning that is an error of Docker's facts, compiled with `factsErrors: "warn"` (dockwall
   * watch): what it is about was left out of the rules (Problems.factsError).
   */
  leftOut?: true;
}

/** Collects the problems of one stage; the pipeline stops after a stage with errors. */
export class Problems {
  readonly items: Diagnostic[] = [];
  /** Errors found but not kept (syntax errors past the first 50). */
  omitted = 0;

  error(code: Code, span: Span, message: string, extra: { help?: string; notes?: Note[] } = {}): void {
    this.items.push({ code, severity: "error", message, span, notes: extra.notes ?? [], help: extra.help });
  }

  warning(code: Code, span: Span, message: string, extra: { help?: string; notes?: Note[] } = {}): void {
    this.items.push({ code, severity: "warning", message, span, notes: extra.notes ?? [], help: extra.help });
  }

  /**
   * An error that Docker's facts of the moment cause, not the policy's text (a container no
   * longer publishes the port an allow names). With `warn` (dockwall watch) it is a warning
   * that also says what is left out, and the caller leaves that out: one fact costs what it
   * breaks, never more than that, and never opens anything.
   */
  factsError(warn: boolean, code: Code, span: Span, message: string, leftOut: string, extra: { help?: string; notes?: Note[] } = {}): void {
    if (!warn) return this.error(code, span, message, extra);
    this.items.push({ code, severity: "warning", message: `${message}; ${leftOut}`, span, notes: extra.notes ?? [], help: extra.help, leftOut: true });
  }

  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === "error");
  }
}

/** A token's span. Tokens never cross a line, so the end is the start plus the length. */
export function spanOf(t: { startLine?: number; startColumn?: number; image: string }): Span {
  const line = t.startLine ?? 1;
  const col = t.startColumn ?? 1;
  return { line, col, endLine: line, endCol: col + t.image.length };
}

/** A span covering `from` to `to`. */
export function joinSpans(from: Span, to: Span): Span {
  return { line: from.line, col: from.col, endLine: to.endLine, endCol: to.endCol };
}

/** The part of a one-line span that starts `offset` characters in and is `length` long. */
export function subSpan(s: Span, offset: number, length: number): Span {
  const col = s.col + offset;
  return { line: s.line, col, endLine: s.line, endCol: col + Math.max(1, length) };
}

export const startOfFile: Span = { line: 1, col: 1, endLine: 1, endCol: 2 };

/** Characters that would disturb a terminal or hide what the text says: controls, bidi and zero-width marks, invalid bytes (U+FFFD), lone surrogates. */
const ODD = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffd]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function escapeOdd(c: string): string {
  const n = c.charCodeAt(0);
  return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u{${n.toString(16)}}`;
}

/** Text safe to print on a terminal: odd characters written as \x1b or \u{202e}. */
export function visible(s: string): string {
  return s.replace(ODD, escapeOdd);
}

/** Around the caret, a long source line shows this many characters each side (… marks a cut). */
const WINDOW = 60;

function excerpt(lines: string[], span: Span): string[] {
  const src = lines[span.line - 1];
  if (src === undefined) return [];
  const start = span.col - 1;
  const end = Math.max(start + 1, span.endLine === span.line ? span.endCol - 1 : src.length);
  // How one character of the line is shown: tabs as one space, odd characters escaped.
  const shown = (i: number): string => {
    const c = src[i]!;
    if (c >= "\ud800" && c <= "\udbff" && src[i + 1]! >= "\udc00" && src[i + 1]! <= "\udfff") return c + src[i + 1]!;
    return c === "\t" ? " " : c.replace(ODD, escapeOdd);
  };
  // The characters shown: a short plain line whole, else about WINDOW shown characters each side of the caret.
  let from = 0;
  let to = src.length;
  if (src.length > 2 * WINDOW + 30 || src.search(ODD) >= 0) {
    from = Math.min(start, src.length);
    for (let w = 0; from > 0 && w < WINDOW; ) w += shown(--from).length;
    to = from;
    for (let w = 0; to < src.length && (to < start || w < WINDOW); to++) if (to >= start) w += shown(to).length;
  }
  if (from > 0 && src[from]! >= "\udc00" && src[from]! <= "\udfff") from++; // not half a pair
  let text = from > 0 ? "…" : "";
  const at: number[] = [];
  for (let i = from; i < to; i++) {
    at.push(text.length);
    const c = shown(i);
    text += c;
    if (c.length === 2 && c[1]! >= "\udc00" && c[1]! <= "\udfff" && i + 1 < to) at.push(text.length - 1), i++;
  }
  at.push(text.length);
  if (to < src.length) text += "…";
  const col = (i: number) => at[Math.min(Math.max(i, from), to) - from]!;
  const caret = col(start) + (start > to ? start - to : 0);
  const width = Math.max(1, col(Math.min(end, to)) - col(start));
  const gutter = String(span.line).length;
  const pad = " ".repeat(gutter);
  return [`${span.line} | ${text}`, `${pad} | ${" ".repeat(caret)}${"^".repeat(width)}`];
}

/**
 * rustc-style text:
 *
 *   policy.dw:3:11: error: unknown network 'ap'
 *   3 |   network ap 172.20.0.10;
 *     |           ^^
 *     = help: did you mean 'app'?
 *   policy.dw:1:9: note: 'app' is declared here
 */
function formatDiagnostic(d: Diagnostic, file: string, lines: string[]): string {
  const o = d.span.docker;
  // Messages quote the policy's words, which may hold anything: escaped like the source lines.
  const message = visible(d.message);
  const at = d.span.other;
  const out = o
    ? [`${o.source}: ${describeDockerObject(o)}: ${d.severity}: ${message}`]
    : d.span.option
      ? [`dockwall: ${d.span.option}: ${d.severity}: ${message}`]
      : [`${at?.file ?? file}:${d.span.line}:${d.span.col}: ${d.severity}: ${message}`, ...excerpt(at ? at.text.split(/\r\n?|\n/) : lines, d.span)];
  const gutter = " ".repeat(String(d.span.line).length);
  if (d.help) out.push(`${gutter} = help: ${visible(d.help)}`);
  for (const n of d.notes) {
    if (n.span?.docker) {
      out.push(`${n.span.docker.source}: ${describeDockerObject(n.span.docker)}: note: ${visible(n.message)}`);
    } else if (n.span?.option) {
      out.push(`dockwall: ${n.span.option}: note: ${visible(n.message)}`);
    } else if (n.span) {
      const nat = n.span.other;
      out.push(`${nat?.file ?? file}:${n.span.line}:${n.span.col}: note: ${visible(n.message)}`, ...excerpt(nat ? nat.text.split(/\r\n?|\n/) : lines, n.span));
    } else {
      out.push(`${gutter} = note: ${visible(n.message)}`);
    }
  }
  return out.join("\n");
}

/** Where a diagnostic or a note points, as JSON: a place in the policy, a Docker object, or a command-line option. */
function placeJson(span: Span, file: string): Record<string, unknown> {
  if (span.docker) return { docker: { kind: span.docker.kind, name: span.docker.name, id: span.docker.id, source: span.docker.source } };
  if (span.option) return { option: span.option };
  return { file: span.other?.file ?? file, line: span.line, column: span.col, end_line: span.endLine, end_column: span.endCol };
}

/** The diagnostics as JSON objects (`--json`; src/schema/dockwall.schema.json, "diagnostics"). */
export function diagnosticsJson(ds: readonly Diagnostic[], file: string): Record<string, unknown>[] {
  return ds.map((d) => ({
    code: d.code,
    severity: d.severity,
    message: d.message,
    ...placeJson(d.span, file),
    ...(d.help ? { help: d.help } : {}),
    notes: d.notes.map((n) => ({ message: n.message, ...(n.span ? placeJson(n.span, file) : {}) })),
  }));
}

/** A place in the policy as diagnostics show it: FILE:LINE:COL: LABEL, then the line and a caret. */
export function formatPlace(span: Span, file: string, text: string, label: string): string {
  return [`${file}:${span.line}:${span.col}: ${visible(label)}`, ...excerpt(text.split(/\r\n?|\n/), span)].join("\n");
}

export function formatDiagnostics(ds: readonly Diagnostic[], file: string, text: string): string {
  // The file is split into lines once, not once per diagnostic (a big policy may have thousands).
  // Lines end where the lexer counts them: at \n, \r\n and a lone \r.
  const lines = ds.length ? text.split(/\r\n?|\n/) : [];
  return ds.map((d) => formatDiagnostic(d, file, lines) + "\n").join("");
}

/** The closest of `candidates` to `name` (Damerau-Levenshtein), if close enough to be a typo. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  const limit = Math.max(1, Math.floor(name.length / 3));
  if (bestD <= limit) return best;
  // An abbreviation of exactly one candidate ("masq" → "masquerade").
  const prefixed = [...candidates].filter((c) => name.length >= 3 && c.toLowerCase().startsWith(name.toLowerCase()));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** "did you mean 'x'?" or a list of what exists. */
export function suggestion(name: string, candidates: string[], what: string): string {
  const c = closest(name, candidates);
  if (c) return `did you mean '${c}'?`;
  if (candidates.length === 0) return `no ${what} is declared`;
  const shown = candidates.slice(0, 8).map((x) => `'${x}'`).join(", ");
  return `declared ${what}s: ${shown}${candidates.length > 8 ? ", …" : ""}`;
}
