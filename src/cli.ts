// The command line: a thin shell over compile(). It reads files, prints diagnostics and
// writes output; everything it does goes through the `io` it is given, so tests run it
// in process. Nothing below this file calls process.exit.
import { normalize, resolve } from "node:path";
import type { Argv } from "yargs";
import type { CompileOptions, CompileResult } from "./compile.js";
import { FORMATS, type Format } from "./formats.js";
import { diagnosticsJson, formatDiagnostics, JSON_VERSION } from "./diagnostics.js";
import { VERSION } from "./version.js";
import type { DiffIo } from "./live/command.js";
import type { RawFacts } from "./facts/read.js";
import type { SystemIo } from "./apply/command.js";
import type { FactsNow, FactsSource } from "./apply/rollback.js";
import type { NftablesConf } from "./check/nftconf.js";
import type { Policy } from "./model/types.js";
import type { Ruleset } from "./ir/ruleset.js";

export interface DockerEngine {
  /** `signal`: a read that may give way to an event (facts/engine.ts). */
  facts: (signal?: AbortSignal) => Promise<Facts>;
  /** The facts from the last read and the containers events named since, inspected again (watch; facts/engine.ts). */
  changedFacts?: () => Promise<Facts>;
  /** Drops what the client kept of a container (an event about it), or of everything. */
  forget: (id?: string) => void;
  /** A network `connect` event: the container may be starting (its rules go in before it runs). */
  connected?: (id: string) => void;
  /** Why the last facts left out containers that are starting, by id. */
  notYet?: () => ReadonlyMap<string, string>;
  events: (onEvent: (e: Record<string, unknown>) => void, onOpen: () => void) => { done: Promise<void>; close: () => void };
  close: () => void;
}

type Facts = { raw: RawFacts; source: string };

/** The compiler is loaded when a command needs it, so that --help starts fast. */
async function compile(text: string, options: CompileOptions): Promise<CompileResult> {
  return (await import("./compile.js")).compile(text, options);
}

export interface Io extends DiffIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  readFile: (path: string) => string;
  /** Writes the file whole or not at all. */
  writeFile: (path: string, text: string) => void;
  readStdin: () => string;
  /** Whether stderr is a terminal (coloured diagnostics). */
  isTTY: boolean;
  /** Whether stdout is a terminal (coloured diff). */
  stdoutIsTTY: boolean;
  /** The running dockerd's version (for --docker-version auto). */
  dockerVersion: () => Promise<string>;
  /** The running dockerd's facts: networks, running containers, version (--docker, facts, init). */
  dockerFacts: () => Promise<Facts>;
  /** The machine: programs, the state directory, time (apply, confirm, rollback). */
  system: () => SystemIo;
  /** A client of the daemon that stays open (watch): facts, and its event stream. */
  dockerEngine: () => DockerEngine;
  /** Calls `fn` on each delivery of the signal (watch: SIGHUP, SIGTERM, SIGINT). */
  onSignal: (signal: "SIGHUP" | "SIGTERM" | "SIGINT", fn: () => void) => void;
  /** Whether two paths ("-": standard input) are one existing file (device and inode); default: the same path. */
  sameFile?: (a: string, b: string) => boolean;
  /** A file's real path (symbolic links followed); default: the path made absolute. */
  realPath?: (p: string) => string;
}

/** The policy file as apply and watch name it to each other (watching.ts); none for standard input. */
function policyPath(io: Io, file: string): string | undefined {
  return file === "-" || file === "" ? undefined : (io.realPath ?? resolve)(file);
}

export const EXIT = { ok: 0, differs: 1, error: 2 } as const;

const EPILOG = `Exit codes: 0 success (for diff: no difference), 1 diff found differences (matrix, verify: a cell is not what the policy says), 2 the input is wrong (a diagnostic was printed), a guard refused, or the tool failed, 3 apply --confirm was not confirmed and rolled back.

Diagnostics go to stderr as FILE:LINE:COLUMN: error|warning: MESSAGE, with the source line and a caret;
one about a fact read from Docker as SOURCE: container|network 'NAME' (ID): error|warning: MESSAGE.
--docker, facts, init and watch ask dockerd at DOCKER_HOST (unix:///PATH or tcp://HOST:PORT), else /var/run/docker.sock.
No output file is written when there is an error.`;

interface Loaded {
  text: string;
  file: string;
}

function load(io: Io, path: string): Loaded | number {
  // yargs hands a lone "-" positional over as "".
  if (path === "") path = "-";
  try {
    return { text: path === "-" ? io.readStdin() : io.readFile(path), file: path === "-" ? "<stdin>" : path };
  } catch (e) {
    io.stderr(`dockwall: cannot read ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}\n`);
    return EXIT.error;
  }
}

function colour(io: Io, s: string): string {
  if (!io.isTTY) return s;
  return s
    .replace(/^(.*?:\d+:\d+: )error:/gm, "$1\x1b[1;31merror:\x1b[0m")
    .replace(/^(.*?:\d+:\d+: )warning:/gm, "$1\x1b[1;33mwarning:\x1b[0m")
    .replace(/^(.*?:\d+:\d+: )note:/gm, "$1\x1b[1;36mnote:\x1b[0m");
}

/** --docker-version: "auto" asks dockerd; anything else must read as a version. */
async function resolveDockerVersion(io: Io, v: string | undefined): Promise<string | undefined | number> {
  if (v === undefined) return undefined;
  if (v === "auto") {
    try {
      return await io.dockerVersion();
    } catch (e) {
      io.stderr(`dockwall: ${(e as Error).message}\n`);
      return EXIT.error;
    }
  }
  if (!/^\d+(\.\d+){0,2}$/.test(v)) {
    io.stderr(`dockwall: --docker-version takes 'auto' or a version like 28.5, not '${v}'\n`);
    return EXIT.error;
  }
  return v;
}

/** How a diagnostic names a release that --docker-version auto asked the daemon for. */
function fromAuto(given: string | undefined, resolved: string | undefined): string | undefined {
  return given === "auto" && resolved ? `--docker-version auto (the running dockerd's ${resolved})` : undefined;
}

interface FactsArgs {
  docker?: boolean;
  facts?: string;
}

/** Docker's facts, from the daemon (--docker) or a file (--facts); undefined with neither; an exit code when they cannot be had. */
async function loadFacts(io: Io, a: FactsArgs): Promise<Facts | undefined | number> {
  if (a.facts !== undefined) {
    const { parseFactsText } = await import("./facts/read.js");
    const src = load(io, a.facts);
    if (typeof src === "number") return src;
    const raw = parseFactsText(src.text);
    if (typeof raw === "string") {
      io.stderr(`dockwall: ${src.file}: ${raw}\n`);
      return EXIT.error;
    }
    return { raw, source: src.file };
  }
  if (!a.docker) return undefined;
  try {
    return await io.dockerFacts();
  } catch (e) {
    io.stderr(`dockwall: ${(e as Error).message}\n`);
    return EXIT.error;
  }
}

/** The sysctls check holds against the policy (check/host.ts); what cannot be read is left out (a machine in memory: none). */
function readSysctls(io: Io): import("./check/host.js").HostSysctls | undefined {
  const flag = (path: string) => {
    try {
      return io.readFile(path).trim() !== "0";
    } catch {
      return undefined;
    }
  };
  const ipForward = flag("/proc/sys/net/ipv4/ip_forward");
  if (ipForward === undefined) return undefined;
  // br_netfilter loaded: its sysctls are there; bridged traffic through the rules: they are 1.
  const brNetfilter = flag("/proc/sys/net/bridge/bridge-nf-call-iptables");
  return { ipForward, ip6Forward: flag("/proc/sys/net/ipv6/conf/all/forwarding"), brLoaded: brNetfilter !== undefined, brNetfilter: brNetfilter ?? false, brNetfilter6: flag("/proc/sys/net/bridge/bridge-nf-call-ip6tables") ?? false };
}

/** Where nftables.service, when enabled, is linked, and the file it then loads (Debian's unit: sysinit.target, /etc/nftables.conf; RHEL's: multi-user.target, /etc/sysconfig/nftables.conf). */
const NFTABLES_ENABLED: [string, string][] = [
  ["/etc/systemd/system/sysinit.target.wants/nftables.service", "/etc/nftables.conf"],
  ["/etc/systemd/system/multi-user.target.wants/nftables.service", "/etc/sysconfig/nftables.conf"],
];

/**
 * The nftables.conf check reads: FILE (--nftables-conf), or the file nftables.service loads
 * when it is enabled (a host that loads it at boot); none otherwise; and each file they
 * include by name (a glob is not followed). A file given that cannot be read is an error
 * (exit 2).
 */
function readNftablesConf(io: Io, given: string | undefined): NftablesConf[] | undefined | number {
  const read = (file: string): NftablesConf | undefined => {
    try {
      return { file, text: io.readFile(file) };
    } catch {
      return undefined;
    }
  };
  let first: NftablesConf | undefined;
  if (given !== undefined) {
    try {
      first = { file: given, text: io.readFile(given) };
    } catch (e) {
      io.stderr(`dockwall: cannot read ${given} (--nftables-conf): ${(e as Error).message}\n`);
      return EXIT.error;
    }
  } else {
    const loads = NFTABLES_ENABLED.find(([link]) => read(link) !== undefined)?.[1];
    first = loads === undefined ? undefined : read(loads);
  }
  if (!first) return undefined;
  const all = [first];
  for (let i = 0; i < all.length && all.length < 20; i++) {
    for (const m of all[i]!.text.matchAll(/^\s*include\s+"([^"*?[]+)"/gm)) {
      if (m[1]!.startsWith("/") && !all.some((c) => c.file === m[1])) {
        const c = read(m[1]!);
        if (c) all.push(c);
      }
    }
  }
  return all;
}

