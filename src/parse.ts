// Stage 1: text → syntax tree (syntax/nodes.ts), with every lexing and syntax error of the file.
import type { IRecognitionException, IToken } from "chevrotain";
import { closest, Problems, spanOf, type Span } from "./diagnostics.js";
import { parsers } from "./syntax/parser.js";
import { keywords, LCurly, lexer, RCurly, Semi, Word } from "./syntax/tokens.js";
import type { Statement } from "./syntax/nodes.js";

const STATEMENTS = keywords.map((k) => String(k.PATTERN).replace(/\//g, "")).filter((k) => k !== "from" && k !== "to");

export interface ParseResult {
  /** The whole file's statements (see parse()). */
  statements?: Statement[];
  problems: Problems;
}

function endOf(t: IToken): Span {
  const s = spanOf(t);
  return { line: s.endLine, col: s.endCol, endLine: s.endLine, endCol: s.endCol + 1 };
}

function where(e: IRecognitionException, lastToken: IToken | undefined): Span {
  const t = e.token;
  const expectsSemi = /^expected ';'/.test(e.message);
  const prev = (e as IRecognitionException & { previousToken?: IToken }).previousToken;
  // A missing ';' is best shown right after the word it should follow.
  if (expectsSemi && prev && prev.startLine !== undefined && !Number.isNaN(prev.startOffset)) return endOf(prev);
  if (t.tokenType.name === "EOF" || Number.isNaN(t.startOffset) || t.startLine === undefined) {
    return lastToken ? endOf(lastToken) : { line: 1, col: 1, endLine: 1, endCol: 2 };
  }
  return spanOf(t);
}

/**
 * Lexes and parses the whole file. With `onStatement`, a file that parses without error is
 * handed over a statement at a time instead, and `statements` is not set: the text is lexed
 * a few lines at a time, the statements each chunk completes are parsed, and each goes to
 * `onStatement` as soon as it is parsed, so neither the tokens nor the syntax tree of a big
 * policy ever exist whole (they are most of the memory a parse takes, and of the garbage
 * collector's work). On
 * any error the whole file is lexed and parsed again as usual, for the complete diagnostics,
 * and `statements` is set when that parse succeeds: the caller then discards what it was
 * given and uses `statements`.
 */
export function parse(text: string, onStatement?: (st: Statement) => void): ParseResult {
  const problems = new Problems();
  // (Chunks are cut and lines counted at '\n'; a file with carriage returns is read whole.)
  if (onStatement && !text.includes("\r") && parseEachStatement(text, onStatement)) return { problems };
  const lexed = lexer.tokenize(text);
  for (const e of lexed.errors) {
    const ch = text.substr(e.offset, e.length);
    const span = { line: e.line ?? 1, col: e.column ?? 1, endLine: e.line ?? 1, endCol: (e.column ?? 1) + Math.max(1, e.length) };
    problems.error("syntax", span, `unexpected character${e.length > 1 ? "s" : ""} '${ch.length > 20 ? ch.slice(0, 20) + "…" : ch}'`, {
      help: /[^\x00-\x7f]/.test(ch) ? `names and values are plain ASCII; check for a pasted typographic character` : undefined,
    });
  }
  // A fast pass without error recovery; only a file with a syntax error is parsed again,
  // with recovery, to report every syntax error at once.
  let parser = parsers.fast;
  parser.input = lexed.tokens;
  let statements = parser.policy();
  if (parser.errors.length > 0) {
    parser = parsers.recovering;
    parser.input = lexed.tokens;
    statements = parser.policy();
  }
  const last = lexed.tokens.at(-1);
  const errors = parser.errors;
  // The shared parser would otherwise keep the token vector (and so a big file) alive.
  parser.input = [];
  for (const e of errors) {
    let help = /expected '\}'/.test(e.message) ? `close the block with '}'` : /expected ';'/.test(e.message) ? `end the statement with ';'` : undefined;
    if (/^expected a statement/.test(e.message) && e.token.tokenType === Word) {
      const near = closest(e.token.image, STATEMENTS);
      help = near ? `did you mean '${near}'?` : `a policy is made of docker, zone, network, container, allow, forward and host statements`;
    }
    problems.error("syntax", where(e, last), e.message, { help });
  }
  // Garbage (a binary file, the wrong file) would give an error every few bytes: the first
  // ones say enough.
  if (problems.items.length > MAX_SYNTAX_ERRORS) {
    const more = problems.items.length - MAX_SYNTAX_ERRORS;
    problems.items.length = MAX_SYNTAX_ERRORS;
    problems.omitted = more;
    problems.items.at(-1)!.notes.push({ message: `${more} more syntax error${more === 1 ? "" : "s"} not shown: dockwall stops after ${MAX_SYNTAX_ERRORS} (is this a dockwall policy?)` });
  }
  return { statements: problems.hasErrors ? undefined : statements, problems };
}

/** Syntax errors reported at most; the rest are counted. */
export const MAX_SYNTAX_ERRORS = 50;

/** About this many characters are lexed at once (whole lines: no token spans a line break). */
const CHUNK = 8192;

/** Lexes a few lines at a time and parses the statements they complete (see parse()); false at the first error. */
function parseEachStatement(text: string, onStatement: (st: Statement) => void): boolean {
  const parser = parsers.fast;
  // Tokens of the statement in progress at the end of the last chunk. A statement ends with
  // ';' or with the '}' that closes its block, outside any braces.
  let pending: IToken[] = [];
  let depth = 0;
  let line = 0; // lines before the chunk
  parser.onStatement = onStatement;
  try {
    for (let at = 0; at < text.length; ) {
      const nl = text.indexOf("\n", at + CHUNK);
      const end = nl < 0 ? text.length : nl + 1;
      const lexed = lexer.tokenize(text.slice(at, end));
      if (lexed.errors.length > 0) return false;
      const fresh = lexed.tokens;
      let last = -1; // the chunk's last token that ends a statement
      for (let i = 0; i < fresh.length; i++) {
        const t = fresh[i]!;
        // Positions in the chunk → positions in the file (a chunk starts a line: columns stand).
        t.startOffset += at;
        t.startLine! += line;
        const type = t.tokenType;
        if (type === LCurly) depth++;
        else if (type === RCurly && --depth < 0) return false;
        if (depth === 0 && (type === Semi || type === RCurly)) last = i;
      }
      if (last < 0) {
        pending = pending.concat(fresh);
      } else {
        // Every statement the chunk completes, in one go.
        const done = last === fresh.length - 1 ? fresh : fresh.slice(0, last + 1);
        parser.input = pending.length ? pending.concat(done) : done;
        parser.policy();
        if (parser.errors.length > 0) return false;
        pending = fresh.slice(last + 1);
      }
      for (let i = at; (i = text.indexOf("\n", i) + 1) > 0 && i <= end; ) line++;
      at = end;
    }
    return pending.length === 0;
  } finally {
    parser.input = [];
    parser.onStatement = undefined;
  }
}
