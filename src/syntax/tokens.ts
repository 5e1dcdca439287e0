// Tokens of the policy language.
//
// The lexer is deliberately small: punctuation, a handful of statement keywords, and
// `Word`, which is any run of characters that is not white space or punctuation.
// Addresses, ports and publish specs are Words; the model builder parses them with
// value parsers that point at the exact character that is wrong (a grammar token per
// address shape would turn `172.17.0.0./16` into a vague "unexpected character").
//
// Order matters: Chevrotain tries token types in the order of `allTokens`.
//  1. white space, line breaks and comments (skipped),
//  2. punctuation,
//  3. keywords, each with `longer_alt: Word` so that `zones` or `hostname` lex as Words,
//  4. Word last.
// Every keyword is also in the `Word` category, so a rule that CONSUMEs Word accepts a
// keyword too (a container may join the network called `bridge`, an option may be called
// `network`); the parser only insists on a keyword where a statement starts.
import { createToken, Lexer, type TokenType } from "chevrotain";

// Line breaks are a token of their own: only a token that may hold one is searched for line
// breaks to count lines, and blanks within a line are most of the white space.
export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /[ \t\f\v\u00a0\ufeff]+/, group: Lexer.SKIPPED });
export const LineBreak = createToken({ name: "LineBreak", pattern: /(?:\r\n?|\n)+/, group: Lexer.SKIPPED, line_breaks: true });
export const Comment = createToken({ name: "Comment", pattern: /#[^\n]*/, group: Lexer.SKIPPED });

export const LCurly = createToken({ name: "LCurly", pattern: /{/, label: "'{'" });
export const RCurly = createToken({ name: "RCurly", pattern: /}/, label: "'}'" });
export const Semi = createToken({ name: "Semi", pattern: /;/, label: "';'" });
export const Comma = createToken({ name: "Comma", pattern: /,/, label: "','" });

/** Anything else up to white space, punctuation or a comment: names, addresses, ports. */
// Printable ASCII other than white space, `;` `,` `{` `}` `#`. A positive class (not a
// complement) keeps Chevrotain's first-character optimisation; anything outside it, such as
// a non-ASCII letter, is a lexing error with its position.
export const Word = createToken({
  name: "Word",
  pattern: /[A-Za-z0-9_.:\/\[\]\-!@$%^&*()+=?<>'"~`|\\]+/,
  label: "a name or value",
});

function keyword(name: string): TokenType {
  return createToken({
    name: name[0]!.toUpperCase() + name.slice(1),
    pattern: new RegExp(name.replace(/[.]/g, "\\.")),
    longer_alt: Word,
    categories: [Word],
    label: `'${name}'`,
  });
}

export const Docker = keyword("docker");
export const Zone = keyword("zone");
export const Network = keyword("network");
export const Container = keyword("container");
export const Allow = keyword("allow");
export const Forward = keyword("forward");
export const Host = keyword("host");
export const From = keyword("from");
export const To = keyword("to");

/** The reserved words, in the order the EBNF in grammar/ lists them. */
export const keywords = [Docker, Zone, Network, Container, Allow, Forward, Host, From, To];

export const allTokens: TokenType[] = [WhiteSpace, LineBreak, Comment, LCurly, RCurly, Semi, Comma, ...keywords, Word];

// "onlyStart": no token spans lines, so its end is its start plus its length (see spanOf).
export const lexer = new Lexer(allTokens, { positionTracking: "onlyStart", ensureOptimizations: true });