async function compileCommand(io: Io, args: FactsArgs & { policy: string; format: Format; output?: string; checkOnly: boolean; dockerVersion?: string; json?: boolean; nftablesConf?: string }): Promise<number> {
  if (args.json && !args.checkOnly && args.output === undefined) {
    io.stderr("dockwall: compile --json prints the diagnostics on standard output: give -o FILE for the rules\n");
    return EXIT.error;
  }
  const dockerVersion = await resolveDockerVersion(io, args.dockerVersion);
  if (typeof dockerVersion === "number") return dockerVersion;
  if (args.output !== undefined && outputIsPolicy(io, args.policy, args.output, args.format)) return EXIT.error;
  const src = load(io, args.policy);
  if (typeof src === "number") return src;
  const facts = await loadFacts(io, args);
  if (typeof facts === "number") return facts;
  // check holds /etc/nftables.conf against the policy (its 'flush ruleset').
  const nftablesConf = args.checkOnly ? readNftablesConf(io, args.nftablesConf) : undefined;
  if (typeof nftablesConf === "number") return nftablesConf;
  // check holds the host's sysctls against what the rules need of it (forwarding, br_netfilter).
  const hostSysctls = args.checkOnly ? readSysctls(io) : undefined;
  const r = await compile(src.text, { format: args.format, file: src.file, checkOnly: args.checkOnly, dockerVersion, dockerVersionOption: fromAuto(args.dockerVersion, dockerVersion), facts, nftablesConf, output: args.output, hostSysctls });
  if (args.json) {
    // The diagnostics as data (src/schema/dockwall.schema.json); the rules, when there are no errors, to -o FILE.
    const errors = r.diagnostics.filter((d) => d.severity === "error").length + (r.omitted ?? 0);
    let written = false;
    if (r.ok && !args.checkOnly) {
      try {
        io.writeFile(args.output!, r.output!);
        written = true;
      } catch (e) {
        io.stderr(`dockwall: cannot write ${args.output}: ${(e as Error).message}\n`);
        return EXIT.error;
      }
    }
    io.stdout(JSON.stringify({ dockwall: JSON_VERSION, command: args.checkOnly ? "check" : "compile", ok: r.ok, errors, warnings: r.diagnostics.filter((d) => d.severity === "warning").length, ...(args.checkOnly ? {} : { written: written ? args.output : null }), diagnostics: diagnosticsJson(r.diagnostics, src.file) }, null, 2) + "\n");
    return r.ok ? EXIT.ok : EXIT.error;
  }
  if (r.diagnostics.length) io.stderr(colour(io, formatDiagnostics(r.diagnostics, src.file, src.text)));
  if (!r.ok) {
    const n = r.diagnostics.filter((d) => d.severity === "error").length;
    // check writes nothing whatever it finds: its summary only counts.
    io.stderr(`dockwall: ${errorCount(n, r.omitted)}${args.checkOnly ? "" : `; ${args.output ? `${args.output} was not written` : "nothing was written"}`}\n`);
    return EXIT.error;
  }
  if (args.checkOnly) return EXIT.ok;
  if (args.output) {
    try {
      io.writeFile(args.output, r.output!);
    } catch (e) {
      io.stderr(`dockwall: cannot write ${args.output}: ${(e as Error).message}\n`);
      return EXIT.error;
    }
  } else io.stdout(r.output!);
  return EXIT.ok;
}

export { JSON_VERSION } from "./diagnostics.js";

/** "3 errors", or "227 errors (50 shown)" when some were not printed. */
function errorCount(shown: number, omitted = 0): string {
  const n = shown + omitted;
  return `${n} error${n === 1 ? "" : "s"}${omitted ? ` (${shown} shown)` : ""}`;
}

/** `-o` naming the policy itself (a symlink or hard link of it included): refused before anything is read or written. */
function outputIsPolicy(io: Io, policy: string, output: string, format: Format): boolean {
  const input = policy === "" ? "-" : policy;
  const same = io.sameFile ? io.sameFile(input, output) : input === output || (input !== "-" && normalize(input) === normalize(output));
  if (!same) return false;
  const ext = format === "ferm" ? ".ferm" : format === "iptables" ? ".v4" : ".v6";
  const stem = input === "-" ? "rules" : input.endsWith(".dw") ? input.slice(0, -3) : input;
  const instead = stem + ext === output ? `${stem}.out${ext}` : stem + ext;
  io.stderr(`dockwall: -o ${output} is the policy file itself (${input === "-" ? "standard input" : input}): writing the output there would overwrite the policy; name another output file, e.g. -o ${instead}\n`);
  return true;
}

function policyArg(y: Argv) {
  return y.positional("policy", { describe: "the policy file (*.dw), or - for standard input", type: "string", demandOption: true });
}

function diffOptions<T>(y: Argv<T>) {
  return y
    .option("live", { describe: "iptables-save output to compare with (- for standard input); default: run iptables-save (and ip6tables-save)", type: "string", requiresArg: true })
    .option("live6", { describe: "ip6tables-save output to compare the IPv6 rules with (with --live)", type: "string", requiresArg: true })
    .option("json", { describe: 'print the differences as JSON: {"dockwall": 1, "command": "diff", changed, chains, summary, warnings, ignored, compared, reachability} (src/schema/dockwall.schema.json)', type: "boolean", default: false })
    .option("all", { describe: "also compare chains that belong to other tools (fail2ban's f2b-*, …)", type: "boolean", default: false })
    .option("ignore-chain", { describe: "a chain (or PREFIX*) of another tool to leave out of the comparison; repeatable", type: "string", array: true, default: [] as string[] })
    .option("color", { describe: "colour the diff (default: when stdout is a terminal)", type: "boolean" });
}

function factsOptions<T>(y: Argv<T>) {
  return y
    .option("docker", { describe: "read networks, running containers, published ports and the daemon's version from dockerd (DOCKER_HOST, else /var/run/docker.sock)", type: "boolean" })
    .option("facts", { describe: "read the same facts from FILE, as 'dockwall facts' writes them ({\"networks\": [...], \"containers\": [...]})", type: "string", requiresArg: true })
    .conflicts("docker", "facts");
}

function versionOption<T>(y: Argv<T>) {
  return y.option("docker-version", {
    describe: "the dockerd release whose chains to reproduce, overriding the policy's 'version'; 'auto' asks the running dockerd (/var/run/docker.sock or DOCKER_HOST)",
    type: "string",
    requiresArg: true,
  });
}

