// The pure pipeline: parse → build model → check → generate → render. No I/O here;
// the CLI reads files, prints diagnostics and writes output.
import { Problems, startOfFile, type Diagnostic } from "./diagnostics.js";
import { layoutFor, layouts, NEWEST } from "./docker/layouts.js";
import { parse } from "./parse.js";
import { buildModel, modelBuilder, type BuildResult } from "./model/build.js";
import { check } from "./check/index.js";
import { generate, type Generated } from "./generate.js";
import { renderIptables } from "./targets/iptables.js";
import { renderFerm } from "./targets/ferm.js";
import type { Policy } from "./model/types.js";
import { formatVersion, isError, parseVersion } from "./model/values.js";
import { VERSION } from "./version.js";

import type { Format } from "./formats.js";
export { FORMATS, type Format } from "./formats.js";

export interface CompileOptions {
  format?: Format;
  /** Shown in the output's header comment. */
  file?: string;
  /** Stop after the checker (dockwall check). */
  checkOnly?: boolean;
  /** Generate the rule sets but render no text (dockwall diff compares the rule sets). */
  noRender?: boolean;
  /** The dockerd release to reproduce, overriding the policy's `version` (--docker-version). */
  dockerVersion?: string;
}

export interface CompileResult {
  ok: boolean;
  diagnostics: Diagnostic[];
  output?: string;
  policy?: Policy;
  generated?: Generated;
}

export function compile(text: string, options: CompileOptions = {}): CompileResult {
  const diagnostics: Diagnostic[] = [];
  const stage = <T extends { problems: { items: Diagnostic[]; hasErrors: boolean } }>(r: T): boolean => {
    diagnostics.push(...r.problems.items);
    return !r.problems.hasErrors;
  };

  const built = parseAndBuild(text, stage);
  if (!built) return { ok: false, diagnostics };
  if (options.dockerVersion) overrideVersion(built.policy, options.dockerVersion);
  const checked = { problems: check(built.policy) };
  if (!stage(checked)) return { ok: false, diagnostics, policy: built.policy };
  if (options.checkOnly) return { ok: true, diagnostics, policy: built.policy };

  const layout = layoutFor(built.policy.docker.version?.value);
  if (!layout) {
    const d = built.policy.docker;
    const problems = new Problems();
    problems.error("unsupported-layout", d.version?.span ?? d.span ?? startOfFile, `dockwall cannot yet reproduce the chains of Docker ${d.version ? d.version.value.text : `${NEWEST.text} (the newest, assumed because no version is given)`}`, {
      help: `it reproduces dockerd ${layouts.map((l) => l.covers).join(", ")}; write the release this host runs, e.g. docker { version 20.10; }`,
    });
    stage({ problems });
    return { ok: false, diagnostics, policy: built.policy };
  }
  const format = options.format ?? "ferm";
  const families = options.noRender || format === "ferm" ? ([4, 6] as const) : format === "iptables" ? ([4] as const) : ([6] as const);
  const generated = generate(built.policy, families);
  if (options.noRender) return { ok: true, diagnostics, policy: built.policy, generated };
  const header = headerLines(built.policy, options.file, format);
  let output: string;
  if (format === "ferm") {
    const d = built.policy.docker;
    if (d.iptables) {
      const problems = new Problems();
      problems.warning("ferm-backend", d.spans["iptables"] ?? d.span ?? startOfFile, `ferm loads rules with the iptables-legacy tools when they are installed, while dockerd uses whatever /usr/sbin/iptables is`, {
        help: `with iptables on, the two must share a backend for DOCKER-USER to be the chain dockerd jumps to: check 'iptables --version' against ferm's (legacy), or deploy --format iptables with iptables-restore --noflush`,
      });
      diagnostics.push(...problems.items);
    }
    // A family with nothing to write is left out (ferm would reset its tables).
    const rulesets = [generated.rulesets[4]!, generated.rulesets[6]!].filter((r) => r.tables.length > 0);
    output = renderFerm({ rulesets, preserve: generated.preserve, header, hooks: [...generated.setup[4], ...generated.setup[6]] });
  } else {
    const commands = generated.setup[format === "iptables" ? 4 : 6];
    const setup = commands.length ? ["Run first (Docker 28.0.0 matches its bridges with these ipsets):", ...commands.map((c) => `  ${c}`)] : [];
    output = renderIptables(generated.rulesets[format === "iptables" ? 4 : 6]!, [...header, ...setup]);
  }
  return { ok: true, diagnostics, output, policy: built.policy, generated };
}

/** Stages 1 and 2: each statement goes to the model builder as soon as it is parsed. */
function parseAndBuild(text: string, stage: (r: { problems: Problems }) => boolean): BuildResult | undefined {
  const model = modelBuilder();
  const parsed = parse(text, model.add);
  if (!stage(parsed)) return undefined;
  // The whole file's statements come back only if the statement-by-statement pass gave up.
  const built = parsed.statements ? buildModel(parsed.statements) : model.finish();
  return stage(built) ? built : undefined;
}

/** --docker-version wins over the policy's `version` (spans stay where the policy said it, if it did). */
function overrideVersion(p: Policy, text: string): void {
  const v = parseVersion(text);
  if (isError(v)) throw new Error(`invalid Docker version '${text}'`);
  const span = p.docker.version?.span ?? p.docker.span ?? startOfFile;
  p.docker.version = { value: v, span };
}

function headerLines(p: Policy, file: string | undefined, format: Format): string[] {
  const v = p.docker.version ? formatVersion(p.docker.version.value) : "newest";
  const lines = [
    `Generated by dockwall ${VERSION}${file ? ` from ${file}` : ""}. Edit the policy, not this file.`,
    `Docker ${v}, iptables ${p.docker.iptables ? "on (dockerd writes its own chains; dockwall owns DOCKER-USER" + (p.host ? " and INPUT" : "") + ")" : "off (dockwall writes all of Docker's chains)"}, published ports ${p.docker.published}.`,
  ];
  if (format !== "ferm" && p.docker.iptables) lines.push(`Load with: ${format === "iptables" ? "iptables" : "ip6tables"}-restore --noflush < FILE`);
  return lines;
}
