// The pure pipeline, a table of stages: parse → build model → add Docker facts → resolve
// targets → check → select layout → generate → render. No I/O here; the CLI reads files and
// asks the daemon, prints diagnostics and writes output.
import { Problems, startOfFile, type Diagnostic } from "./diagnostics.js";
import { layoutFor } from "./docker/layouts.js";
import { parse } from "./parse.js";
import { buildModel, modelBuilder, type BuildResult } from "./model/build.js";
import { check } from "./check/index.js";
import { generate, generateLazily, type Generated } from "./generate.js";
import { TARGETS } from "./targets/index.js";
import { nftOutput } from "./targets/nft.js";
import type { NftState } from "./live/nftdiff.js";
import type { Policy } from "./model/types.js";
import type { Layout } from "./docker/layout.js";
import { readFacts, type FactsMemo, type RawFacts } from "./facts/read.js";
import { addFacts } from "./facts/merge.js";
import { checkBackend } from "./facts/settings.js";
import { checkNftablesConf, type NftablesConf } from "./check/nftconf.js";
import { checkHost, type HostSysctls } from "./check/host.js";
import { resolveTargets } from "./model/targets.js";
import { isError, parseVersion } from "./model/values.js";
import { VERSION } from "./version.js";

import type { Format } from "./formats.js";
export { FORMATS, type Format } from "./formats.js";

export interface CompileOptions {
  format?: Format;
  /** Shown in the output's header comment. */
  file?: string;
  /** Stop before generating (dockwall check): every stage that can reject a policy has run. */
  checkOnly?: boolean;
  /** Generate the rule sets but render no text (dockwall diff compares the rule sets). */
  noRender?: boolean;
  /** The dockerd release to reproduce, overriding the policy's `version` (--docker-version). */
  dockerVersion?: string;
  /** How diagnostics name where dockerVersion came from (default `--docker-version VERSION`). */
  dockerVersionOption?: string;
  /** Docker's facts (the Engine API's objects) and where they were read (--docker, --facts). */
  facts?: { raw: RawFacts; source: string };
  /**
   * Errors that only Docker's facts cause, with a policy whose text is right: an allow's port
   * that its container no longer publishes, a declaration that Docker now disagrees with.
   * "error" (the default: compile, check and apply stop and say so) or "warn" (dockwall watch):
   * each is a warning marked `leftOut`, the allow targets it concerns are left out (they admit
   * nothing), and everything else compiles. Errors in the policy's text stay errors.
   */
  factsErrors?: "error" | "warn";
  /** /etc/nftables.conf, read (dockwall check): its `flush ruleset` is held against the policy (check/nftconf.ts). */
  nftablesConf?: NftablesConf[];
  /** Where the output goes (-o): an include of it in nftablesConf puts back what a flush removes. */
  output?: string;
  /**
   * The rules are walked, not written (explain, matrix, verify): what Docker's firewall backend
   * means for an output (DOCKER-USER not reached beside its nftables backend) is not said; a
   * policy and a daemon that disagree still are.
   */
  analysis?: boolean;
  /**
   * What an earlier compile read of the same facts objects (watch: each reconcile's facts are
   * mostly the objects of the one before): read again only where they changed (facts/read.ts).
   */
  factsMemo?: FactsMemo;
  /**
   * Docker's containers without their addresses (watch, while dockerd cannot be asked and a
   * container's link changed: watch/links.ts): their rules by address are left out (a DNAT, an
   * accept or allow to a container's address, which may now be another container's), their rules
   * by port kept (docker-proxy's, which dockerd starts anew for whoever runs).
   */
  addressless?: boolean;
  /**
   * --format nft: the tables as live/nftdiff.ts reads the file (CompileResult.nftState), and the
   * file's text made only when `output` is read (watch compares the tables with what is loaded at
   * each reconcile, and loads the whole file only now and then).
   */
  nftState?: boolean;
  /** The sysctls of the host check runs on (dockwall check): what dockwall's rules need of it with `iptables off` (check/host.ts). */
  hostSysctls?: HostSysctls;
}

export interface CompileResult {
  ok: boolean;
  diagnostics: Diagnostic[];
  /** Errors found but not in diagnostics (syntax errors past the first 50). */
  omitted?: number;
  output?: string;
  policy?: Policy;
  generated?: Generated;
  /** With `nftState`: the file's tables as live/nftdiff.ts's parseNftList reads its text. */
  nftState?: NftState;
}