/** Runs the CLI; returns the exit code. */
export async function run(argv: string[], io: Io): Promise<number> {
  let code: number = EXIT.ok;
  // Loaded here, not at module load: yargs reads the terminal's width and the working
  // directory when it is first imported, and the start-up snapshot must not hold the build's.
  const { default: yargs } = await import("yargs");
  const cli = yargs(argv)
    .scriptName("dockwall")
    .usage("dockwall — a Docker host's firewall policy: compiled to ferm, iptables-restore or nftables, deployed safely, kept in step with Docker\n\nUsage: $0 <command> POLICY [options]")
    .command(
      "compile <policy>",
      "compile the policy to ferm (default), iptables-restore input, or an nftables table of its own (-f nft)",
      (y) =>
        factsOptions(versionOption(diffOptions(
          policyArg(y)
            .option("format", { alias: "f", describe: "output format: ferm (ferm.conf, IPv4 and IPv6), iptables or ip6tables (iptables-restore input), nft (for nft -f or an include in /etc/nftables.conf: dockwall's own table inet dockwall beside the rules dockerd writes, with 'iptables on', where it can only drop; with 'iptables off' and version 29.7 also Docker's tables ip/ip6 docker-bridges as dockerd 29.7's nftables backend writes them)", choices: FORMATS, default: "ferm" as Format })
            .option("output", { alias: "o", describe: "write to FILE instead of standard output (only when there is no error)", type: "string", requiresArg: true })
            .option("diff", { describe: "show what loading the result would change on this host (same as: dockwall diff POLICY)", type: "boolean", default: false }),
        )))
          .option("json", { describe: "print the diagnostics as JSON on standard output (src/schema/dockwall.schema.json), the rules to -o FILE; with --diff, the differences as JSON", type: "boolean", default: false })
          .example("$0 compile web.dw > /etc/ferm/ferm.conf", "ferm configuration")
          .example("$0 compile web.dw -f iptables -o rules.v4", "iptables-restore input, IPv4")
          .example("$0 compile web.dw --diff", "what would change on this host")
          .example("$0 compile web.dw --docker -f iptables", "with the networks and containers that run here")
          .example("$0 compile web.dw --docker -f nft -o /etc/nftables.d/dockwall.nft", "on an nftables host")
          .example("$0 compile web.dw --facts host.json", "with facts saved on another host (dockwall facts > host.json)")
          .example("$0 compile web.dw --docker-version auto", "the chains of the dockerd running here"),
      async (a) => {
        if (a.diff && a.output !== undefined) {
          const policy = a.policy === "" ? "-" : a.policy;
          io.stderr(`dockwall: -o cannot go with --diff: --diff shows what loading the rules would change and writes no file; compile with -o ${a.output} and run 'dockwall diff ${policy}' separately\n`);
          code = EXIT.error;
        } else if (a.diff) code = await diffCommand(io, { ...a, format: a.format === "nft" ? "nft" : "iptables" });
        else code = await compileCommand(io, { policy: a.policy, format: a.format, output: a.output, checkOnly: false, dockerVersion: a["docker-version"], docker: a.docker, facts: a.facts, json: a.json });
      },
    )
    .command(
      "diff <policy>",
      "compare the compiled rules with the live ruleset (exit 1 when they differ)",
      (y) =>
        factsOptions(versionOption(diffOptions(policyArg(y))))
          .option("format", { alias: "f", describe: "what to compare: iptables (the rules of the iptables and ferm outputs, read with iptables-save) or nft (the tables of the --format nft file, read with nft list table; --live FILE: nft list ruleset output)", choices: ["iptables", "nft"] as const, default: "iptables" as "iptables" | "nft" })
          .example("$0 diff web.dw --live saved.v4", "compare with a dump from another host")
          .example("$0 diff web.dw --docker", "what a deploy with the containers that run here would change")
          .example("$0 diff web.dw --docker -f nft", "the same for the --format nft file"),
      async (a) => {
        code = await diffCommand(io, a);
      },
    )
    .command(
      "check <policy>",
      "check the policy and print every problem, writing nothing",
      (y) =>
        factsOptions(versionOption(policyArg(y)))
          .option("json", { describe: "print the diagnostics as JSON on standard output: code, severity, message, file, line, column, help, notes, the Docker object (src/schema/dockwall.schema.json)", type: "boolean", default: false })
          .option("format", { alias: "f", describe: "the format it will be compiled to, for the checks that depend on it (nft: dockwall's own nftables table, which works beside Docker's nftables backend)", choices: FORMATS, default: "ferm" as Format })
          .option("nftables-conf", { describe: "the nftables.conf to hold against the policy: a 'flush ruleset' in it removes Docker's rules and dockwall's whenever it is loaded (a warning at its line). Default: the file nftables.service loads when it is enabled (/etc/nftables.conf; RHEL's /etc/sysconfig/nftables.conf); the files it includes by name are read too", type: "string", requiresArg: true })
          .option("output", { alias: "o", describe: "where the --format nft file will be written: an include of it after nftables.conf's 'flush ruleset' puts back what the flush removes (with 'iptables off')", type: "string", requiresArg: true }),
      async (a) => {
        code = await compileCommand(io, { policy: a.policy, format: a.format, checkOnly: true, dockerVersion: a["docker-version"], docker: a.docker, facts: a.facts, json: a.json, nftablesConf: a["nftables-conf"], output: a.output });
      },
    )
    .command(
      "apply <policy>",
      "load the compiled rules into this host's kernel (IPv4 and IPv6 together), keeping other tools' chains; refuses rules that would lock out your SSH session",
      (y) =>
        factsOptions(versionOption(policyArg(y)))
          .option("confirm", { describe: "keep the new rules only if confirmed within SECONDS ('yes' on the terminal, or 'dockwall confirm'); otherwise put back the rules from before and exit 3", type: "number", requiresArg: true })
          .option("format", { alias: "f", describe: "iptables: the iptables rules, IPv4 and IPv6, through iptables-restore; nft: the --format nft file through nft -f (one transaction that replaces dockwall's table, and with 'iptables off' Docker's; its lockout guard reads every table's input chain, and a rollback puts the tables back)", choices: ["iptables", "nft"] as const, default: "iptables" as const })
          .option("force", { describe: "apply even if the lockout guard says the rules would not accept your SSH session (SSH_CONNECTION)", type: "boolean", default: false })
          .option("wait", { describe: "with --confirm, wait for the confirmation (the default); --no-wait returns as soon as the rules are loaded, printing the apply's token: the rollback still comes at the deadline unless 'dockwall confirm --token TOKEN' comes first (confirmation over a new connection, as configuration management does it)", type: "boolean", default: true })
          .option("check", { describe: "do everything apply does before it loads (read the loaded rules, compare, the lockout guard, the restore tools' --test, who would reach what) and stop: nothing is loaded or written; exit 2 where apply would refuse", type: "boolean", default: false })
          .option("json", { describe: "print what was done (or, with --check, would be) as one JSON object on standard output: changed, the rule diff per family, reachability, refused, pending, outcome, diagnostics (src/schema/dockwall.schema.json)", type: "boolean", default: false })
          .example("$0 apply host.dw --docker --confirm 60", "apply; roll back in 60 s unless confirmed")
          .example("$0 apply host.dw --docker --check --json", "what an apply would change, and whether it would be refused, as data")
          .example("$0 apply host.dw --docker -f nft --confirm 60", "load the --format nft file with nft -f; roll back in 60 s unless confirmed")
          .epilog("$DOCKWALL_STATE_DIR (default /var/lib/dockwall) keeps the policy applied (policy.json) and the one before it (rollback.json): 'dockwall rollback' compiles that one again with Docker's facts as they are then and loads it. The tables as they were before the apply are in rollback.v4 and rollback.v6 (with -f nft, in rollback.json). A running 'dockwall watch' of the same policy file is told to read it again once the new rules stay; one of another file would put its own rules back, and apply says so."),
      async (a) => {
        code = await applyCommand(io, a);
      },
    )
    .command(
      "watch <policy>",
      "keep this host's rules equal to the policy compiled with Docker's current facts, as containers and networks come and go; runs until SIGTERM (SIGHUP reads the policy again)",
      (y) =>
        policyArg(y)
          .option("verbose", { alias: "v", describe: "log every event and every reconcile, not only those that change something", type: "boolean", default: false })
          .option("debounce", { describe: "MILLISECONDS an event that comes this soon after the one before waits before the reconcile (the first event after a quiet spell is reconciled at once; the rest of a burst, and events during a reconcile, are folded into the next)", type: "number", default: 20, requiresArg: true })
          .option("recheck", { describe: "SECONDS between full checks of the kernel against the policy, whatever happens (0: none); where the kernel tells of changes (nf_tables: nft monitor, or xtables-monitor), drift is put back at once anyway", type: "number", default: 10, requiresArg: true })
          .option("save-v4", { describe: "after each change, write the rules for boot to FILE (netfilter-persistent's /etc/iptables/rules.v4): what is loaded, but with no rule for any one container (no DNAT, no allow to its port), so published ports are closed after a reboot until the watcher has read Docker's facts", type: "string", requiresArg: true })
          .option("save-v6", { describe: "the same for ip6tables-save (/etc/iptables/rules.v6)", type: "string", requiresArg: true })
          .option("save-ferm", { describe: "after each change, write the policy compiled with Docker's networks but no container, as ferm.conf, to FILE (/etc/ferm/ferm.conf): closed the same way", type: "string", requiresArg: true })
          .option("format", { alias: "f", describe: "iptables: keep the iptables rules (iptables-restore, only the chains that differ); nft: keep the --format nft file's tables (dockwall's, and with 'iptables off' Docker's): what differs from what nft lists (rules, set and map elements, chains) is loaded as one nft transaction, the whole file where a table is missing or changed", choices: ["iptables", "nft"] as const, default: "iptables" as const })
          .option("save-nft", { describe: "with -f nft: after each change, write the --format nft file compiled with Docker's networks but no container to FILE (the file /etc/nftables.conf includes at boot): closed the same way", type: "string", requiresArg: true })
          .example("$0 watch /etc/dockwall/host.dw", "as the systemd service dockwall.service runs it")
          .example("$0 watch /etc/dockwall/host.dw -f nft --save-nft /etc/nftables.d/dockwall.nft", "on a host whose firewall is nftables")
          .epilog("A policy with errors is not applied (the rules in place stay). An error that only Docker's facts cause (a redeployed container no longer publishes the port an allow names; a declaration Docker disagrees with) is logged as a warning instead: that allow target is left out, admitting nothing, and everything else is applied. A new container's rules are loaded when Docker makes its endpoint (its network connect event, before its process runs), from its files in Docker's data root (a local dockerd) and the network's view of its address; a port Docker chooses only as it starts (-P, -p 80, a range) waits for the start event. SIGHUP reads the policy again, and uses it only if every SSH session open now (ss: connections to sshd's ports) would keep getting in. The watcher notes itself in $DOCKWALL_STATE_DIR/watch.json: 'dockwall apply' of the same file tells it to read the file again, and while an apply waits for confirmation it loads nothing. Drift (another tool or a hand flushing or changing what dockwall owns) is put back at once where nft monitor (or xtables-monitor) reports changes, else at the next full check (--recheck); other tools' own chains changing wakes nothing. A failed reconcile is tried again with backoff. While dockerd cannot be asked (stopped, restarting, crashed), the rules in place stay until a port leaves or joins one of its bridges (ip monitor link): dockerd is then removing or starting containers, and may give a gone one's address to another, so the rules to the containers' addresses are taken out (DNAT, allows; those by port and the networks' own stay) until it answers again."),
      async (a) => {
        code = await watchCommand(io, a);
      },
    )
    .command(
      "explain [args..]",
      "what becomes of a packet at this host, and why: the verdict, where it ends, each rule on its way with where it came from (a policy line, Docker's layout, dockwall's own rules, another tool's chain), and the allow that would admit a dropped one",
      (y) =>
        factsOptions(versionOption(
          y
            .positional("args", { describe: "POLICY (optional with --live), then one PACKET per argument, quoted: PROTO SRC -> DST [in IFACE] [state new|established|related]; PROTO tcp, udp, icmp (echo-request unless 'type NAME'), icmpv6; SRC ADDR[:PORT], container:NAME[@NETWORK][:PORT] or host[:PORT]; DST ADDR[:PORT], [IPv6]:PORT", type: "string", array: true })
            .option("live", { describe: "walk the rules loaded in this kernel (iptables-save, ip6tables-save; the host's addresses and routes from ip); the policy, when given, only names where each rule came from", type: "boolean", default: false })
            .option("json", { describe: 'print {"dockwall": 1, "command": "explain", "packets": [...]}: verdict, delivered, decided_by, path (each rule with its origin), unknown, suggestion', type: "boolean", default: false }),
        ))
          .example("$0 explain host.dw --docker 'tcp 203.0.113.7 -> 198.51.100.1:8080 in eth0'", "can the wan reach port 8080 here, and which rule says so?")
          .example("$0 explain host.dw --facts host.json 'tcp container:web -> 198.51.100.2:443'", "a container's connection out")
          .example("$0 explain --live host.dw 'udp 192.168.1.20 -> 198.51.100.1:53'", "the rules loaded now; the policy names their origins")
          .epilog("Without 'in IFACE', a packet from an address arrives on the interface of the zone whose 'from' holds it, else on the only interface the zones name. A destination is the host's own address unless it is inside a Docker network's subnet (then it is routed to that network's bridge) or loopback; with --live the kernel's addresses and routes say. A match the evaluator does not understand makes the verdict 'unknown', naming the match: it never guesses. Packets sent by the host itself (SRC host) are not evaluated yet: unknown. Exit 0 when every packet was evaluated, whatever its verdict; 2 on bad input."),
      async (a) => {
        code = await explainCommand(io, a);
      },
    )
    .command(
      "matrix <policy>",
      "who reaches what: rows are the classes of sources the rules treat alike (per zone and interface), columns the published ports, the host block's ports and ping; each cell per path and family, held against the policy (exit 1 when one is not what it says)",
      (y) =>
        factsOptions(versionOption(policyArg(y)))
          .option("live", { describe: "the rules loaded in this kernel (iptables-save, ip6tables-save; addresses and routes from ip), instead of the compiled ones", type: "boolean", default: false })
          .option("family", { describe: "one family only", choices: [4, 6], type: "number" })
          .option("json", { describe: 'print {"dockwall": 1, "command": "matrix", rows, columns, cells} (../shared/spec/analysis.md)', type: "boolean", default: false })
          .option("svg", { describe: "also write the matrix as a picture to FILE", type: "string", requiresArg: true })
          .example("$0 matrix host.dw --docker", "who reaches what on this host, as the policy compiles")
          .example("$0 matrix host.dw --docker --live --svg matrix.svg", "the rules loaded now, as a picture")
          .example("$0 matrix host.dw --facts host.json --live --json", "the rules loaded now, with the facts saved by 'dockwall facts' (as verify reads them)")
          .epilog("Paths: dnat (to the host's address: Docker's DNAT, or docker-proxy where it runs), direct (to the container's own address, routed via the host), loopback (127.0.0.1 routed from a neighbour), host (the host's own services and ping). A cell is open when that packet gets through (each cell's probe is a packet 'dockwall explain' takes), unknown when a rule's match is not understood. Intent comes from the policy's statements alone: allow (published ports), host (the host's services). Without a host block the host's INPUT is its own, and it has no columns. Exit 0 when every cell is what the policy says, 1 when one is not, 2 on bad input."),
      async (a) => {
        code = await matrixCommand(io, a, false);
      },
    )
    .command(
      "verify <policy>",
      "the rules loaded in this kernel held against the policy: says nothing and exits 0 when they do what it says; lists every cell another tool or a hand-made rule opened or closed (exit 1), the cells of one row and family that changed by the same paths on one line with their count. For cron",
      (y) =>
        factsOptions(versionOption(policyArg(y)))
          .option("json", { describe: 'print {"dockwall": 1, "command": "verify", rows, columns, cells, findings} with only the cells that are not what the policy says, or that it cannot tell, and what else it found (FORWARD\'s policy ACCEPT where the host forwards, Docker\'s DNAT rules out of step, on an nftables host the tables dockwall writes not as the policy compiles them)', type: "boolean", default: false })
          .example("$0 verify /etc/dockwall/host.dw --docker", "from cron: mail only when something is wrong")
          .epilog("A cell whose verdict the evaluator cannot tell (a match it does not understand, such as -m recent) is listed as such, and makes the exit 1 too: verify says the kernel does what the policy says only when it can show it."),
      async (a) => {
        code = await matrixCommand(io, { ...a, live: true }, true);
      },
    )
    .command(
      "confirm",
      "keep the rules of an 'apply --confirm' that waits for confirmation",
      (y) =>
        y
          .option("token", { describe: "keep them only if the apply that waits is this one (the token apply --no-wait printed); exit 2, saying how that apply ended, otherwise", type: "string", requiresArg: true })
          .option("json", { describe: 'print {"dockwall": 1, "command": "confirm", "ok", "message"} on standard output', type: "boolean", default: false }),
      async (a) => {
        const { runConfirm } = await import("./apply/command.js");
        code = await saying(io, "confirm", a.json, (say) => runConfirm(io.system(), say, a.token));
      },
    )
    .command(
      "rollback",
      "roll back the last apply: the policy applied before it, compiled again with Docker's facts as they are now (without one, the rules from before it, Docker's chains aside)",
      (y) =>
        y
          .option("after", { describe: "wait SECONDS first, and roll back only if the apply was not confirmed by then (apply --confirm starts this)", type: "number", requiresArg: true })
          .option("token", { describe: "the apply to roll back (with --after)", type: "string", requiresArg: true, hidden: false })
          .option("json", { describe: 'print {"dockwall": 1, "command": "rollback", "ok", "message"} on standard output', type: "boolean", default: false }),
      async (a) => {
        const { runRollback } = await import("./apply/command.js");
        code = await saying(io, "rollback", a.json, (say) => runRollback(io.system(), say, factsNow(io), { after: a.after, token: a.token }));
      },
    )
    .command(
      "ferm-keep <domain> [chains..]",
      "print, in ferm's syntax, what a ferm reload must keep of other tools (fail2ban, CrowdSec…): their chains (@preserve) and their jumps from the built-in chains listed; the ferm.conf dockwall writes runs it",
      (y) =>
        y
          .positional("domain", { describe: "ferm's domain: ip (IPv4) or ip6 (IPv6); read with iptables-legacy-save / ip6tables-legacy-save where installed (as ferm does), else iptables-save / ip6tables-save", type: "string", demandOption: true })
          .positional("chains", { describe: "TABLE:[CHAIN,…]: a table the ferm.conf writes, and the built-in chains it writes there; a table not named is kept whole", type: "string", array: true })
          .option("hosts-input", { describe: "INPUT is the host's (a policy without a host block): keep its policy and rules too, dockwall's own rules aside (what a ferm.conf of an earlier dockwall asks for: dockwall's jumps then come after them)", type: "boolean", default: false })
          .option("hosts-input-policy", { describe: "the same, but print only INPUT's policy (its rules are checked): the ferm.conf includes them after its own jumps with --hosts-input-rules", type: "boolean", default: false })
          .option("hosts-input-rules", { describe: "print only INPUT's rules, the host's (what the ferm.conf includes after dockwall's jumps there, which come first)", type: "boolean", default: false })
          .check((a) => {
            if ([a["hosts-input"], a["hosts-input-policy"], a["hosts-input-rules"]].filter(Boolean).length > 1) throw new Error("--hosts-input, --hosts-input-policy and --hosts-input-rules: one at most");
            return true;
          })
          .example("$0 ferm-keep ip filter:INPUT,FORWARD,OUTPUT nat:PREROUTING,INPUT,OUTPUT,POSTROUTING", "what ferm.conf's @include runs for domain ip: fail2ban's chains and jumps, say")
          .epilog("Exit 2, printing which rule, when a rule cannot be written in ferm's syntax exactly: ferm then stops and the rules in place stay. Exit 0 with nothing printed when the tables cannot be read: ferm then loads without keeping them."),
      async (a) => {
        const { runFermKeep } = await import("./apply/command.js");
        code = runFermKeep(io.system(), io, a.domain, a.chains ?? [], { hostsInput: a["hosts-input-rules"] ? "rules" : a["hosts-input-policy"] ? "policy" : a["hosts-input"] });
      },
    )
    .command(
      "facts",
      "print the daemon's facts (networks, running containers, version) as JSON, for --facts",
      (y) =>
        y
          .option("output", { alias: "o", describe: "write to FILE instead of standard output", type: "string", requiresArg: true })
          .example("$0 facts > host.json", "save this host's facts")
          .example("$0 compile web.dw --facts host.json", "compile for that host anywhere"),
      async (a) => {
        code = await factsCommand(io, a.output);
      },
    )
    .command(
      "init",
      "print a starter policy for this host: every published port stays as reachable as it is now",
      (y) =>
        factsOptions(y)
          .example("$0 init --docker > /etc/dockwall/host.dw", "start from what runs here")
          .check((a) => {
            if (!a.docker && a.facts === undefined) throw new UsageError("init needs Docker's facts: --docker (ask the daemon) or --facts FILE");
            return true;
          }),
      async (a) => {
        code = await initCommand(io, a);
      },
    )
    .demandCommand(1, `name a command: ${COMMANDS.slice(0, -1).join(", ")} or ${COMMANDS.at(-1)}`)
    .strict()
    .version(VERSION)
    .alias("h", "help")
    .alias("V", "version")
    .epilog(EPILOG)
    .wrap(Math.min(100, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      // A command's own failure goes on as it is; yargs' complaints about the command line in dockwall's words.
      if (err && err.name !== "YError") throw err;
      throw new UsageError(usageWords(msg ?? err?.message ?? "", argv));
    });

  // yargs lays out the help of each command it runs (15-30 ms for explain or compile, most of it
  // measuring and wrapping text), to have it at hand should it print it later: dockwall prints
  // help only for --help, which yargs lays out itself when asked. Not made, then.
  const usage = (cli as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods?.().getUsageInstance?.();
  if (typeof usage?.cacheHelpMessage === "function") usage.cacheHelpMessage = () => {};
  try {
    let printed = "";
    await cli.parseAsync(argv, {}, (_err, _args, output) => {
      printed = output;
    });
    if (printed) {
      // --help / --version: to stdout.
      io.stdout(printed.endsWith("\n") ? printed : printed + "\n");
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`dockwall: ${e.message}\nRun 'dockwall --help' for usage.\n`);
      return EXIT.error;
    }
    io.stderr(`dockwall: ${(e as Error).message}\n`);
    return EXIT.error;
  }
  return code;
}

