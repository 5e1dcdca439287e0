import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { compile, FORMATS } from "../../src/compile.js";
import { formatDiagnostics } from "../../src/diagnostics.js";
import { run } from "../../src/cli.js";
import { memoryIo } from "../support/io.js";

const dir = new URL(".", import.meta.url).pathname;
const files = readdirSync(dir).filter((f) => /^\d\d-.*\.dw$/.test(f)).sort();
const snippets = files.filter((f) => !f.includes("whole-example"));

describe("reference snippets, each with the ones before it", () => {
  test("there are six snippets and one whole example", () => {
    expect(snippets).toHaveLength(6);
    expect(files).toContain("08-whole-example.dw");
  });
  snippets.forEach((f, i) => {
    test(f, () => {
      const text = snippets.slice(0, i + 1).map((s) => readFileSync(join(dir, s), "utf8")).join("\n");
      const r = compile(text, { checkOnly: true });
      const errors = r.diagnostics.filter((d) => d.severity === "error");
      expect(errors, formatDiagnostics(r.diagnostics, f, text)).toEqual([]);
      expect(r.ok).toBe(true);
    });
  });
});

/** The formats of the contract (language.md): nft, dockwall's own table beside dockerd's rules, takes `iptables on` policies only (test/targets/nft.test.ts). */
const SPEC_FORMATS = FORMATS.filter((f) => f !== "nft");

describe("the whole example", () => {
  const text = readFileSync(join(dir, "08-whole-example.dw"), "utf8");
  for (const format of SPEC_FORMATS) {
    test(`compiles to ${format}`, () => {
      const r = compile(text, { format });
      expect(r.ok, formatDiagnostics(r.diagnostics, "x", text)).toBe(true);
      expect(r.output!.length).toBeGreaterThan(100);
    });
  }
});

/** Each `dockwall COMMAND …` line of a contract's command-line block: the command exists and its --help names every option the line uses. */
async function cliBlockHolds(file: string): Promise<number> {
  const lines = readFileSync(join(dir, file), "utf8").split("\n").filter((l) => l.startsWith("dockwall "));
  for (const line of lines) {
    const cmd = line.split(/\s+/)[1]!;
    const io = memoryIo({});
    expect(await run([cmd, "--help"], io)).toBe(0);
    const help = io.out.join("");
    for (const opt of line.replace(/#.*/, "").match(/--[a-z-]+|-o\b/g) ?? []) expect(help, `${cmd} --help lacks ${opt}`).toContain(opt);
  }
  return lines.length;
}

test("the command-line block names only commands and options the CLI has", async () => {
  expect(await cliBlockHolds("07-cli.txt")).toBeGreaterThan(0);
});

/** The policy examples of the README and docs/: every ``` block with no language or `dw` that holds a `docker {` block. */
function docPolicies(): { file: string; text: string }[] {
  const docs = join(dir, "../../docs");
  const files = ["README.md", ...readdirSync(docs).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
  return files.flatMap((file) =>
    [...readFileSync(join(dir, "../..", file), "utf8").matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)]
      .filter((m) => (m[1] === "" || m[1] === "dw") && m[2]!.includes("docker {"))
      .map((m) => ({ file, text: m[2]! })),
  );
}

test("the policy examples of the README and docs/ (the language reference's tour among them) compile", () => {
  const blocks = docPolicies();
  expect(blocks.some((b) => b.file === "README.md")).toBe(true);
  expect(blocks.filter((b) => b.file === "docs/language.md").length).toBeGreaterThanOrEqual(8);
  // A policy that names containers (version auto) compiles with a real host's facts.
  const facts = { raw: JSON.parse(readFileSync(join(dir, "../facts/compose/state.json"), "utf8")), source: "host.json" };
  expect(blocks.some((b) => b.text.includes("version auto"))).toBe(true);
  for (const { file, text } of blocks) {
    const r = compile(text, { format: "ferm", facts: text.includes("version auto") ? facts : undefined });
    expect(r.ok, formatDiagnostics(r.diagnostics, file, text)).toBe(true);
  }
});

test("every block docs/language.md marks as a policy (no language, or dw) is one", () => {
  const text = readFileSync(join(dir, "../../docs/language.md"), "utf8");
  for (const m of text.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)) if (m[1] === "" || m[1] === "dw") expect(m[2], "a block with no language in docs/language.md is a policy example").toContain("docker {");
});

describe("live.md (facts from the daemon): its blocks, copied verbatim into live/", () => {
  test("the command-line block names only commands and options the CLI has", async () => {
    expect(await cliBlockHolds("live/01-cli.txt")).toBe(6);
  });

  test("the example policy compiles unchanged with a host's facts, and names no address or bridge", () => {
    const text = readFileSync(join(dir, "live/02-example.dw"), "utf8");
    expect(text).not.toMatch(/\d+\.\d+\.\d+\.\d+(?!\/24)|br-/);
    const raw = JSON.parse(readFileSync(join(dir, "../facts/compose/state.json"), "utf8"));
    for (const format of SPEC_FORMATS) {
      const r = compile(text, { format, facts: { raw, source: "host.json" } });
      expect(r.ok, formatDiagnostics(r.diagnostics, "example.dw", text)).toBe(true);
    }
    // Without facts it names containers nobody declared.
    expect(compile(text, { checkOnly: true }).ok).toBe(false);
  });
});
