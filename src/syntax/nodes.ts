// The syntax tree the parser returns (parser.ts builds these in its rules; the model
// builder reads them). Tokens keep their text and position; nothing else is kept.
import type { IToken } from "chevrotain";

/** `a, b, c` */
export interface ValueList {
  items: IToken[];
}

/** `KEY [VALUES[, …] …] ;` */
export interface Setting {
  key: IToken;
  values: ValueList[];
  semi: IToken;
}

/** `{ SETTING … }` */
export interface Block {
  settings: Setting[];
  close: IToken;
}

export interface DockerStatement {
  kind: "docker";
  keyword: IToken;
  block: Block;
}

/** `zone NAME { … }`, `network NAME { … }`, `container NAME { … }` */
export interface NamedBlockStatement {
  kind: "zone" | "network" | "container";
  keyword: IToken;
  name: IToken;
  block: Block;
}

/** `allow ZONES [from SOURCES] to TARGETS;` and the same for forward. */
export interface FromToStatement {
  kind: "allow" | "forward";
  keyword: IToken;
  zones: ValueList;
  sources?: ValueList;
  targets: ValueList;
  semi: IToken;
}

/** In a host block: `allow ZONES [from SOURCES] PROTOCOL [PORTS];` */
export interface HostAllow {
  keyword: IToken;
  zones: ValueList;
  sources?: ValueList;
  protocol: IToken;
  ports?: ValueList;
  semi: IToken;
}

export interface HostStatement {
  kind: "host";
  keyword: IToken;
  allows: HostAllow[];
  settings: Setting[];
  close: IToken;
}

export type Statement = DockerStatement | NamedBlockStatement | FromToStatement | HostStatement;
