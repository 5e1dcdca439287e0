// The manual pages (scripts/man.mjs) against what they describe: dockwall.1 must say everything
// the built command's --help says (every command, positional, option with its type and default,
// example and epilog, and the same exit codes), and dockwall.dw.5 everything docs/language.md
// holds; both must render with groff without a warning.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { root } from "../support/policies.js";

const cli = join(root, "dist/dockwall.cjs");
const out = mkdtempSync(join(tmpdir(), "dockwall-man-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const groff = spawnSync("groff", ["--version"], { encoding: "utf8" }).status === 0;
const required = Boolean(process.env.DOCKWALL_REQUIRE_KERNEL);

const helps = new Map<string, string>();
function help(...args: string[]): string {
  const key = args.join(" ");
  if (helps.has(key)) return helps.get(key)!;
  const env = { ...process.env };
  delete env.COLUMNS;
  const r = spawnSync(process.execPath, [cli, ...args, "--help"], { encoding: "utf8", env });
  expect(r.status, r.stderr).toBe(0);
  helps.set(key, r.stdout);
  return r.stdout;
}

/** `text` holds `part` (a failure names the part, not the whole page). */
function holds(text: string, part: string, what: string): void {
  expect(text.includes(part), `${what}: '${part}' is not in the page`).toBe(true);
}

/** Whitespace collapsed, and the typographer's characters groff may print for ASCII ones (- ' ` ^ ~) made ASCII again. */
function norm(s: string): string {
  return s
    .replace(/[\u2010\u2011\u2212]/g, "-")
    .replace(/[\u2018\u2019\u00b4]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/\u02c6/g, "^")
    .replace(/\u02dc/g, "~")
    .replace(/\s+/g, " ")
    .trim();
}

/** The page as a reader sees it: groff's text output, or (without groff) the roff with its requests and escapes taken out. */
function render(page: string): string {
  if (groff) {
    const r = spawnSync("groff", ["-man", "-Tutf8", "-P-cbou", "-rLL=200n", join(out, page)], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  }
  // Laid out as groff lays it out: the title first, sections at the margin, subsections indented 3, the rest 7.
  return readFileSync(join(out, page), "utf8")
    .split("\n")
    .map((l) => {
      const th = /^\.TH (\S+) (\d)/.exec(l);
      if (th) return `${th[1]!.replace(/\\-/g, "-")}(${th[2]})`;
      const sh = /^\.(SH|SS) "?(.*?)"?$/.exec(l);
      if (sh) return (sh[1] === "SS" ? "   " : "") + sh[2];
      return /^\.|^'/.test(l) ? "" : `       ${l}`;
    })
    .join("\n")
    .replace(/\\f(\[[A-Z]*\]|[BIRP])/g, "")
    .replace(/\\\[u([0-9A-F]{4,6})\]/g, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/\\\(aq/g, "'")
    .replace(/\\\(ga/g, "`")
    .replace(/\\\(ha/g, "^")
    .replace(/\\\(ti/g, "~")
    .replace(/\\\(bu/g, "•")
    .replace(/\\-/g, "-")
    .replace(/\\&/g, "")
    .replace(/\\e/g, "\\");
}

/** yargs' usage words as the page sets them: `<policy>` → `policy`, `[chains..]` → `[chains...]`. */
function usage(s: string): string {
  return s.replace(/<([^>]+)>/g, "$1").replace(/\[([^\].]+)\.\.\]/g, "[$1...]");
}

/** The pieces of each line of --help: yargs sets its columns two spaces or more apart (a piece may be a wrapped line's part). */
function pieces(text: string): string[] {
  return text
    .split("\n")
    .flatMap((l) => l.trim().split(/ {2,}/))
    .map((p) => p.trim())
    .filter((p) => p !== "");
}

let raw1 = "";
let page1 = "";
let page5 = "";

beforeAll(() => {
  expect(existsSync(cli), "dist/dockwall.cjs is missing: build it with 'npm run build'").toBe(true);
  const r = spawnSync(process.execPath, [join(root, "scripts/man.mjs"), "--out", out, "--cli", cli], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  raw1 = render("dockwall.1");
  page1 = norm(raw1);
  page5 = norm(render("dockwall.dw.5"));
}, 60_000);

describe("dockwall.1 says what --help says", () => {
  const top = existsSync(cli) ? help() : "";
  const commands = [...top.matchAll(/^ {2}dockwall (\S+)/gm)].map((m) => m[1]!);

  /** The page's text from a command's heading (a subsection: indented 3) to the next heading. */
  function section(name: string): string {
    const start = raw1.search(new RegExp(`^ {3}dockwall ${name}\\b`, "m"));
    expect(start, `no section for dockwall ${name}`).toBeGreaterThan(0);
    const first = raw1.indexOf("\n", start) + 1;
    const end = raw1.slice(first).search(/^ {0,3}\S/m);
    return " " + norm(raw1.slice(start, end < 0 ? undefined : first + end)) + " ";
  }

  test("dockwall --help lists the commands", () => {
    expect(commands).toContain("compile");
    expect(commands).toContain("watch");
    expect(commands.length).toBeGreaterThanOrEqual(13);
  });

  test("the page has the sections a manual page has", () => {
    for (const s of ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "EXIT STATUS", "DIAGNOSTICS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"]) expect(page1).toContain(` ${s} `);
    for (const v of ["DOCKER_HOST", "DOCKWALL_STATE_DIR", "SSH_CONNECTION"]) expect(page1).toMatch(new RegExp(`ENVIRONMENT .*${v}`));
    for (const f of ["/etc/dockwall/host.dw", "/var/lib/dockwall", "dockwall.service"]) expect(page1).toMatch(new RegExp(`FILES .*${f.replaceAll(".", "\\.")}`));
  });

  test("dockwall --help: its name line, each command's summary and the global options, in the page", () => {
    const [usageLine, ...rest] = top.split(/\n(?=Usage:)/);
    expect(page1).toContain(`NAME dockwall - ${norm(usageLine!.replace(/^dockwall — /, ""))}`);
    const body = rest.join("\n").split("\n\n");
    for (const block of body) {
      if (/^Usage:/.test(block) || /^Exit codes:/.test(block)) continue;
      for (const p of pieces(block)) {
        if (/^(Commands|Options):$/.test(p)) continue;
        holds(page1, norm(usage(p)), "dockwall --help");
      }
    }
  });

  test("each command's --help: its description, positionals, options (with type and default), examples and epilog, in its section", () => {
    for (const name of commands) {
      const text = help(name);
      const [first, ...lines] = text.split("\n");
      const mine = section(name);
      const heading = ` dockwall ${name} ${norm(usage(first!.replace(/^dockwall \S+\s*/, "")))}`.trimEnd();
      expect(mine.slice(0, heading.length), `the heading of dockwall ${name}`).toBe(heading);
      // The global options are in OPTIONS, once.
      const global = /^\s+-(h|V), --(help|version)\b/;
      for (const p of pieces(lines.filter((l) => !global.test(l)).join("\n"))) {
        if (/^(Positionals|Options|Examples):$/.test(p)) continue;
        holds(mine, norm(p), `dockwall ${name} --help`);
      }
      for (const l of lines.filter((l) => global.test(l))) for (const p of pieces(l)) holds(page1.slice(page1.indexOf(" OPTIONS ")), norm(p), `dockwall ${name} --help`);
    }
  });

  test("every option of every command is a tag of its own in the page (flags in bold)", () => {
    const roff = readFileSync(join(out, "dockwall.1"), "utf8");
    for (const name of commands) {
      for (const m of help(name).matchAll(/^ {2,6}(-\w, )?(--[\w-]+)/gm)) {
        const flag = m[2]!.replaceAll("-", "\\-");
        expect(roff, `dockwall ${name} ${m[2]}`).toContain(`\\fB${flag}\\fR`);
      }
    }
  });

  test("EXIT STATUS has exactly the exit codes --help gives, with the same meaning", () => {
    const para = norm(top.slice(top.indexOf("Exit codes:")).split("\n\n")[0]!).replace(/^Exit codes: /, "").replace(/\.$/, "");
    const codes = [...para.matchAll(/(?:^|, )(\d) (.*?)(?=, \d |$)/g)].map((m) => [m[1]!, m[2]!]);
    expect(codes.map((c) => c[0])).toEqual(["0", "1", "2", "3"]);
    const status = page1.slice(page1.indexOf(" EXIT STATUS "), page1.indexOf(" DIAGNOSTICS "));
    expect([...status.matchAll(/ (\d) (?=\S)/g)].map((m) => m[1])).toEqual(codes.map((c) => c[0]));
    for (const [code, meaning] of codes) expect(status).toContain(`${code} ${meaning}`);
  });
});

describe("dockwall.dw.5 says what docs/language.md says", () => {
  const md = readFileSync(join(root, "docs/language.md"), "utf8");

  test("its name, every heading and every line of every example", () => {
    expect(page5).toMatch(/^DOCKWALL\.DW\(5\) (.* )?NAME dockwall\.dw - the policy language/);
    for (const m of md.matchAll(/^(#{2,3}) (.*)$/gm)) {
      const heading = norm(m[2]!.replace(/`/g, ""));
      holds(page5, m[1] === "##" ? heading.toUpperCase() : heading, "a heading of docs/language.md");
    }
    const raw = render("dockwall.dw.5");
    for (const b of md.matchAll(/^```\w*\n([\s\S]*?)^```/gm)) for (const line of b[1]!.split("\n").filter((l) => l.trim())) holds(raw, line, "an example of docs/language.md");
  });

  test("every table row and list item, and no markdown left over", () => {
    for (const m of md.matchAll(/^\| `([^`]+)` \|/gm)) holds(page5, norm(m[1]!.replaceAll("\\|", "|")), "a table row of docs/language.md");
    for (const m of md.matchAll(/^- (.*)$/gm)) {
      const start = norm(m[1]!.replace(/\*\*|`/g, "")).split(/[[(]/)[0]!.slice(0, 30);
      holds(page5, start, "a list item of docs/language.md");
    }
    expect(page5).not.toMatch(/```|\*\*|\]\(|^#/);
  });
});

describe.skipIf(!groff && !required)("groff renders both pages without a warning", () => {
  for (const page of ["dockwall.1", "dockwall.dw.5"]) {
    test(`groff -ww -z ${page}`, () => {
      expect(groff, "groff is not installed (apt-get install groff-base)").toBe(true);
      const r = spawnSync("groff", ["-man", "-ww", "-z", "-Tutf8", join(out, page)], { encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    });
  }

  test("man -l reads them", () => {
    const man = spawnSync("man", ["--version"], { encoding: "utf8" });
    if (man.status !== 0 && !required) return;
    for (const page of ["dockwall.1", "dockwall.dw.5"]) {
      const r = spawnSync("man", ["-l", join(out, page)], { encoding: "utf8", env: { ...process.env, MANPAGER: "cat", PAGER: "cat", MANWIDTH: "80" } });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(page === "dockwall.1" ? /DOCKWALL\(1\)/ : /DOCKWALL\.DW\(5\)/);
    }
  });
});