/** What the stages hand on to each other. */
interface State {
  text: string;
  options: CompileOptions;
  problems: Problems;
  policy?: Policy;
  layout?: Layout;
  generated?: Generated;
  output?: string;
  /** The output, made when it is read (nftState). */
  lazyOutput?: () => string;
  nftState?: NftState;
}

interface Stage {
  name: string;
  /** Whether the stage runs for these options (every stage runs unless it says). */
  when?: (o: CompileOptions) => boolean;
  run: (s: State) => void;
}

/**
 * The pipeline, in order. Each stage reports into the one collector; compile stops after a
 * stage that reported an error. `check` runs every stage before "generate", so it rejects
 * whatever compile would.
 */
export const stages: Stage[] = [
  { name: "parse and build the model", run: parseAndBuild },
  { name: "add Docker's facts", when: (o) => o.facts !== undefined, run: addDockerFacts },
  {
    name: "resolve allow targets",
    run: (s) => resolveTargets(s.policy!, s.problems),
  },
  {
    name: "check",
    run: (s) => {
      s.problems.items.push(...check(s.policy!, { factsErrors: s.options.factsErrors }).items);
    },
  },
  // Docker's firewall backend against the policy and the format (--format nft is the one that works with Docker's nftables backend); with facts, part of adding them.
  { name: "firewall backend", when: (o) => o.facts === undefined, run: (s) => checkBackend(s.policy!, backendFormat(s.options), s.problems) },
  { name: "nftables.conf", when: (o) => o.nftablesConf !== undefined, run: (s) => s.options.nftablesConf!.forEach((c) => checkNftablesConf(s.policy!, s.options.format ?? "ferm", c, s.options.output, s.problems)) },
  { name: "the host", when: (o) => o.hostSysctls !== undefined, run: (s) => checkHost(s.policy!, s.options.format ?? "ferm", s.options.hostSysctls!, s.problems) },
  { name: "select the Docker layout", run: selectLayout },
  {
    name: "generate",
    when: (o) => !o.checkOnly,
    run: (s) => {
      const opts = { standIn: s.options.format !== "nft" };
      // The nft file with `iptables off` writes Docker's tables from the plan, not from these rules: made when asked for.
      s.generated = s.options.format === "nft" && !s.policy!.docker.iptables ? generateLazily(s.policy!, families(s.options), opts) : generate(s.policy!, families(s.options), opts);
    },
  },
  { name: "render", when: (o) => !o.checkOnly && !o.noRender, run: render },
];

export function compile(text: string, options: CompileOptions = {}): CompileResult {
  const s: State = { text, options, problems: new Problems() };
  for (const stage of stages) {
    if (stage.when && !stage.when(options)) continue;
    stage.run(s);
    if (s.problems.hasErrors) return { ok: false, diagnostics: s.problems.items, omitted: s.problems.omitted || undefined, policy: s.policy };
  }
  const result: CompileResult = { ok: true, diagnostics: s.problems.items, output: s.output, policy: s.policy, generated: s.generated };
  if (s.nftState) result.nftState = s.nftState;
  const lazy = s.lazyOutput;
  if (lazy) {
    let text: string | undefined;
    Object.defineProperty(result, "output", { enumerable: true, get: () => (text ??= lazy()) });
  }
  return result;
}

/** Each statement goes to the model builder as soon as it is parsed. */
function parseAndBuild(s: State): void {
  const model = modelBuilder();
  const parsed = parse(s.text, model.add);
  s.problems.items.push(...parsed.problems.items);
  s.problems.omitted += parsed.problems.omitted;
  if (parsed.problems.hasErrors) return;
  // The whole file's statements come back only if the statement-by-statement pass gave up.
  const built: BuildResult = parsed.statements ? buildModel(parsed.statements) : model.finish();
  s.problems.items.push(...built.problems.items);
  s.policy = built.policy;
  if (s.options.dockerVersion) overrideVersion(built.policy, s.options.dockerVersion, s.options.dockerVersionOption);
}

