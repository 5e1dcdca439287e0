// compile() parses a valid file a statement at a time (parse.ts), feeding the model builder
// as it goes; everything else sees the whole-file parse. Both must give the same model.
import { describe, expect, test } from "vitest";
import { parse } from "../../src/parse.js";
import { compile } from "../../src/compile.js";
import { buildModel, modelBuilder } from "../../src/model/build.js";
import type { Statement } from "../../src/syntax/nodes.js";
import { allPolicies } from "../support/policies.js";

function streamed(text: string) {
  const seen: Statement[] = [];
  const model = modelBuilder();
  const parsed = parse(text, (st) => {
    seen.push(st);
    model.add(st);
  });
  return { parsed, seen, model };
}

describe("statement by statement", () => {
  test.each(allPolicies().map((p) => [p.name, p.text]))("%s: the same statements and model as the whole-file parse", (_name, text) => {
    const whole = parse(text);
    expect(whole.problems.hasErrors).toBe(false);
    const { parsed, seen, model } = streamed(text);
    expect(parsed.problems.items).toEqual([]);
    expect(parsed.statements).toBeUndefined(); // streamed, not parsed whole
    expect(seen).toEqual(whole.statements);
    expect(model.finish()).toEqual(buildModel(whole.statements!));
  });

  test("a big file, lexed a few lines at a time: statements across chunk boundaries, positions in the file", () => {
    // About 120 KB: many chunks, and a host block of 3,000 lines that spans several of them.
    const lines = ["docker { version 20.10; }", "zone lan { interface eth1; from 192.168.0.0/16; }", "network app { bridge br-app; subnet 10.1.0.0/16; }"];
    for (let i = 0; i < 1500; i++) lines.push(`container c${i} { network app 10.1.${i >> 8}.${(i & 255) + 2}; publish ${10000 + i}:80; }  # c${i}`, `allow lan to c${i}:${10000 + i};`);
    lines.push("host {", ...Array.from({ length: 3000 }, (_, i) => `  allow lan tcp ${1000 + i};`), "}");
    const text = lines.join("\n") + "\n";
    const whole = parse(text);
    const { parsed, seen, model } = streamed(text);
    expect(parsed.statements).toBeUndefined();
    expect(seen).toEqual(whole.statements);
    expect(model.finish()).toEqual(buildModel(whole.statements!));
    // The last statement's tokens carry their place in the file, not in their chunk.
    const host = seen.at(-1)!;
    expect(host.kind).toBe("host");
    expect(host.kind === "host" && host.close.startLine).toBe(lines.length);
    expect(host.kind === "host" && host.close.startOffset).toBe(text.length - 2);
  });

  test.each([
    ["CR LF line ends", ["\r\n", "\r\n"]],
    ["CR and LF line ends mixed", ["\r", "\n"]],
  ])("a file with %s: diagnostics point at the right line", (_name, [first, rest]) => {
    // Longer than one chunk (parse.ts), the first half with one kind of line end.
    const filler = (from: number) => Array.from({ length: 500 }, (_, i) => `container c${from + i} { network bridge 172.17.${Math.floor((from + i) / 250) + 1}.${((from + i) % 250) + 2}; }`);
    const text = ["docker { version 20.10; }", filler(0).join(first!), ...filler(500), "container web { network bridge 172.17.9.2; publish 8080:80; }", "allow nowhere to web:8080;", ""].join(rest);
    const r = compile(text, { file: "p.dw" });
    const unknown = r.diagnostics.find((d) => d.message.includes("unknown zone"));
    expect(unknown?.span.line).toBe(1003);
    expect(unknown?.span.col).toBe(7);
  });

  test("braces and semicolons inside blocks do not end a statement", () => {
    const text = `docker { version 20.10; }\nhost { allow any tcp 22; allow any icmp; }\nzone lan { interface eth1; from 10.0.0.0/8, 192.168.0.0/16; }\nallow lan to web:80;\ncontainer web { network bridge 172.17.0.2; publish 80:80; }\n`;
    const { parsed, seen } = streamed(text);
    expect(parsed.statements).toBeUndefined();
    expect(seen.map((s) => s.kind)).toEqual(["docker", "host", "zone", "allow", "container"]);
  });

  test.each([
    ["a missing ';'", `docker { version 20.10; }\nallow lan to web:80\ncontainer web { network bridge 172.17.0.2; }\n`],
    ["an unclosed block", `docker { version 20.10;\nzone lan { interface eth1; }\n`],
    ["a stray '}'", `docker { version 20.10; } }\n`],
    ["a statement cut short at the end", `docker { version 20.10; }\nallow lan to`],
  ])("%s: the whole file is parsed again and every error is reported as before", (_what, text) => {
    const { parsed } = streamed(text);
    const whole = parse(text);
    expect(whole.problems.hasErrors).toBe(true);
    expect(parsed.problems.items).toEqual(whole.problems.items);
  });
});