class UsageError extends Error {}

/** The policy compiled (no text rendered) with Docker's facts, its diagnostics printed: what diff and apply start from. */
async function compileRules(io: Io, a: FactsArgs & { policy: string; "docker-version"?: string }, dockerVersion: string | undefined, format?: "nft" | "analysis"): Promise<{ src: Loaded; r: CompileResult; facts?: Facts } | number> {
  const src = load(io, a.policy);
  if (typeof src === "number") return src;
  const facts = await loadFacts(io, a);
  if (typeof facts === "number") return facts;
  // nft: the file itself is loaded (rendered); iptables: rule sets, compared with what is loaded.
  const r = await compile(src.text, { file: src.file, dockerVersion, dockerVersionOption: fromAuto(a["docker-version"], dockerVersion), facts, ...(format === "nft" ? { format } : { noRender: true, analysis: format === "analysis" }) });
  if (r.diagnostics.length) io.stderr(colour(io, formatDiagnostics(r.diagnostics, src.file, src.text)));
  return { src, r, facts };
}

/** Where an apply's facts came from, as a rollback to its policy reads them again. */
function factsSource(a: FactsArgs, facts: Facts | undefined): FactsSource {
  if (a.docker) return { from: "docker" };
  if (a.facts === undefined || !facts) return { from: "none" };
  // Standard input cannot be read again: the facts as given.
  if (a.facts === "-" || a.facts === "") return { from: "given", raw: facts.raw, source: facts.source };
  return { from: "file", path: resolve(a.facts) };
}

