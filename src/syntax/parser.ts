// The policy grammar (Chevrotain CstParser). grammar/policy.ebnf summarises it and
// grammar/diagrams.html is generated from this class by `npm run grammar`.
//
//   policy    = { statement } ;
//   statement = docker | zone | network | container | allow | forward | host ;
//   docker    = "docker" block ;            zone      = "zone" Word block ;
//   network   = "network" Word block ;      container = "container" Word block ;
//   allow     = "allow" valueList [ "from" valueList ] "to" valueList ";" ;
//   forward   = "forward" valueList [ "from" valueList ] "to" valueList ";" ;
//   host      = "host" "{" { hostAllow | setting } "}" ;
//   hostAllow = "allow" valueList [ "from" valueList ] valueList ";" ;      (protocol, then ports)
//   block     = "{" { setting } "}" ;
//   setting   = Word { valueList } ";" ;
//   valueList      = Word { "," Word } ;
import { CstParser, type IParserErrorMessageProvider, type TokenType, type IToken } from "chevrotain";
import * as T from "./tokens.js";

function tokenText(t: IToken): string {
  return t.tokenType.name === "EOF" ? "end of file" : `'${t.image}'`;
}

const errorMessages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual }) {
    if (expected.name === "EOF") return `expected a statement (docker, zone, network, container, allow, forward, host) but found ${tokenText(actual)}`;
    return `expected ${expected.LABEL ?? expected.name} but found ${tokenText(actual)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `expected a statement (docker, zone, network, container, allow, forward, host) but found ${tokenText(firstRedundant)}`;
  },
  buildNoViableAltMessage({ actual, ruleName }) {
    const found = actual[0] ? tokenText(actual[0]) : "end of file";
    if (ruleName === "statement")
      return `expected a statement (docker, zone, network, container, allow, forward, host) but found ${found}`;
    return `unexpected ${found} in ${ruleName}`;
  },
  buildEarlyExitMessage({ actual, ruleName }) {
    const found = actual[0] ? tokenText(actual[0]) : "end of file";
    return `expected a name or value in ${ruleName} but found ${found}`;
  },
};

export class PolicyParser extends CstParser {
  /**
   * `validate`: run Chevrotain's grammar checks (slow; the tests do, the CLI need not).
   * `recover`: keep parsing after a syntax error to report the others too (costs time on
   * every input, so parse.ts only uses it once a fast pass has found an error).
   */
  constructor({ validate = false, recover = true } = {}) {
    // Spans come from tokens, so CST nodes need no location tracking of their own.
    super(T.allTokens, { recoveryEnabled: recover, nodeLocationTracking: "none", errorMessageProvider: errorMessages, skipValidations: !validate });
    this.performSelfAnalysis();
  }

  public policy = this.RULE("policy", () => {
    this.MANY(() => this.SUBRULE(this.statement));
  });

  /** Also an entry point: parse.ts parses a big file one statement at a time. */
  public statement = this.RULE("statement", () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.dockerBlock) },
      { ALT: () => this.SUBRULE(this.zoneBlock) },
      { ALT: () => this.SUBRULE(this.networkBlock) },
      { ALT: () => this.SUBRULE(this.containerBlock) },
      { ALT: () => this.SUBRULE(this.allowStatement) },
      { ALT: () => this.SUBRULE(this.forwardStatement) },
      { ALT: () => this.SUBRULE(this.hostBlock) },
    ]);
  });

  private dockerBlock = this.RULE("dockerBlock", () => {
    this.CONSUME(T.Docker);
    this.SUBRULE(this.block);
  });

  private zoneBlock = this.RULE("zoneBlock", () => this.namedBlock(T.Zone));
  private networkBlock = this.RULE("networkBlock", () => this.namedBlock(T.Network));
  private containerBlock = this.RULE("containerBlock", () => this.namedBlock(T.Container));

  private namedBlock(keyword: TokenType): void {
    this.CONSUME(keyword);
    this.CONSUME(T.Word, { LABEL: "name" });
    this.SUBRULE(this.block);
  }

  private allowStatement = this.RULE("allowStatement", () => this.fromTo(T.Allow));
  private forwardStatement = this.RULE("forwardStatement", () => this.fromTo(T.Forward));

  /** KEYWORD zones [from sources] to targets ; — allow and forward share this shape. */
  private fromTo(keyword: TokenType): void {
    this.CONSUME(keyword);
    this.SUBRULE(this.valueList, { LABEL: "zones" });
    this.OPTION(() => {
      this.CONSUME(T.From);
      this.SUBRULE2(this.valueList, { LABEL: "sources" });
    });
    this.CONSUME(T.To);
    this.SUBRULE3(this.valueList, { LABEL: "targets" });
    this.CONSUME(T.Semi);
  }

  private hostBlock = this.RULE("hostBlock", () => {
    this.CONSUME(T.Host);
    this.CONSUME(T.LCurly);
    // `allow` is a Word too, so a setting could start with it: the first alternative wins.
    this.MANY(() =>
      this.OR({
        IGNORE_AMBIGUITIES: true,
        DEF: [{ ALT: () => this.SUBRULE(this.hostAllow) }, { ALT: () => this.SUBRULE(this.setting) }],
      }),
    );
    this.CONSUME(T.RCurly);
  });

  private hostAllow = this.RULE("hostAllow", () => {
    this.CONSUME(T.Allow);
    this.SUBRULE(this.valueList, { LABEL: "zones" });
    this.OPTION(() => {
      this.CONSUME(T.From);
      this.SUBRULE2(this.valueList, { LABEL: "sources" });
    });
    this.CONSUME(T.Word, { LABEL: "protocol" });
    this.OPTION2(() => this.SUBRULE3(this.valueList, { LABEL: "ports" }));
    this.CONSUME(T.Semi);
  });

  private block = this.RULE("block", () => {
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.setting));
    this.CONSUME(T.RCurly);
  });

  private setting = this.RULE("setting", () => {
    this.CONSUME(T.Word, { LABEL: "key" });
    this.MANY(() => this.SUBRULE(this.valueList, { LABEL: "values" }));
    this.CONSUME(T.Semi);
  });

  private valueList = this.RULE("valueList", () => {
    this.CONSUME(T.Word, { LABEL: "items" });
    this.MANY(() => {
      this.CONSUME(T.Comma);
      this.CONSUME2(T.Word, { LABEL: "items" });
    });
  });
}

/** Parser instances are reused (Chevrotain's advice: self-analysis is the costly part). */
let fast: PolicyParser | undefined;
let recovering: PolicyParser | undefined;
export const parsers = {
  get fast(): PolicyParser {
    return (fast ??= new PolicyParser({ recover: false }));
  },
  get recovering(): PolicyParser {
    return (recovering ??= new PolicyParser({ recover: true }));
  },
};
/** The recovering parser (for tools: CST types, railroad diagrams). */
export const parser = parsers.recovering;