function addDockerFacts(s: State): void {
  const facts = readFacts(s.options.facts!.raw, s.options.facts!.source, s.problems, s.options.factsMemo);
  if (s.problems.hasErrors) return;
  addFacts(s.policy!, facts, s.problems, s.options.factsErrors === "warn", backendFormat(s.options));
  // (Copies: a container read from Docker's objects may be read again as it is, FactsMemo.)
  if (s.options.addressless) {
    s.policy!.containers = s.policy!.containers.map((c) => ({ ...c, endpoints: c.endpoints.map((e) => ({ ...e, addresses: [] })) }));
    if (s.policy!.withFacts) s.policy!.withFacts.addressless = true;
  }
  // --docker-version still wins over the daemon's.
  if (s.options.dockerVersion) overrideVersion(s.policy!, s.options.dockerVersion, s.options.dockerVersionOption);
}

/** The output the backend is checked for: none written for the analysis commands. */
const backendFormat = (o: CompileOptions): string | undefined => (o.analysis ? "analysis" : o.format);

function selectLayout(s: State): void {
  // The checker has refused every version no layout covers (bad-version): one is found here.
  const layout = layoutFor(s.policy!.docker.version?.value);
  if (!layout) throw new Error(`no Docker layout for version ${s.policy!.docker.version?.value.text ?? "(none)"}, which the checker let through`);
  s.layout = layout;
}

function families(o: CompileOptions): readonly (4 | 6)[] {
  return o.noRender ? [4, 6] : TARGETS[o.format ?? "ferm"].families;
}

function render(s: State): void {
  const format = s.options.format ?? "ferm";
  if (format === "nft" && s.options.nftState) {
    const out = nftOutput(s.policy!, s.generated!.rulesets, headerLines(s.policy!, s.options.file, format), s.problems);
    if (!out) s.output = "";
    else {
      s.lazyOutput = out.text;
      s.nftState = out.state();
    }
    return;
  }
  s.output = TARGETS[format].render({ policy: s.policy!, generated: s.generated!, header: headerLines(s.policy!, s.options.file, format), problems: s.problems });
}

/** --docker-version wins over the policy's `version`; a diagnostic about it names the option, not the policy's line. */
function overrideVersion(p: Policy, text: string, option = `--docker-version ${text}`): void {
  const v = parseVersion(text);
  if (isError(v)) throw new Error(`invalid Docker version '${text}'`);
  p.docker.version = { value: v, span: { line: 0, col: 0, endLine: 0, endCol: 0, option } };
}

function headerLines(p: Policy, file: string | undefined, format: Format): string[] {
  const v = p.docker.version ? p.docker.version.value.text : "newest";
  const lines = [
    `Generated by dockwall ${VERSION}${file ? ` from ${file}` : ""}. Edit the policy, not this file.`,
    `Docker ${v}, iptables ${p.docker.iptables ? "on (dockerd writes its own chains; dockwall owns DOCKER-USER" + (p.host ? " and INPUT" : "") + ")" : "off (dockwall writes all of Docker's chains)"}, published ports ${p.docker.published}.`,
  ];
  if (format === "nft" && p.docker.iptables) {
    lines.push(
      `Load with: nft -f FILE. One transaction, which replaces dockwall's table (inet dockwall) and nothing else;`,
      `from /etc/nftables.conf: include "FILE" (a 'flush ruleset' above it also removes Docker's rules until dockerd restarts).`,
      `This table can only drop: an accept in it ends its own chain, and Docker's chains still decide what they drop.`,
      ...(p.docker.firewallBackend?.value === "nftables" || /^nftables\b/.test(p.docker.backendFact?.driver ?? "")
        ? [`Docker's nftables backend sets no FORWARD policy: what the host routes that is not a Docker network's own traffic is dropped here unless a 'forward' statement lets it through.`]
        : [
            `Beside Docker's iptables backend, FORWARD's policy is iptables' and this file does not set it: the iptables and ferm outputs set it to DROP`,
            `(dockerd leaves ACCEPT when IP forwarding was on before it started, and the host then routes between all its interfaces). Load one of them too.`,
          ]),
    );
  } else if (format === "nft") {
    lines.push(
      `Docker's tables (ip/ip6 docker-bridges) as dockerd 29.7's nftables backend writes them, and dockwall's (inet dockwall).`,
      `Load with: nft -f FILE (or include it from /etc/nftables.conf). One transaction, which replaces these tables and nothing else.`,
      `dockerd must run with "iptables": false and "ip6tables": false, and IP forwarding must be on (dockerd 29 turns it on only for its iptables rules).`,
    );
  } else if (format !== "ferm" && p.docker.iptables) lines.push(`Load with: ${format === "iptables" ? "iptables" : "ip6tables"}-restore --noflush < FILE`);
  return lines;
}
