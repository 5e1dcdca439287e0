// The policy grammar (Chevrotain, with embedded actions that build the nodes of nodes.ts).
// grammar/policy.ebnf summarises it and
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
import { EmbeddedActionsParser, type IOrAlt, type IParserErrorMessageProvider, type TokenType, type IToken } from "chevrotain";
import type { Block, DockerStatement, FromToStatement, HostAllow, HostStatement, NamedBlockStatement, Setting, Statement, ValueList } from "./nodes.js";
import * as T from "./tokens.js";

function tokenText(t: IToken): string {
  return t.tokenType.name === "EOF" ? "end of file" : `'${t.image.length > 40 ? t.image.slice(0, 40) + "…" : t.image}'`;
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

/**
 * The LABEL options of CONSUME and SUBRULE, made once: an object literal in a rule would be
 * allocated at every call (tens of thousands of times on a big policy).
 */
const labels = {
  items: { LABEL: "items" },
  key: { LABEL: "key" },
  name: { LABEL: "name" },
  ports: { LABEL: "ports" },
  protocol: { LABEL: "protocol" },
  sources: { LABEL: "sources" },
  targets: { LABEL: "targets" },
  values: { LABEL: "values" },
  zones: { LABEL: "zones" },
} as const;

export class PolicyParser extends EmbeddedActionsParser {
  /**
   * `validate`: run Chevrotain's grammar checks (slow; the tests do, the CLI need not).
   * `recover`: keep parsing after a syntax error to report the others too (costs time on
   * every input, so parse.ts only uses it once a fast pass has found an error). What a
   * recovering parse returns may have holes; only its errors are used.
   */
  constructor({ validate = false, recover = true } = {}) {
    // Embedded actions: each rule returns a small node of its own (nodes.ts) instead of
    // Chevrotain's generic concrete syntax tree, which costs several times the parse.
    super(T.allTokens, { recoveryEnabled: recover, errorMessageProvider: errorMessages, skipValidations: !validate });
    this.performSelfAnalysis();
  }

  /**
   * When set, `policy` hands each statement to it as soon as it is parsed, and returns none
   * (parse.ts streams a big file into the model this way).
   */
  public onStatement?: (st: Statement) => void;

  public policy = this.RULE("policy", (): Statement[] => {
    const statements: Statement[] = [];
    this.MANY(() => {
      const st = this.SUBRULE(this.statement);
      this.ACTION(() => (this.onStatement ? this.onStatement(st) : statements.push(st)));
    });
    return statements;
  });

  /** The alternatives of `statement`, made once (Chevrotain's advice: OR is called per statement). */
  private statements?: IOrAlt<Statement>[];

  public statement = this.RULE("statement", (): Statement =>
    this.OR<Statement>(
      (this.statements ??= [
        { ALT: () => this.SUBRULE(this.dockerBlock) },
        { ALT: () => this.SUBRULE(this.zoneBlock) },
        { ALT: () => this.SUBRULE(this.networkBlock) },
        { ALT: () => this.SUBRULE(this.containerBlock) },
        { ALT: () => this.SUBRULE(this.allowStatement) },
        { ALT: () => this.SUBRULE(this.forwardStatement) },
        { ALT: () => this.SUBRULE(this.hostBlock) },
      ]),
    ),
  );

  private dockerBlock = this.RULE("dockerBlock", (): DockerStatement => {
    const keyword = this.CONSUME(T.Docker);
    return { kind: "docker", keyword, block: this.SUBRULE(this.block) };
  });

  private zoneBlock = this.RULE("zoneBlock", () => this.namedBlock(T.Zone, "zone"));
  private networkBlock = this.RULE("networkBlock", () => this.namedBlock(T.Network, "network"));
  private containerBlock = this.RULE("containerBlock", () => this.namedBlock(T.Container, "container"));

  private namedBlock(token: TokenType, kind: NamedBlockStatement["kind"]): NamedBlockStatement {
    const keyword = this.CONSUME(token);
    const name = this.CONSUME(T.Word, labels.name);
    return { kind, keyword, name, block: this.SUBRULE(this.block) };
  }

  private allowStatement = this.RULE("allowStatement", () => this.fromTo(T.Allow, "allow"));
  private forwardStatement = this.RULE("forwardStatement", () => this.fromTo(T.Forward, "forward"));

  /** KEYWORD zones [from sources] to targets ; — allow and forward share this shape. */
  private fromTo(token: TokenType, kind: FromToStatement["kind"]): FromToStatement {
    const keyword = this.CONSUME(token);
    const zones = this.SUBRULE(this.valueList, labels.zones);
    let sources: ValueList | undefined;
    this.OPTION(() => {
      this.CONSUME(T.From);
      sources = this.SUBRULE2(this.valueList, labels.sources);
    });
    this.CONSUME(T.To);
    const targets = this.SUBRULE3(this.valueList, labels.targets);
    const semi = this.CONSUME(T.Semi);
    return { kind, keyword, zones, sources, targets, semi };
  }

  private hostBlock = this.RULE("hostBlock", (): HostStatement => {
    const keyword = this.CONSUME(T.Host);
    this.CONSUME(T.LCurly);
    const allows: HostAllow[] = [];
    const settings: Setting[] = [];
    // `allow` is a Word too, so a setting could start with it: the first alternative wins.
    this.MANY(() =>
      this.OR({
        IGNORE_AMBIGUITIES: true,
        DEF: [{ ALT: () => allows.push(this.SUBRULE(this.hostAllow)) }, { ALT: () => settings.push(this.SUBRULE(this.setting)) }],
      }),
    );
    const close = this.CONSUME(T.RCurly);
    return { kind: "host", keyword, allows, settings, close };
  });

  private hostAllow = this.RULE("hostAllow", (): HostAllow => {
    const keyword = this.CONSUME(T.Allow);
    const zones = this.SUBRULE(this.valueList, labels.zones);
    let sources: ValueList | undefined;
    this.OPTION(() => {
      this.CONSUME(T.From);
      sources = this.SUBRULE2(this.valueList, labels.sources);
    });
    const protocol = this.CONSUME(T.Word, labels.protocol);
    let ports: ValueList | undefined;
    this.OPTION2(() => {
      ports = this.SUBRULE3(this.valueList, labels.ports);
    });
    const semi = this.CONSUME(T.Semi);
    return { keyword, zones, sources, protocol, ports, semi };
  });

  private block = this.RULE("block", (): Block => {
    this.CONSUME(T.LCurly);
    const settings: Setting[] = [];
    this.MANY(() => {
      settings.push(this.SUBRULE(this.setting));
    });
    const close = this.CONSUME(T.RCurly);
    return { settings, close };
  });

  private setting = this.RULE("setting", (): Setting => {
    const key = this.CONSUME(T.Word, labels.key);
    const values: ValueList[] = [];
    this.MANY(() => {
      values.push(this.SUBRULE(this.valueList, labels.values));
    });
    const semi = this.CONSUME(T.Semi);
    return { key, values, semi };
  });

  private valueList = this.RULE("valueList", (): ValueList => {
    const items = [this.CONSUME(T.Word, labels.items)];
    this.MANY(() => {
      this.CONSUME(T.Comma);
      items.push(this.CONSUME2(T.Word, labels.items));
    });
    return { items };
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
/** The recovering parser, built when a tool asks (railroad diagrams), not when the module loads. */
export function recoveringParser(): PolicyParser {
  return parsers.recovering;
}