/** Docker's facts at the time of a rollback, read where the apply being rolled back to read them. */
function factsNow(io: Io): FactsNow {
  return {
    facts: async (from) => {
      if (from.from === "docker") return io.dockerFacts();
      if (from.from === "given") return { raw: from.raw, source: from.source };
      if (from.from === "none") return undefined;
      const { parseFactsText } = await import("./facts/read.js");
      let text;
      try {
        text = io.readFile(from.path);
      } catch (e) {
        throw new Error(`cannot read ${from.path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
      }
      const raw = parseFactsText(text);
      if (typeof raw === "string") throw new Error(`${from.path}: ${raw}`);
      return { raw, source: from.path };
    },
    dockerVersion: () => io.dockerVersion(),
  };
}

const COMMANDS = ["compile", "diff", "check", "apply", "confirm", "rollback", "watch", "ferm-keep", "facts", "init"];

/** yargs' messages about the command line ("Not enough non-option arguments: got 0, need at least 1"), said as dockwall says things. */
function usageWords(msg: string, argv: string[]): string {
  const command = argv.find((x) => !x.startsWith("-"));
  let m: RegExpExecArray | null;
  if (/^Not enough non-option arguments/.test(msg) && command === "ferm-keep") return `ferm-keep needs ferm's domain: dockwall ferm-keep ip|ip6 [TABLE:[CHAIN,…] …]`;
  if (/^Not enough non-option arguments/.test(msg) && command) return `${command} needs the policy: dockwall ${command} POLICY (a .dw file, or - for standard input)`;
  if ((m = /^Unknown arguments?: (.*)$/.exec(msg))) {
    const first = m[1]!.split(", ")[0]!;
    if (argv.includes(`--${first}`) || argv.includes(`-${first}`) || argv.some((x) => x.startsWith(`--${first}=`))) return `unknown option ${first.length === 1 ? "-" : "--"}${first}`;
    if (first === command) return `unknown command '${first}'; the commands are ${COMMANDS.slice(0, -1).join(", ")} and ${COMMANDS.at(-1)}`;
    return ["confirm", "rollback", "facts", "init"].includes(command ?? "") ? `${command} takes no file or other word; '${first}' is unexpected` : `${command} takes one policy; '${first}' is one too many`;
  }
  if ((m = /^Invalid values:\s*Argument: (\S+), Given: "([^"]*)", Choices: (.*)$/s.exec(msg))) {
    const choices = m[3]!.split(", ").map((c) => c.replace(/^"|"$/g, ""));
    return `--${m[1]} takes ${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}, not '${m[2]}'`;
  }
  if ((m = /^Not enough arguments following: (\S+)$/.exec(msg))) return `${m[1]!.length === 1 ? "-" : "--"}${m[1]} needs a value`;
  if ((m = /^Arguments (\S+) and (\S+) are mutually exclusive$/.exec(msg))) {
    return m[1] === "docker" && m[2] === "facts" ? `--docker and --facts cannot go together: take Docker's facts from the daemon or from a file` : `--${m[1]} and --${m[2]} cannot go together`;
  }
  return msg;
}

/**
 * Runs a command whose messages are lines `say` writes to stderr; with --json, also prints them
 * as {"dockwall", "command", "ok", "message"} on stdout (confirm, rollback).
 */
async function saying(io: Io, command: string, json: boolean, run: (say: (s: string) => void) => Promise<number>): Promise<number> {
  const said: string[] = [];
  const code = await run((s) => {
    said.push(s);
    io.stderr(`dockwall: ${s}\n`);
  });
  if (json) io.stdout(JSON.stringify({ dockwall: JSON_VERSION, command, ok: code === EXIT.ok, message: said.join("\n") }, null, 2) + "\n");
  return code;
}

type ApplyArgs = FactsArgs & { policy: string; confirm?: number; force: boolean; wait: boolean; check: boolean; json: boolean; "docker-version"?: string; format: "iptables" | "nft" };

async function applyCommand(io: Io, a: ApplyArgs): Promise<number> {
  if (!a.json) return applyRun(io, a);
  // --json: one object on stdout, whatever happens; what stderr says of a refusal before the apply proper is its message.
  const { emptyReport } = await import("./apply/command.js");
  const report = emptyReport();
  const said: string[] = [];
  const tee: Io = { ...io, stderr: (s: string) => (said.push(s), io.stderr(s)) };
  const got: { diagnostics?: ReturnType<typeof diagnosticsJson> } = {};
  const code = await applyRun(tee, a, report, got);
  if (code === EXIT.error && !report.refused) report.refused = { reason: got.diagnostics?.some((d) => d.severity === "error") ? "policy" : "input", message: said.join("").replace(/\x1b\[[0-9;]*m/g, "").trim() };
  io.stdout(
    JSON.stringify(
      {
        dockwall: JSON_VERSION,
        command: "apply",
        policy: a.policy === "-" || a.policy === "" ? "<stdin>" : a.policy,
        ok: code !== EXIT.error,
        check: a.check,
        changed: report.changed,
        families: report.families,
        ...(report.nft ? { nft: report.nft } : {}),
        reachability: (await import("./analysis/reach.js")).reachabilityJson(report.reachability),
        refused: report.refused,
        pending: report.pending,
        outcome: report.outcome,
        kept: report.kept,
        diagnostics: got.diagnostics ?? [],
      },
      null,
      2,
    ) + "\n",
  );
  return code;
}

async function applyRun(io: Io, a: ApplyArgs, report?: import("./apply/command.js").ApplyReport, got: { diagnostics?: ReturnType<typeof diagnosticsJson> } = {}): Promise<number> {
  if (a.confirm !== undefined && !(Number.isInteger(a.confirm) && a.confirm > 0)) {
    const why = Number.isInteger(a.confirm) ? "1 or more (without --confirm the rules stay at once)" : "a whole number";
    io.stderr(`dockwall: --confirm takes the seconds to wait for 'dockwall confirm', ${why}, not '${a.confirm}'\n`);
    return EXIT.error;
  }
  if (!a.wait && a.confirm === undefined) {
    io.stderr(`dockwall: --no-wait goes with --confirm SECONDS (without --confirm, apply never waits)\n`);
    return EXIT.error;
  }
  if (a.check && a.confirm !== undefined) {
    io.stderr(`dockwall: --check loads nothing, so there is nothing for --confirm to wait for: give one of them\n`);
    return EXIT.error;
  }
  const dockerVersion = await resolveDockerVersion(io, a["docker-version"]);
  if (typeof dockerVersion === "number") return dockerVersion;
  // What is loaded now is read (two other processes) while the policy compiles here.
  const { doneApplying, runApply, startSaves } = await import("./apply/command.js");
  const system = io.system();
  const saves = startSaves(system);
  const nft = a.format === "nft";
  const compiled = await compileRules(io, a, dockerVersion, nft ? "nft" : undefined);
  if (typeof compiled === "number") return compiled;
  const { src, r, facts } = compiled;
  got.diagnostics = diagnosticsJson(r.diagnostics, src.file);
  if (!r.ok) {
    const n = r.diagnostics.filter((d) => d.severity === "error").length;
    io.stderr(`dockwall: ${errorCount(n, r.omitted)}; nothing was changed\n`);
    return EXIT.error;
  }
  const record = { file: src.file, path: policyPath(io, a.policy), text: src.text, facts: factsSource(a, facts), dockerVersion: a["docker-version"], applied: system.now() };
  const opts = { confirm: a.confirm, noWait: !a.wait, check: a.check, force: a.force, policyName: src.file, saves, record, factsNow: factsNow(io), report };
  let result;
  try {
    result = nft ? await (await import("./apply/nftapply.js")).runApplyNft(system, io, r, opts) : await runApply(system, io, r, opts);
  } finally {
    // (An apply that failed between its load and what follows: a watcher need not wait for it.)
    doneApplying(system);
  }
  if (typeof result === "number") return result;
  got.diagnostics = diagnosticsJson([...r.diagnostics, result], src.file);
  io.stderr(colour(io, formatDiagnostics([result], src.file, src.text)));
  io.stderr(`dockwall: ${a.check ? "would not apply" : "not applied"}: the lockout guard refused (nothing was changed)\n`);
  return EXIT.error;
}

async function watchCommand(io: Io, a: { policy: string; verbose: boolean; debounce: number; recheck: number; "save-v4"?: string; "save-v6"?: string; "save-ferm"?: string; format: "iptables" | "nft"; "save-nft"?: string }): Promise<number> {
  const nft = a.format === "nft";
  if (nft && (a["save-v4"] || a["save-v6"] || a["save-ferm"])) {
    io.stderr(`dockwall: --save-v4, --save-v6 and --save-ferm keep iptables rules; with -f nft, --save-nft FILE keeps the nft file for boot\n`);
    return EXIT.error;
  }
  if (!nft && a["save-nft"]) {
    io.stderr(`dockwall: --save-nft goes with -f nft (the iptables rules are kept with --save-v4, --save-v6 or --save-ferm)\n`);
    return EXIT.error;
  }
  if (a.policy === "" || a.policy === "-") {
    io.stderr(`dockwall: watch reads the policy again on SIGHUP: give it as a file, not standard input\n`);
    return EXIT.error;
  }
  if (!(Number.isFinite(a.debounce) && a.debounce >= 0)) {
    io.stderr(`dockwall: --debounce takes milliseconds, not '${a.debounce}'\n`);
    return EXIT.error;
  }
  if (!(Number.isFinite(a.recheck) && a.recheck >= 0)) {
    io.stderr(`dockwall: --recheck takes seconds (0: no full checks), not '${a.recheck}'\n`);
    return EXIT.error;
  }
  const src = load(io, a.policy);
  if (typeof src === "number") return src;
  // A policy with errors is never applied: checked before the daemon is asked anything.
  const { NO_FACTS, Watcher } = await import("./watch/watcher.js");
  const { NftSession, SESSION_ENV } = await import("./live/nftsession.js");
  const { MonitorParser } = await import("./watch/monitor.js");
  const { bootFacts, bootSave } = await import("./watch/boot.js");
  // (-f nft: rendered too, where its own refusals are.)
  const checked = await compile(src.text, nft ? { format: "nft", file: src.file, facts: NO_FACTS } : { checkOnly: true, file: src.file, facts: NO_FACTS });
  const errors = checked.diagnostics.filter((d) => d.severity === "error");
  if (errors.length) {
    io.stderr(colour(io, formatDiagnostics(errors, src.file, src.text)));
    io.stderr(`dockwall: ${errors.length} error${errors.length === 1 ? "" : "s"}; not watching, nothing was changed\n`);
    return EXIT.error;
  }
  const nftTables = nft ? (await import("./apply/nft.js")).tablesOfFile(checked.output!) : undefined;
  const engine = io.dockerEngine();
  try {
    await engine.facts();
  } catch (e) {
    const why = (e as { why?: string }).why ?? (e as Error).message;
    if (/permission denied/.test(why)) {
      io.stderr(`dockwall: ${(e as Error).message}\n`);
      engine.close();
      return EXIT.error;
    }
    // Not there yet (at boot, dockerd may start after dockwall): the watcher waits for it.
  }
  const { compile: compileNow } = await import("./compile.js");
  const { readLoaded, pendingApply, applyingNow, readJson } = await import("./apply/command.js");
  const { announceWatch, endWatch, policyHash } = await import("./apply/watching.js");
  const { parseIpAddr, sshPacket, sshSessions } = await import("./apply/guard.js");
  const system = io.system();
  const log = (line: string) => io.stderr(`${line}\n`);
  // The SSH sessions open now, for the lockout guard of a reload (SIGHUP).
  const sessions = () => {
    let listening: string, established: string, addrs;
    try {
      listening = system.run("ss", ["-Htlnp"]);
      established = system.run("ss", ["-Htn", "state", "established"]);
      addrs = parseIpAddr(system.run("ip", ["-o", "addr", "show"]));
    } catch (e) {
      return (e as Error).message.split("\n")[0]!;
    }
    const out = [];
    for (const s of sshSessions(listening, established)) {
      const pk = sshPacket(s, addrs);
      if (typeof pk === "string") return pk;
      out.push(pk);
    }
    return out;
  };
  const tools = { 4: { save: "iptables-save", restore: "iptables-restore" }, 6: { save: "ip6tables-save", restore: "ip6tables-restore" } };
  const said: Record<4 | 6, string | undefined> = { 4: undefined, 6: undefined };
  /** Since when nft monitor has followed the kernel without a break (watch -f nft trusts what it loaded meanwhile). */
  let monitorSince: number | undefined;
  // -f nft: deltas go through one nft -i (live/nftsession.ts).
  const interactive = system.interactive;
  const nftSession =
    nft && interactive
      ? new NftSession({
          start: (onErr, onExit) => interactive("nft", ["-i"], onErr, onExit, SESSION_ENV),
          timer: (ms, f) => {
            const t = setTimeout(f, ms);
            return { cancel: () => clearTimeout(t) };
          },
        })
      : undefined;
  let reading: ReturnType<typeof readLoaded> | undefined;
  // What apply and rollback read of this watcher (watch.json): made before the watcher, whose `kept` updates it.
  const me = { pid: system.pid, policy: policyPath(io, a.policy)!, started: system.now(), kept: policyHash(src.text) };
  const watcher = new Watcher(
    {
      policyName: src.file,
      readPolicy: () => io.readFile(a.policy),
      facts: (signal) => engine.facts(signal),
      changedFacts: engine.changedFacts,
      forget: (id) => engine.forget(id),
      connected: engine.connected,
      notYet: engine.notYet,
      events: (onEvent, onOpen) => engine.events(onEvent, onOpen),
      // The backend that holds each family's rules (readLoaded), read with them; a conflict is said each time it changes.
      // A reconcile asks for IPv4 then IPv6 at once: both come from one read of every backend.
      save: async (f) => {
        if (f === 4 || !reading) reading = readLoaded(system);
        const l = (await reading)[f];
        if ("error" in l) throw l.error;
        tools[f] = l;
        if (l.conflict !== said[f]) {
          if (l.conflict) log(`error: ${l.conflict}`);
          said[f] = l.conflict;
        }
        return l.text;
      },
      restore: (f, text, noflush) => void system.run(tools[f].restore, noflush ? ["--noflush"] : [], text),
      ...(nft
        ? {
            nft: {
              list: async (tables: string[]) => {
                const listed = await Promise.all(
                  tables.map((t) =>
                    system.runAsync("nft", ["-a", "list", "table", ...t.split(" ")]).catch((e: unknown) => {
                      // A table not made yet: everything in it is new.
                      if (/No such file or directory|does not exist/.test((e as Error).message)) return "";
                      throw e;
                    }),
                  ),
                );
                return listed.join("");
              },
              load: (text: string, echo?: boolean) => system.run("nft", echo ? ["--echo", "--handle", "-f", "-"] : ["-f", "-"], text),
              loadDelta: nftSession ? (text: string) => nftSession.run(text) : undefined,
              // `TABLE/CHAIN` keys (live/nftdiff.ts): `inet dockwall/forward`.
              listChains: async (chains: string[]) => (await Promise.all(chains.map((k) => system.runAsync("nft", ["-a", "list", "chain", ...k.slice(0, k.indexOf("/")).split(" "), k.slice(k.indexOf("/") + 1)])))).join(""),
              watchedSince: () => monitorSince,
              persist: a["save-nft"] ? (file: string) => io.writeFile(a["save-nft"]!, file) : undefined,
            },
          }
        : {}),
      log,
      sleep: system.sleep,
      verbose: a.verbose,
      debounceMs: a.debounce,
      pending: () => pendingApply(system),
      applying: () => applyingNow(system),
      applied: () => readJson<{ text: string; format?: "nft" }>(system, "policy.json"),
      sessions,
      // nf_tables hosts say when the tables change: nft monitor (xtables-monitor where nft is not installed), a line at a time.
      kernelEvents: system.follow
        ? (onChange) => {
            // -f nft: changes to the file's own tables matter, and only those.
            const parser = new MonitorParser(nftTables);
            const onLine = (line: string) => {
              const what = parser.feed(line);
              // The watcher's own loads come back as reports too: they change nothing to put back.
              if (what && !system.ranHere?.(parser.committedBy!)) onChange(what);
            };
            let current = system.follow!("stdbuf", ["-oL", "nft", "monitor"], onLine);
            let closed = false;
            monitorSince = performance.now();
            const done = current.done
              .catch((e: unknown) => {
                if (closed || !/ENOENT|not found|No such file/.test((e as Error).message)) throw e;
                // xtables-monitor does not report nftables' own tables: -f nft reads them each time.
                monitorSince = undefined;
                current = system.follow!("stdbuf", ["-oL", "xtables-monitor", "--event"], onLine);
                return current.done;
              })
              .finally(() => (monitorSince = undefined));
            return {
              done,
              close: () => {
                closed = true;
                current.close();
              },
            };
          }
        : undefined,
      // While dockerd cannot be asked, a container's link that changes on its bridges takes the per-container rules out (watch/links.ts).
      links: system.follow
        ? { follow: (onLine) => system.follow!("stdbuf", ["-oL", "ip", "-o", "monitor", "link"], onLine), list: () => system.runAsync("ip", ["-o", "link", "show"]) }
        : undefined,
      recheckMs: a.recheck * 1000,
      retryMs: 500,
      // What rollback holds against the policy it rolls back to: the policy this watcher keeps now.
      kept: (text) => {
        me.kept = policyHash(text);
        try {
          announceWatch(system, me);
        } catch (e) {
          log(`cannot note the policy this watcher keeps in ${system.stateDir} (${(e as Error).message}): 'dockwall rollback' refuses while it runs`);
        }
      },
      // The ruleset for boot, closed where it would be stale (watch/boot.ts): the policy compiled with no container running.
      persist: (text, facts) => {
        if (!a["save-v4"] && !a["save-v6"] && !a["save-ferm"]) return;
        const boot = compileNow(text, { noRender: true, file: src.file, facts: bootFacts(facts), factsErrors: "warn" });
        if (!boot.ok) throw new Error(`the policy does not compile without containers (${boot.diagnostics.find((d) => d.severity === "error")?.message})`);
        for (const f of [4, 6] as const) {
          const file = a[f === 4 ? "save-v4" : "save-v6"];
          if (file) io.writeFile(file, bootSave(system.run(tools[f].save, []), boot.generated!.rulesets[f]!, { ownsInput: boot.policy!.host !== undefined }));
        }
        if (a["save-ferm"]) {
          const r = compileNow(text, { format: "ferm", file: src.file, facts: bootFacts(facts), factsErrors: "warn" });
          if (r.ok) io.writeFile(a["save-ferm"], r.output!);
        }
      },
    },
    src.text,
  );
  io.onSignal("SIGHUP", () => watcher.reload());
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    io.onSignal(sig, () => {
      log(`${sig}: stopping; the rules in place stay`);
      watcher.stop();
    });
  }
  log(`watching dockerd for ${src.file}`);
  // apply finds this watcher here: it tells it to read the policy again, or says it keeps another one.
  try {
    announceWatch(system, me);
  } catch (e) {
    log(`cannot note this watcher in ${system.stateDir} (${(e as Error).message}): apply will not know of it`);
  }
  await watcher.run();
  nftSession?.close();
  endWatch(system, me.pid);
  engine.close();
  return EXIT.ok;
}

async function factsCommand(io: Io, output: string | undefined): Promise<number> {
  const facts = await loadFacts(io, { docker: true });
  if (typeof facts !== "object") return facts ?? EXIT.error;
  const text = JSON.stringify(facts.raw, null, 2) + "\n";
  if (!output) {
    io.stdout(text);
    return EXIT.ok;
  }
  try {
    io.writeFile(output, text);
  } catch (e) {
    io.stderr(`dockwall: cannot write ${output}: ${(e as Error).message}\n`);
    return EXIT.error;
  }
  return EXIT.ok;
}

async function initCommand(io: Io, a: FactsArgs): Promise<number> {
  const facts = await loadFacts(io, a);
  if (typeof facts !== "object") return facts ?? EXIT.error;
  const { starterPolicy } = await import("./facts/init.js");
  const r = starterPolicy(facts.raw, facts.source);
  if (!r.ok) {
    io.stderr(formatDiagnostics(r.diagnostics, facts.source, ""));
    return EXIT.error;
  }
  io.stdout(r.text);
  return EXIT.ok;
}

async function diffCommand(io: Io, a: FactsArgs & { policy: string; live?: string; live6?: string; json: boolean; all: boolean; "ignore-chain": string[]; color?: boolean; "docker-version"?: string; format: "iptables" | "nft" }): Promise<number> {
  const dockerVersion = await resolveDockerVersion(io, a["docker-version"]);
  if (typeof dockerVersion === "number") return dockerVersion;
  if (stdinTwice(io, a)) return EXIT.error;
  if (a.format === "nft") {
    if (a.live6 !== undefined) {
      io.stderr("dockwall: --live6 is an ip6tables-save dump; with -f nft, --live FILE is nft list ruleset output, both families\n");
      return EXIT.error;
    }
    const src = load(io, a.policy);
    if (typeof src === "number") return src;
    const facts = await loadFacts(io, a);
    if (typeof facts === "number") return facts;
    const r = await compile(src.text, { format: "nft", file: src.file, dockerVersion, dockerVersionOption: fromAuto(a["docker-version"], dockerVersion), facts });
    if (r.diagnostics.length) io.stderr(colour(io, formatDiagnostics(r.diagnostics, src.file, src.text)));
    if (!r.ok) return EXIT.error;
    const { runNftDiff } = await import("./live/command.js");
    const { nftReachabilityOf } = await import("./analysis/command.js");
    const { tablesOfFile } = await import("./apply/nft.js");
    const families = ([4, 6] as const).filter((f) => (r.generated!.rulesets[f]?.tables.length ?? 0) > 0);
    const reach = (before: string | undefined) => {
      let system: ReturnType<Io["system"]>;
      try {
        system = io.system();
      } catch (e) {
        return { changes: [], note: `who reaches what was not worked out: ${(e as Error).message}` };
      }
      return nftReachabilityOf((cmd, args, input) => system.run(cmd, args, input), r.policy!, r.output!, tablesOfFile(r.output!), families, { before, compiled: r.generated!.rulesets });
    };
    return runNftDiff(io, r.output!, { live: a.live, json: a.json, policyName: src.file, reach });
  }
  if (a.live6 !== undefined && a.live === undefined) {
    io.stderr("dockwall: --live6 gives only the IPv6 dump, and IPv4 would not be compared: give the IPv4 dump with --live FILE too, or neither option to compare with this host's live rules (iptables-save and ip6tables-save)\n");
    return EXIT.error;
  }
  const compiled = await compileRules(io, a, dockerVersion);
  if (typeof compiled === "number") return compiled;
  const { src, r } = compiled;
  if (!r.ok) return EXIT.error;
  const { runDiff } = await import("./live/command.js");
  return runDiff(io, r, { live: a.live, live6: a.live6, json: a.json, all: a.all, ignore: a["ignore-chain"], color: a.color ?? io.stdoutIsTTY, policyName: src.file, policyText: src.text });
}

/**
 * explain --live, matrix --live, verify: what this host's nftables tables beside iptables-nft's
 * need (analysis/command.ts readNftLive): the whole ruleset for the nftables evaluator; undefined
 * when there are none (the iptables rules are all); an exit code when they cannot be read or
 * judged (said).
 */
async function nftLive(io: Io, system: ReturnType<Io["system"]>, loaded: Record<4 | 6, { save: string; text: string } | { error: unknown }>, policy?: Policy, compiled?: Partial<Record<4 | 6, Ruleset>>) {
  const { readNftLive } = await import("./analysis/command.js");
  // iptables-legacy holding rules: not in nftables' listing.
  const legacyRules = ([4, 6] as const).some((f) => {
    const l = loaded[f];
    return !("error" in l) && /legacy/.test(l.save) && /^-A /m.test(l.text);
  });
  try {
    const got = readNftLive((cmd, args) => system.run(cmd, args), { legacyRules, policy, compiled });
    if (got && "refuse" in got) {
      io.stderr(`dockwall: ${got.refuse}\n`);
      return EXIT.error;
    }
    return got;
  } catch (e) {
    io.stderr(`dockwall: cannot read this host's nftables ruleset (nft -j list ruleset): ${(e as Error).message.split("\n")[0]}; the loaded rules are not judged without knowing them\n`);
    return EXIT.error;
  }
}

/**
 * verify on an nftables host: each table of the --format nft file (dockwall's, and with "iptables": false Docker's, which dockwall
 * writes) that is loaded here but not as the file has it, canonically (diff -f nft's comparison): a finding naming the chains and
 * maps that differ. Tables of the file not loaded at all are not judged here (the cells show what their absence does).
 */
async function nftDriftFindings(listing: string, file: string, loaded: import("./analysis/nfteval.js").NftRuleset, policyFile: string): Promise<import("./analysis/matrix.js").Finding[]> {
  const { diffNft } = await import("./live/nftdiff.js");
  const { tablesListed } = await import("./analysis/command.js");
  const out: import("./analysis/matrix.js").Finding[] = [];
  const tables = [...file.matchAll(/^table (\S+) (\S+) \{$/gm)].map((m) => `${m[1]} ${m[2]}`).filter((t) => loaded.tables.some((x) => `${x.family} ${x.name}` === t));
  // (As the ruleset walked was read: its listing, not another read of the tables.)
  const d = diffNft(tablesListed(listing, tables), file);
  for (const t of tables) {
    const lines = (n: number, what: string) => (n ? [`${n} line${n === 1 ? "" : "s"} ${what}`] : []);
    const parts = d.parts
      .filter((x) => x.table === t)
      .map((x) => (x.kind === "table" ? "its flags" : `${x.kind} ${x.name} (${x.status === "changed" ? [...lines(x.lines.filter((l) => l.kind === "added").length, "missing"), ...lines(x.lines.filter((l) => l.kind === "removed").length, "not the policy's")].join(", ") || "its header" : x.status === "removed" ? "not the policy's" : "missing"})`));
    if (!parts.length) continue;
    const [fam, name] = t.split(" ");
    out.push({
      family: fam === "ip6" ? 6 : 4,
      message: `${t}${name === "docker-bridges" ? " (Docker's, which dockwall writes with \"iptables\": false)" : ""} is not what the policy compiles to: ${parts.slice(0, 4).join(", ")}${parts.length > 4 ? ` and ${parts.length - 4} more` : ""}. 'dockwall diff ${policyFile} -f nft' shows the lines; 'dockwall apply ${policyFile} -f nft' puts the table back`,
    });
  }
  return out;
}

async function explainCommand(io: Io, a: FactsArgs & { args?: string[]; live: boolean; json: boolean; "docker-version"?: string }): Promise<number> {
  const { explainAll, looksLikePacket, parsePackets, renderExplain, hostNetwork, routeLocalnet, compiledRules } = await import("./analysis/command.js");
  const args = a.args ?? [];
  let policy: string | undefined;
  let rest = args;
  if (!a.live || (args.length > 0 && !looksLikePacket(args[0]!))) {
    policy = args[0];
    rest = args.slice(1);
  }
  if (policy === undefined && !a.live) {
    io.stderr("dockwall: explain needs the policy, then the packets: dockwall explain POLICY [--docker | --facts FILE] 'PACKET'... (or --live to walk the rules loaded here)\n");
    return EXIT.error;
  }
  if (policy !== undefined && looksLikePacket(policy)) {
    io.stderr(`dockwall: '${policy}' is a packet, but the policy comes first: dockwall explain POLICY 'PACKET'... (or --live to walk the rules loaded here without one)\n`);
    return EXIT.error;
  }
  if (rest.length === 0) {
    io.stderr(`dockwall: explain needs at least one packet after the policy, e.g. 'tcp 203.0.113.7 -> 198.51.100.1:8080 in eth0'\n`);
    return EXIT.error;
  }
  const packets = parsePackets(rest);
  if (typeof packets === "string") {
    io.stderr(packets);
    return EXIT.error;
  }
  const ctx: import("./analysis/explain.js").ExplainContext = { rulesets: {} };
  if (policy !== undefined) {
    const dockerVersion = await resolveDockerVersion(io, a["docker-version"]);
    if (typeof dockerVersion === "number") return dockerVersion;
    const compiled = await compileRules(io, { ...a, policy }, dockerVersion, "analysis");
    if (typeof compiled === "number") return compiled;
    const { src, r, facts } = compiled;
    if (!r.ok) return EXIT.error;
    const { asLoaded, dockersRules } = await import("./analysis/loaded.js");
    const p = r.policy!;
    Object.assign(ctx, { policy: p, file: src.file, text: src.text, release: p.docker.version?.value.text, compiled: compiledRules(r) });
    // Beside dockerd ("iptables": true), its own rules are walked too: as it writes them (compiled), or as loaded (--live).
    if (p.docker.iptables) ctx.docker = dockersRules(p);
    if (!a.live) {
      ctx.rulesets = asLoaded(p, compiledRules(r));
      // The suggestion is proven: the policy with it compiled with the same facts, and the packet walked again.
      const { compile: compileNow } = await import("./compile.js");
      ctx.recompile = (text, family) => {
        const again = compileNow(text, { file: src.file, noRender: true, dockerVersion, dockerVersionOption: fromAuto(a["docker-version"], dockerVersion), facts });
        return again.ok ? asLoaded(again.policy!, again.generated!.rulesets)[family] : undefined;
      };
    }
  }
  if (a.live) {
    const system = io.system();
    const { readLoaded } = await import("./apply/command.js");
    const { parseSave, toRuleset } = await import("./live/save.js");
    const loaded = await readLoaded(system);
    if (bothBackends(io, loaded)) return EXIT.error;
    for (const f of [4, 6] as const) {
      const l = loaded[f];
      if ("error" in l) {
        io.stderr(`dockwall: cannot read the IPv${f} rules loaded here: ${(l.error as Error).message}\n`);
        return EXIT.error;
      }
      ctx.rulesets[f] = toRuleset(parseSave(l.text), f);
    }
    await readIpsets(system, ctx.rulesets);
    // nftables tables beside iptables-nft's (dockwall's --format nft, Docker 29's, nftables.conf's): the whole ruleset, walked as nftables does.
    const nft = await nftLive(io, system, loaded, ctx.policy, ctx.compiled);
    if (typeof nft === "number") return nft;
    if (nft) ctx.nft = nft;
    try {
      const host = hostNetwork(system.run("ip", ["-j", "addr", "show"]), system.run("ip", ["-j", "-4", "route", "show", "table", "all"]), system.run("ip", ["-j", "-6", "route", "show", "table", "all"]));
      ctx.host = { ...host, localnet: routeLocalnet(io.readFile, host.interfaces) };
    } catch (e) {
      io.stderr(`dockwall: cannot read this host's addresses and routes (ip -j addr, ip -j route): ${(e as Error).message}\n`);
      return EXIT.error;
    }
  }
  // Rules read back or laid over Docker's are named by the compiled (or Docker's) rule they equal.
  const results = explainAll(ctx, packets, a.live || ctx.policy?.docker.iptables === true);
  if (typeof results === "string") {
    io.stderr(results);
    return EXIT.error;
  }
  io.stdout(renderExplain(results, a.json, ctx.file, ctx.text));
  return EXIT.ok;
}

/**
 * What the ipsets the loaded rules match hold (`ipset save`: Docker 28.0.0's of its bridges), read
 * where a rule matches one. Without it (no ipset command, a set of another type), those rules'
 * answers stay unknown, saying the set's members are not known.
 */
async function readIpsets(system: { run: (cmd: string, args: string[]) => string }, rulesets: Partial<Record<4 | 6, import("./ir/ruleset.js").Ruleset>>): Promise<void> {
  const { matchesIpsets, parseIpsetSave } = await import("./live/ipset.js");
  if (!matchesIpsets(rulesets[4]) && !matchesIpsets(rulesets[6])) return;
  let text: string;
  try {
    text = system.run("ipset", ["save"]);
  } catch {
    return;
  }
  const sets = parseIpsetSave(text);
  for (const f of [4, 6] as const) if (rulesets[f]) rulesets[f]!.ipsets = sets;
}

/** Cells a matrix works out at most: 860,000 (150 containers of the benchmarks' policy) take 2.7 s and 670 MB here, its JSON 120 MB; most are taken from an earlier walk (matrix.ts, sameWay). */
const MATRIX_MAX = 1_000_000;
/**
 * verify keeps only the cells that are not what the policy says: 82,000,000 (about 9,000,000 cells
 * walked: 2,000 containers of the benchmarks' policy, the estimate counts IPv6's pieces too) take
 * about 10 s here, in 250 MB.
 */
const VERIFY_MAX = 100_000_000;

/**
 * explain --live, matrix --live, verify: both iptables backends hold rules (iptables-nft and
 * iptables-legacy), and the kernel filters every packet through both. The evaluator walks one
 * rule set; what it would say is a guess, so it says nothing (a review found a legacy DROP unseen,
 * verify silent).
 */
function bothBackends(io: Io, loaded: Record<4 | 6, { conflict?: string } | { error: unknown }>): boolean {
  const said = ([4, 6] as const).map((f) => loaded[f]).flatMap((l) => ("conflict" in l && l.conflict ? [l.conflict] : []));
  if (!said.length) return false;
  io.stderr(`${said.map((c) => `dockwall: ${c}\n`).join("")}dockwall: the evaluator walks one backend's rules, and what it would say of the loaded rules would be a guess: it says nothing until one backend holds them all\n`);
  return true;
}

async function matrixCommand(io: Io, a: FactsArgs & { policy: string; live: boolean; family?: number; json: boolean; svg?: string; "docker-version"?: string }, verifying: boolean): Promise<number> {
  const dockerVersion = await resolveDockerVersion(io, a["docker-version"]);
  if (typeof dockerVersion === "number") return dockerVersion;
  const compiled = await compileRules(io, a, dockerVersion, "analysis");
  if (typeof compiled === "number") return compiled;
  const { src, r } = compiled;
  if (!r.ok) return EXIT.error;
  const p = r.policy!;
  const { buildMatrix, formatMatrix, formatMismatches } = await import("./analysis/matrix.js");
  const { asLoaded } = await import("./analysis/loaded.js");
  const ctx: import("./analysis/matrix.js").MatrixContext = { policy: p, rulesets: asLoaded(p, r.generated!.rulesets) };
  let nftRuleset: import("./analysis/nfteval.js").NftRuleset | undefined;
  let nftListing = "";
  /** An nftables host: the --format nft file the policy compiles to (its tables are held against those loaded). */
  let nftFile: string | undefined;
  /** live: what the policy would load (the kernel's rules are held against it). */
  let expectedRules: Partial<Record<4 | 6, import("./ir/ruleset.js").Ruleset>> | undefined;
  if (a.live) {
    const system = io.system();
    const { readLoaded } = await import("./apply/command.js");
    const { parseSave, toRuleset } = await import("./live/save.js");
    const { hostNetwork, interfaceAddresses, routeLocalnet } = await import("./analysis/command.js");
    const loaded = await readLoaded(system);
    if (bothBackends(io, loaded)) return EXIT.error;
    const nft = await nftLive(io, system, loaded);
    if (typeof nft === "number") return nft;
    if (nft) {
      const { nftMatrixWalk } = await import("./analysis/nfteval.js");
      // The classes of sources (and of source ports) are cut where the nftables rules look too; where they cannot all be read, no matrix.
      const walk = nftMatrixWalk(nft.ruleset);
      if ("gap" in walk) {
        io.stderr(`dockwall: cannot tell which sources, or which ports, this host's nftables rules treat alike (${walk.gap}): a matrix would be a guess, so there is none\n`);
        return EXIT.error;
      }
      ctx.nft = walk;
      nftRuleset = nft.ruleset;
      nftListing = nft.listing;
      // "iptables": false: Docker's tables are dockwall's to write, and what the containers' own traffic is meant to meet is
      // them as the policy compiles them, not as loaded (a review: a drop deleted from the loaded ones was taken for the intent,
      // and verify was silent while a container reached another network's container straight).
      const file = verifying || !p.docker.iptables ? await compile(src.text, { file: src.file, dockerVersion, dockerVersionOption: fromAuto(a["docker-version"], dockerVersion), facts: compiled.facts, format: "nft" }) : undefined;
      if (file?.ok && file.output !== undefined) nftFile = file.output;
      // (Not silently judged another way: without the file, neither what Docker's tables are meant to do nor drift can be told.)
      const why = file && !file.ok ? (file.diagnostics.find((d) => d.severity === "error")?.message ?? "it did not compile") : undefined;
      if (why !== undefined && !p.docker.iptables && nft.ruleset.tables.some((t) => t.name === "docker-bridges")) {
        io.stderr(`dockwall: this host holds Docker's nftables tables, which the policy's "iptables": false makes dockwall's to write, but the policy does not compile to them with --format nft (${why}): what they are meant to do cannot be told, so the loaded rules are not judged\n`);
        return EXIT.error;
      }
      if (why !== undefined && verifying) io.stderr(`dockwall: the policy does not compile with --format nft (${why}): the nftables tables loaded here are not compared with it\n`);
      if (!p.docker.iptables && nft.ruleset.tables.some((t) => t.name === "docker-bridges")) {
        const { nftScratch } = await import("./analysis/command.js");
        const { evaluateNft } = await import("./analysis/nfteval.js");
        const own = nftFile !== undefined ? nftScratch((cmd, args, input) => system.run(cmd, args, input), nftFile, "the compiled file") : undefined;
        if (typeof own === "string") {
          io.stderr(`dockwall: ${own}: what Docker's tables are meant to do cannot be told, so the loaded rules are not judged\n`);
          return EXIT.error;
        }
        const dockers = own ? { tables: own.tables.filter((t) => t.name === "docker-bridges" && (t.family === "ip" || t.family === "ip6")) } : undefined;
        // (Its tests of the source noted too: the matrix takes a container's cell from another's walk that answered them alike.)
        if (dockers?.tables.length) ctx.nft = { ...walk, docker: (pk, rec) => evaluateNft(dockers, pk, { replies: true, ...(rec ? { rec } : {}) }) };
      }
    }
    const expected = ctx.rulesets;
    expectedRules = expected;
    const { foreignRules } = await import("./analysis/loaded.js");
    ctx.rulesets = {};
    ctx.foreign = {};
    for (const f of [4, 6] as const) {
      const l = loaded[f];
      if ("error" in l) {
        io.stderr(`dockwall: cannot read the IPv${f} rules loaded here: ${(l.error as Error).message}\n`);
        return EXIT.error;
      }
      if (!r.generated!.rulesets[f]) continue;
      const saved = parseSave(l.text);
      ctx.rulesets[f] = toRuleset(saved, f);
      // (What nftables tables hold is walked whole, its own way.)
      if (!ctx.nft) ctx.foreign[f] = foreignRules(saved, expected[f]);
    }
    await readIpsets(system, ctx.rulesets);
    try {
      const addr = system.run("ip", ["-j", "addr", "show"]);
      const host = hostNetwork(addr, system.run("ip", ["-j", "-4", "route", "show", "table", "all"]), system.run("ip", ["-j", "-6", "route", "show", "table", "all"]));
      ctx.host = { ...host, localnet: routeLocalnet(io.readFile, host.interfaces) };
      ctx.hostAddress = interfaceAddresses(addr);
    } catch (e) {
      io.stderr(`dockwall: cannot read this host's addresses and routes (ip -j addr, ip -j route): ${(e as Error).message}\n`);
      return EXIT.error;
    }
  }
  const families = (a.family ? [a.family] : [4, 6]) as (4 | 6)[];
  // Each cell walks the rules once: a host with thousands of published ports and hundreds of source ranges is more than this matrix can walk in reasonable time yet.
  const { matrixCost } = await import("./analysis/matrix.js");
  const cost = matrixCost(ctx, families);
  const most = verifying ? VERIFY_MAX : MATRIX_MAX;
  if (cost > most) {
    io.stderr(`dockwall: the ${verifying ? "verify" : "matrix"} of ${src.file} would have about ${cost.toLocaleString("en")} cells (its published ports × the source classes its rules tell apart × interfaces × paths), more than ${most.toLocaleString("en")}: not attempted. Ask about single packets with 'dockwall explain'${verifying ? "" : " (dockwall verify lists only the cells not what the policy says, up to 100,000,000)"}, or narrow it with --family\n`);
    return EXIT.error;
  }
  // verify lists only the cells that are not what the policy says: the others are not kept.
  if (verifying) ctx.only = "mismatches";
  const m = buildMatrix(ctx, families);
  const bad = m.cells.filter((c) => c.mismatch).length;
  if (verifying) {
    // Unknown cells are not a kernel doing what the policy says: listed, and exit 1, as mismatches are.
    const unknown = m.cells.filter((c) => c.verdict === "unknown").length;
    // The host as a router, outside the cells: FORWARD's policy where the kernel forwards (iptables rules; nftables tables stand for it themselves).
    const { forwardPolicyFindings, routingFindings } = await import("./analysis/matrix.js");
    const { evaluate } = await import("./analysis/evaluate.js");
    const forwarding = (f: 4 | 6) => {
      try {
        return io.readFile(f === 4 ? "/proc/sys/net/ipv4/ip_forward" : "/proc/sys/net/ipv6/conf/all/forwarding").trim() === "1";
      } catch {
        return false;
      }
    };
    // Each pair of zones walked (a family the kernel forwards, with rules to walk); where there is none, FORWARD's policy itself.
    const routed = families.filter((f) => forwarding(f) && (ctx.nft || ctx.rulesets[f]));
    const walk = ctx.nft ? ctx.nft.walk : (pk: import("./analysis/evaluate.js").Packet) => evaluate(ctx.rulesets[pk.family]!, pk);
    const pairs = ctx.host ? routingFindings(p, walk, ctx.host, routed, src.file) : { findings: [], walked: 0 };
    const routing = pairs.walked > 0 || ctx.nft ? pairs.findings : forwardPolicyFindings(p, ctx.rulesets, { 4: routed.includes(4), 6: routed.includes(6) });
    // Docker's DNAT rules out of step (iptables off: dockwall's to keep): a stale one reaches whoever has the address now.
    const { foreignDnatFindings, socketGuardFindings, staleDnatFindings, staleNftDnatFindings } = await import("./analysis/matrix.js");
    const stale = nftRuleset ? staleNftDnatFindings(p, nftRuleset) : staleDnatFindings(p, r.generated!.rulesets, ctx.rulesets);
    // Another tool's (a hand's) DNAT to a container's address: a way to it that no cell walks.
    const led = !nftRuleset && expectedRules ? foreignDnatFindings(p, expectedRules, ctx.rulesets) : [];
    // dockwall's guard of dockerd's own sockets (userland-proxy off), which no cell shows gone: the handshake they complete reaches no container.
    const guards = nftRuleset ? [] : socketGuardFindings(p, r.generated!.rulesets, ctx.rulesets);
    // On an nftables host, dockwall's tables (and with "iptables": false Docker's, which it writes) as loaded against the file the
    // policy compiles to: any rule or element changed there is drift (a review: a drop deleted from Docker's tables and a flushed
    // chain let a container reach another network's port no cell covers, verify silent).
    const drift = nftRuleset && nftFile !== undefined ? await nftDriftFindings(nftListing, nftFile, nftRuleset, src.file) : [];
    const findings = [...guards, ...stale, ...led, ...drift, ...routing];
    if (a.json) io.stdout(JSON.stringify({ dockwall: JSON_VERSION, command: "verify", ...m, cells: m.cells.filter((c) => c.mismatch || c.verdict === "unknown"), findings }, null, 2) + "\n");
    // (Each kind under a heading of its own: the count above is of cells, and a review read the lines below as cells.)
    else {
      const heading = (what: string, n: number) => (n ? `${what}, ${n} finding${n === 1 ? "" : "s"}:\n` : "");
      io.stdout(formatMismatches(m).replaceAll("POLICY", src.file) + heading("dockwall's guard of dockerd's own sockets", guards.length) + guards.map((f) => `${f.message}\n`).join("") + heading("Docker's rules out of step with Docker", stale.length) + stale.map((f) => `${f.message}\n`).join("") + heading("rules the policy does not load that lead to containers", led.length) + led.map((f) => `${f.message.replaceAll("POLICY", src.file)}\n`).join("") + heading("nftables tables not what the policy compiles to", drift.length) + drift.map((f) => `${f.message}\n`).join("") + heading("the host as a router", routing.length) + routing.map((f) => `${f.message}\n`).join(""));
    }
    return bad || unknown || findings.length ? EXIT.differs : EXIT.ok;
  }
  if (a.svg !== undefined) {
    const { renderSvg } = await import("./analysis/command.js");
    try {
      io.writeFile(a.svg, renderSvg(m, `dockwall matrix ${src.file}${a.live ? " (the rules loaded here)" : ""}`));
    } catch (e) {
      io.stderr(`dockwall: cannot write ${a.svg}: ${(e as Error).message}\n`);
      return EXIT.error;
    }
  }
  io.stdout(a.json ? JSON.stringify({ dockwall: JSON_VERSION, command: "matrix", ...m }, null, 2) + "\n" : formatMatrix(m));
  return bad ? EXIT.differs : EXIT.ok;
}

/** Standard input can be read once: at most one of the policy, --live and --live6 may be `-`. */
function stdinTwice(io: Io, a: { policy: string; live?: string; live6?: string }): boolean {
  const isStdin = (v: string | undefined) => v === "-" || v === "";
  const named = [isStdin(a.policy) && "the policy", isStdin(a.live) && "--live", isStdin(a.live6) && "--live6"].filter((x): x is string => Boolean(x));
  if (named.length < 2) return false;
  io.stderr(
    named.length === 2
      ? `dockwall: standard input can be read only once, but ${named[0]} and ${named[1]} both name it (-): give one of them as a file\n`
      : `dockwall: standard input can be read only once, but ${named[0]}, ${named[1]} and ${named[2]} all name it (-): give all but one of them as files\n`,
  );
  return true;
}
