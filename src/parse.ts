// Stage 1: text → CST, with every lexing and syntax error of the file.
import type { IRecognitionException, IToken } from "chevrotain";
import { closest, Problems, spanOf, type Span } from "./diagnostics.js";
import { parsers } from "./syntax/parser.js";
import { keywords, lexer, Word } from "./syntax/tokens.js";

const STATEMENTS = keywords.map((k) => String(k.PATTERN).replace(/\//g, "")).filter((k) => k !== "from" && k !== "to");
import type { PolicyCstNode } from "./syntax/cst.generated.js";

export interface ParseResult {
  cst?: PolicyCstNode;
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

export function parse(text: string): ParseResult {
  const problems = new Problems();
  const lexed = lexer.tokenize(text);
  for (const e of lexed.errors) {
    const ch = text.substr(e.offset, e.length);
    const span = { line: e.line ?? 1, col: e.column ?? 1, endLine: e.line ?? 1, endCol: (e.column ?? 1) + Math.max(1, e.length) };
    problems.error("syntax", span, `unexpected character${e.length > 1 ? "s" : ""} '${ch}'`, {
      help: /[^\x00-\x7f]/.test(ch) ? `names and values are plain ASCII; check for a pasted typographic character` : undefined,
    });
  }
  // A fast pass without error recovery; only a file with a syntax error is parsed again,
  // with recovery, to report every syntax error at once.
  let parser = parsers.fast;
  parser.input = lexed.tokens;
  let cst = parser.policy() as PolicyCstNode;
  if (parser.errors.length > 0) {
    parser = parsers.recovering;
    parser.input = lexed.tokens;
    cst = parser.policy() as PolicyCstNode;
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
  return { cst: problems.hasErrors ? undefined : cst, problems };
}
