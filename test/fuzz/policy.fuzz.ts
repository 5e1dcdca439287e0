// Differential fuzzer: random POLICIES, compiled and loaded, every sendable matrix cell against a
// real packet. Each round draws a random valid policy from the language (docs/language.md): zones
// (interfaces, a wildcard such as eth+, source ranges IPv4/IPv6, from-only zones), networks
// (several, some dual-stack, internal, icc off), containers on one or several networks (an IPv6
// address too on a dual-stack network), publishes (0.0.0.0, ::, 127.0.0.1, a host address, tcp/udp,
// ranges), allows with and without `from`, forward statements, a host block, and the docker block
// (versions 20.10 … 29.7 with 28.0.0, userland-proxy, iptables, ip6tables, published open/closed).
// A policy that does not compile is drawn again (its error codes counted); an exception of the
// compiler is a finding. The policy's world is built in namespaces (test/lab/policylab.ts), its
// rules loaded, and its matrix probed for real (probeMatrix), in one of the modes:
//   iptables  the policy as drawn, loaded as a user loads it (loadPolicy, as matrix-live does);
//   nft       Docker 29.7 with `iptables off`, the --format nft file loaded, each cell walked by the
//             nftables evaluator over `nft -j list ruleset` (as nft-live-analysis does).
//   nft-coexist  Docker 29.7 with its nftables firewall backend and `iptables on` (`firewall-backend
//             nftables;`): Docker's own tables (ip/ip6 docker-bridges, what the --format nft file
//             of the same networks and containers with `iptables off` holds, Docker 29.7's rule for
//             rule: test/parity/nft29-kernel.test.ts) loaded first, then dockwall's own --format nft
//             file on top (nft -f, as a user loads it: test/targets/nft-docker29.test.ts); each cell
//             walked by the nftables evaluator over the whole ruleset (as matrix --live does there:
//             the intent of the containers' and the host's own traffic from Docker's rules).
//   nft-beside-iptables  Docker's iptables backend (any version, `iptables on`, with Docker 29 now
//             and then `firewall-backend iptables;`) on an nftables host: the iptables output loaded
//             as in `iptables`, then dockwall's drop-only --format nft table on top. The matrix is
//             the iptables rules' (matrix --live refuses such a host: iptables-nft's xt rules and
//             an nftables table at once, counted as `matrixLiveRefused`); what matters most is (B):
//             every cell the policy closes is closed (the drops hold), and none it allows is closed
//             by the table. A policy --format nft refuses (a `forward` statement: DOCKER-USER's
//             ACCEPT) counts its codes as `nft:CODE`.
// Findings: (A) the kernel's open/closed is not the cell's verdict (or the verdict is unknown);
// (B) the cell's intent (what the policy says) is not what the kernel did. Disagreements are
// re-probed twice after 500 ms (probeMatrix), then the policy is built again from scratch and
// probed once more; what stays is minimized (statements, list items, docker options taken out
// while the same cell still disagrees the same way) and written down.
//
// Run (root; the lab builds network namespaces and never touches the root one):
//   DOCKWALL_FUZZ=1 FUZZ_MINUTES=10 FUZZ_SEED=1 npx vitest run --project fuzz test/fuzz/policy.fuzz.ts
// More: FUZZ_OUT=DIR (default a fresh dir under the system's tmp, printed), FUZZ_MODES=iptables,nft
// (default those two, alternating; nft-coexist and nft-beside-iptables when named),
// FUZZ_MIN_SECONDS (time for one minimization, default 120).
// Output: log.txt (every policy and what its cells did), findings.jsonl (every disagreement, tagged
// when a known artefact), minimized.jsonl, summary.json (counts, error codes of the redraws, tags).
//
// Known artefacts of the lab (tagged, not findings):
//   udp-host-nat        UDP to the host DNATed or SNATed to another of its own addresses: the lab's
//                       unconnected UDP socket answers from the address routing picks, which no
//                       conntrack entry maps back;
//   icmpv6-link-local   ICMPv6 ping from a link-local source (the lab cannot send it);
//   same-packet         two columns that send the same packet (a host-block port a container also
//                       publishes: `dockwall check` warns `host-port-published`), only one answer;
//   host-listener-127   a host listener that cannot bind beside a 127.0.0.1 publish of its port
//                       (its cells, or the whole world when the lab cannot start it);
//   host-listener-published  the host's service on a port a container publishes on one address only
//                       (0.0.0.0, a host address): the lab starts no listener for it on the others.
import { expect, it } from "vitest";
import { asLoaded } from "../../src/analysis/loaded.js";
import type { MatrixCell, MatrixContext } from "../../src/analysis/matrix.js";
import { nftMatrixWalk, parseNftJson } from "../../src/analysis/nfteval.js";
import { readNftLive } from "../../src/analysis/command.js";
import { compile, type CompileResult } from "../../src/compile.js";
import type { Policy } from "../../src/model/types.js";
import { describeKernel } from "../lab/kernel.js";
import { dockersOwn, loadPolicy, planPolicyLab, probeMatrix, startPolicyLab, type LabProbe, type PolicyLab, type PolicyLabPlan } from "../lab/policylab.js";
import { FuzzOut, fuzzSettings, fuzzTimeout, Rng, shrinkList, Tally, writeSummary } from "./common.js";

const ALL_MODES = ["iptables", "nft", "nft-coexist", "nft-beside-iptables"] as const;
type Mode = (typeof ALL_MODES)[number];
const MODES = (process.env.FUZZ_MODES ?? "iptables,nft").split(",") as Mode[];
for (const m of MODES) if (!ALL_MODES.includes(m)) throw new Error(`FUZZ_MODES: no mode '${m}' (${ALL_MODES.join(", ")})`);
/** The docker block's options that make the mode what it is: never taken out while minimizing. */
const PINNED: Record<Mode, RegExp | undefined> = {
  iptables: undefined,
  nft: undefined,
  "nft-coexist": /^(version|iptables|firewall-backend) /,
  "nft-beside-iptables": /^iptables /,
};
/** The nftables evaluator walks the cells (else the iptables rules the policy loads). */
const nftWalked = (m: Mode) => m === "nft" || m === "nft-coexist";
/** How a drawn policy is checked: beside Docker's nftables backend with `iptables on`, only --format nft is accepted (else the check refuses every one). */
const checkFormat = (m: Mode): { format?: "nft" } => (m === "nft-coexist" ? { format: "nft" } : {});
const MIN_SECONDS = Number(process.env.FUZZ_MIN_SECONDS ?? 120);

const rng = new Rng(1);
const { chance, int, pick, some, weighted } = rng;

// ---------------------------------------------------------------- policies ----
/** A policy as lists, so that minimizing can take items out and render it again. */
interface Pol {
  docker: string[];
  zones: { name: string; ifaces: string[]; from: string[] }[];
  networks: { name: string; opts: string[] }[];
  containers: { name: string; nets: string[]; publishes: string[] }[];
  allows: string[];
  forwards: string[];
  /** undefined: no host block. */
  host?: string[];
}

function render(p: Pol): string {
  const out = [`docker { ${p.docker.join(" ")} }`];
  for (const z of p.zones) out.push(`zone ${z.name} { ${z.ifaces.length ? `interface ${z.ifaces.join(", ")}; ` : ""}${z.from.length ? `from ${z.from.join(", ")}; ` : ""}}`);
  for (const n of p.networks) out.push(`network ${n.name} { ${n.opts.join(" ")} }`);
  for (const c of p.containers) out.push(`container ${c.name} { ${c.nets.map((n) => `network ${n};`).join(" ")}${c.publishes.length ? ` publish ${c.publishes.join(", ")};` : ""} }`);
  out.push(...p.allows, ...p.forwards);
  if (p.host) out.push(`host { ${p.host.join(" ")} }`);
  return out.join("\n") + "\n";
}

const VERSIONS = ["20.10", "23.0", "24.0", "25.0", "26.1", "27.5", "28.0.0", "28.3", "28.5", "29.0", "29.7"];
const HOST_PORTS = [22, 53, 80, 443, 2222, 5000, 5353, 8000, 8080, 8443, 9000, 9090];

function drawPolicy(mode: Mode): Pol {
  const docker: string[] = [];
  if (mode === "nft") docker.push("version 29.7;", "iptables off;");
  else if (mode === "nft-coexist") docker.push("version 29.7;", "iptables on;", "firewall-backend nftables;");
  else if (mode === "nft-beside-iptables") {
    const v = pick(VERSIONS);
    docker.push(`version ${v};`, "iptables on;");
    if (v.startsWith("29.") && chance(0.6)) docker.push("firewall-backend iptables;");
  } else docker.push(`version ${pick(VERSIONS)};`, `iptables ${chance(0.5) ? "on" : "off"};`);
  if (chance(0.6)) docker.push(`ip6tables ${chance(0.7) ? "on" : "off"};`);
  docker.push(`userland-proxy ${chance(0.5) ? "on" : "off"};`);
  if (chance(0.25)) docker.push(`published ${chance(0.5) ? "open" : "closed"};`);

  // Zones: interfaces eth0…eth3 (each in one zone at most), sometimes a wildcard, from ranges; a from-only zone.
  const ifs = ["eth0", "eth1", "eth2", "eth3"];
  const zones: Pol["zones"] = [];
  const nz = int(1, 3);
  let wildcard = false;
  for (let i = 0; i < nz; i++) {
    const name = pick(["wan", "lan", "dmz", "vpn", "mgmt"].filter((n) => !zones.some((z) => z.name === n)));
    const zi: string[] = [];
    if (!wildcard && i === nz - 1 && ifs.length === 4 && chance(0.15)) {
      zi.push("eth+");
      wildcard = true;
      ifs.length = 0;
    } else if (ifs.length) zi.push(...ifs.splice(0, chance(0.2) && ifs.length > 1 ? 2 : 1));
    const from: string[] = [];
    if (chance(0.45)) from.push(pick([`192.168.${10 + i}.0/24`, `192.168.${10 + i}.0/25`, `192.168.${10 + i}.10-192.168.${10 + i}.20`]));
    if (chance(0.3)) from.push(pick([`fd00:${10 + i}::/64`, `fd00:${10 + i}::/120`]));
    zones.push({ name, ifaces: zi, from });
  }
  if (chance(0.35)) zones.push({ name: "admin", ifaces: [], from: [pick(["203.0.113.7", "203.0.113.0/28", "198.51.100.0/24"]), ...(chance(0.3) ? ["2001:db8:7::/64"] : [])] });

  // Networks: the default bridge sometimes declared dual-stack; 1–3 more.
  const networks: Pol["networks"] = [];
  const dual = new Set<string>();
  const internal = new Set<string>();
  if (chance(0.3)) {
    networks.push({ name: "bridge", opts: ["bridge docker0;", "subnet 172.17.0.0/16;", "subnet fd00:17::/64;"] });
    dual.add("bridge");
  }
  const subnet4 = new Map<string, string>([["bridge", "172.17.0"]]);
  const subnet6 = new Map<string, string>([["bridge", "fd00:17:"]]);
  const nn = int(1, 3);
  for (let i = 0; i < nn; i++) {
    const name = `n${i + 1}`;
    const o = [`bridge br-${name};`, `subnet 172.${21 + i}.0.0/${chance(0.5) ? 16 : 24};`];
    subnet4.set(name, `172.${21 + i}.0`);
    if (chance(0.5)) {
      o.push(`subnet fd00:${21 + i}::/64;`);
      subnet6.set(name, `fd00:${21 + i}:`);
      dual.add(name);
    }
    if (chance(0.15)) {
      o.push("internal;");
      internal.add(name);
    }
    if (chance(0.2)) o.push("icc off;");
    networks.push({ name, opts: o });
  }
  const netNames = ["bridge", ...networks.filter((n) => n.name !== "bridge").map((n) => n.name)];

  // Containers: on 1–2 networks, an IPv6 address too where the network is dual-stack; publishes.
  const containers: Pol["containers"] = [];
  const used = new Set<string>();
  const published: { c: string; port: string; proto: string }[] = [];
  const nc = int(1, 4);
  for (let i = 0; i < nc; i++) {
    const name = pick(["web", "api", "db", "dns", "cache", "proxy"].filter((n) => !containers.some((c) => c.name === n)));
    const on = some(netNames, chance(0.25) ? 2 : 1);
    const nets = on.map((n) => `${n} ${subnet4.get(n)}.${10 + i}${dual.has(n) ? `, ${subnet6.get(n)}:${(10 + i).toString(16)}` : ""}`);
    const publishes: string[] = [];
    if (!on.every((n) => internal.has(n))) {
      for (let k = int(0, 3); k > 0; k--) {
        const proto = chance(0.25) ? "udp" : "tcp";
        const range = chance(0.1);
        // (Now and then a port already published: a conflict that check refuses, and the policy is drawn again.)
        const hp = pick(HOST_PORTS.filter((p) => chance(0.05) || (!used.has(`${proto}/${p}`) && !(range && used.has(`${proto}/${p + 1}`)))));
        if (hp === undefined) continue;
        used.add(`${proto}/${hp}`);
        if (range) used.add(`${proto}/${hp + 1}`);
        const cp = pick([80, 443, 53, 9000, hp]);
        const addr = weighted<string>([[55, ""], [10, "0.0.0.0:"], [10, "[::]:"], [15, "127.0.0.1:"], [10, "10.200.0.1:"]]);
        publishes.push(`${addr}${range ? `${hp}-${hp + 1}:${cp}-${cp + 1}` : `${hp}:${cp}`}${proto === "udp" ? "/udp" : chance(0.2) ? "/tcp" : ""}`);
        if (addr !== "127.0.0.1:") published.push({ c: name, port: range ? `${hp}-${hp + 1}` : String(hp), proto });
      }
    }
    containers.push({ name, nets, publishes });
  }

  // Allows, with and without `from`; forwards; a host block.
  const zoneNames = zones.map((z) => z.name);
  const allows: string[] = [];
  // (Now and then one to a port nobody publishes: refused, drawn again.)
  if (containers.length && chance(0.08)) published.push({ c: pick(containers).name, port: String(pick(HOST_PORTS)), proto: "tcp" });
  for (const pub of some(published, int(Math.min(1, published.length), published.length))) {
    const who = chance(0.2) ? "any" : some(zoneNames, chance(0.2) ? 2 : 1).join(", ");
    const from = chance(0.25) ? ` from ${pick(["192.168.10.0/24", "203.0.113.0/24", "10.200.0.0/16", "fd00:10::/64", "192.168.11.0/25"])}` : "";
    allows.push(`allow ${who}${from} to ${pub.c}:${pub.port}${pub.proto === "udp" ? "/udp" : ""};`);
  }
  const forwards: string[] = [];
  const withIf = zones.filter((z) => z.ifaces.length && (chance(0.3) || !z.ifaces.includes("eth+")));
  if (withIf.length >= 2 && chance(0.35)) {
    const [a, b] = some(withIf, 2);
    forwards.push(`forward ${a!.name} to ${b!.name};`);
  }
  let host: string[] | undefined;
  if (chance(0.65)) {
    host = [];
    if (chance(0.15)) host.push("policy accept;");
    for (let k = int(1, 4); k > 0; k--) {
      const who = chance(0.2) ? "any" : pick(zoneNames);
      const r = rnd3();
      if (r === 0) host.push(`allow ${who} icmp;`);
      else host.push(`allow ${who} ${r === 1 ? "tcp" : "udp"} ${pick(r === 1 ? [22, 2222, 80, 8080, 9100] : [53, 161, 5353, 67])};`);
    }
    host = [...new Set(host)];
  }
  return { docker, zones, networks, containers, allows, forwards, host };
}
const rnd3 = () => weighted<number>([[25, 0], [55, 1], [20, 2]]);

// ---------------------------------------------------------------- one world ----
interface Disagreement {
  key: string;
  kind: "A" | "B";
  row: string;
  column: string;
  family: 4 | 6;
  path: string;
  probe: string;
  verdict: string;
  intent: string;
  kernel: "open" | "closed";
  why?: string;
  tag?: string;
}

const keyOf = (c: MatrixCell) => `${c.row} | ${c.column} | v${c.family} | ${c.path}`;

/** The nftables evaluator over what the lab's host holds now (as nft-live-analysis walks it). */
function nftWalk(lab: PolicyLab): NonNullable<MatrixContext["nft"]> {
  const w = nftMatrixWalk(parseNftJson(lab.host.run(["nft", "-j", "list", "ruleset"]).stdout));
  if ("gap" in w) throw new Error(`the ruleset's classes cannot be cut: ${w.gap}`);
  return w;
}

/** Which known artefact of the lab a disagreement is, if any. */
function artefact(plan: PolicyLabPlan, c: MatrixCell, pr: LabProbe, kernelOpen: boolean, sameAs: MatrixCell[]): string | undefined {
  const local = new Set(["127.0.0.1", "::1", ...plan.ifaces.flatMap((f) => [f.host4, f.host6]), ...plan.bridges.flatMap((b) => b.addrs.map((a) => a.split("/")[0]!))]);
  if (pr.family === 6 && pr.proto === "icmp" && /^fe80:/i.test(pr.src)) return "icmpv6-link-local";
  if (sameAs.some((o) => (o.verdict === "open") === kernelOpen || (o.intent === "allowed") === kernelOpen)) return "same-packet";
  // (The host's own UDP to an address of its own: what a neighbour sends to a published UDP port is DNATed to a container, not this.)
  if (pr.proto === "udp" && !kernelOpen && "host" in pr.from && local.has(pr.dst)) return "udp-host-nat";
  if (!kernelOpen && pr.port !== undefined && pr.proto !== "icmp" && !pr.dst.startsWith("127.") && plan.hostListeners.some((l) => l.bind === "127.0.0.1" && l.proto === pr.proto && l.port === pr.port)) return "host-listener-127";
  // (The same beside a publish on one address, 0.0.0.0 or a host address: the lab's listenHost starts nothing on a port that
  // docker-proxy's stand-in holds on any address, so the host's own service there answers on no other.)
  const bound = (l: { bind: string }) => l.bind === pr.dst || (l.bind === "0.0.0.0" && pr.family === 4);
  if (!kernelOpen && c.column.startsWith("host:") && pr.port !== undefined && pr.proto !== "icmp" && plan.hostListeners.some((l) => l.proto === pr.proto && l.port === pr.port) && !plan.hostListeners.some((l) => l.proto === pr.proto && l.port === pr.port && (l.bind === "::" || bound(l)))) return "host-listener-published";
  return undefined;
}

interface Run {
  compiled: boolean;
  codes?: string[];
  error?: string;
  cells?: number;
  sendable?: number;
  open?: number;
  v6?: number;
  warnings?: string[];
  found?: Disagreement[];
  /** A known artefact of the lab that stopped the world (its error says what). */
  tag?: string;
  /** What the world showed besides its cells (matrix --live's refusal of the host, Docker's tables from the whole policy not as from its networks alone). */
  notes?: string[];
}

/** The tables `ip`/`ip6 docker-bridges` of a --format nft file (`iptables off`), with the lines that replace them. */
function dockerBridgesOf(file: string): string {
  const out: string[] = [];
  let on = false;
  for (const line of file.split("\n")) {
    const t = /^table (\S+) (\S+)( \{)?$/.exec(line);
    if (t) on = (t[1] === "ip" || t[1] === "ip6") && t[2] === "docker-bridges";
    if (on) out.push(line);
    if (line === "}") on = false;
  }
  return out.length ? out.join("\n") + "\n" : "";
}

/**
 * Docker 29.7's own tables for the policy's networks and containers (its nftables backend, `iptables on`): what dockwall
 * writes for them with `iptables off` (dockersOwn: the docker block, networks and containers, `iptables off; published
 * open;`), the --format nft file's docker-bridges tables. Also from the whole policy with `iptables off`, which should
 * be the same tables (what a zone, an allow, `published` says is not Docker's): a note when they are not.
 */
function dockerTablesFor(text: string, p: Policy): { tables: string; codes?: string[]; note?: string } {
  const own = compile(dockersOwn(text, p), { format: "nft", file: "docker.dw" });
  if (!own.ok) return { tables: "", codes: own.diagnostics.filter((d) => d.severity === "error").map((d) => `docker-tables:${d.code}`) };
  const tables = dockerBridgesOf(own.output!);
  if (!/^table ip docker-bridges \{$/m.test(tables)) throw new Error(`no table ip docker-bridges in the --format nft file of Docker's own:\n${own.output}`);
  const whole = compile(text.replace(/\biptables on;/, "iptables off;"), { format: "nft", file: "whole.dw" });
  const note = whole.ok && dockerBridgesOf(whole.output!) !== tables ? "docker-tables-differ: the whole policy with `iptables off` writes other docker-bridges tables than its networks and containers alone" : undefined;
  return { tables, ...(note ? { note } : {}) };
}

/** The policy compiled for the mode, its world built, its rules loaded, every sendable cell probed. */
async function runWorld(mode: Mode, text: string, log: (s: string) => void): Promise<Run> {
  let r: CompileResult;
  let nftOut: string | undefined;
  let dockerTables: ReturnType<typeof dockerTablesFor> | undefined;
  const notes: string[] = [];
  try {
    // (Beside Docker's nftables backend with `iptables on`, only --format nft is accepted: the rules walked as matrix does, `analysis`.)
    r = compile(text, { noRender: true, file: "fuzz.dw", ...(mode === "nft-coexist" ? { analysis: true } : {}) });
    if (r.ok && mode !== "iptables") {
      const n = compile(text, { format: "nft", file: "fuzz.dw" });
      if (!n.ok) return { compiled: false, codes: n.diagnostics.filter((d) => d.severity === "error").map((d) => `nft:${d.code}`) };
      nftOut = n.output!;
    }
    if (r.ok && (mode === "iptables" || mode === "nft-beside-iptables")) for (const f of ["iptables", "ip6tables"] as const) if (!compile(text, { format: f }).ok) return { compiled: false, codes: [`${f}:refused`] };
    if (r.ok && mode === "nft-coexist") {
      dockerTables = dockerTablesFor(text, r.policy!);
      if (dockerTables.codes) return { compiled: false, codes: dockerTables.codes };
      if (dockerTables.note) notes.push(dockerTables.note);
    }
  } catch (e) {
    return { compiled: false, error: `compile threw: ${(e as Error).stack ?? e}` };
  }
  if (!r.ok) return { compiled: false, codes: r.diagnostics.filter((d) => d.severity === "error").map((d) => d.code) };
  const p: Policy = r.policy!;
  const warnings = r.diagnostics.filter((d) => d.severity === "warning").map((d) => d.code);
  const plan = planPolicyLab(p);
  let lab: PolicyLab | undefined;
  try {
    lab = await startPolicyLab(plan);
    if (mode === "iptables" || mode === "nft-beside-iptables") {
      const said = loadPolicy(lab, text, p);
      if (said) return { compiled: true, error: `its rules did not load: ${said}` };
    }
    if (mode === "nft-coexist") {
      // Docker's tables first, as dockerd makes them when it starts; then dockwall's file, as a user loads it.
      const said = lab.host.run(["nft", "-f", "-"], dockerTables!.tables).stderr;
      if (said.trim()) return { compiled: true, error: `Docker's tables did not load: ${said}` };
    }
    if (mode !== "iptables") {
      const said = lab.host.run(["nft", "-f", "-"], nftOut!).stderr;
      if (said.trim()) return { compiled: true, error: `the nft file did not load: ${said}` };
    }
    if (mode === "nft-beside-iptables") {
      // What matrix --live would say of this host (it reads one backend or the other).
      const live = readNftLive((cmd, args) => lab!.host.run([cmd, ...args]).stdout, { legacyRules: false });
      notes.push(live === undefined ? "matrix-live: no nftables tables seen" : "refuse" in live ? "matrix-live: refuses (iptables-nft's xt rules and nftables tables at once)" : "matrix-live: walks the nftables ruleset");
    }
    const { cells, sendable, probes, open } = await probeMatrix(lab, plan, p, asLoaded(p, r.generated!.rulesets), (c) => c.verdict === "open", nftWalked(mode) ? nftWalk(lab) : undefined);
    const byPacket = new Map<string, number[]>();
    probes.forEach((pr, i) => byPacket.set(JSON.stringify(pr), [...(byPacket.get(JSON.stringify(pr)) ?? []), i]));
    const found: Disagreement[] = [];
    sendable.forEach((c, i) => {
      const k = open[i]!;
      const kinds: ("A" | "B")[] = [];
      if (c.verdict === "unknown" || (c.verdict === "open") !== k) kinds.push("A");
      if ((c.intent === "allowed") !== k) kinds.push("B");
      const sameAs = (byPacket.get(JSON.stringify(probes[i])) ?? []).filter((j) => j !== i).map((j) => sendable[j]!);
      for (const kind of kinds) {
        const tag = artefact(plan, c, probes[i]!, k, sameAs);
        found.push({ key: keyOf(c), kind, row: c.row, column: c.column, family: c.family, path: c.path, probe: c.probe, verdict: c.verdict, intent: c.intent, kernel: k ? "open" : "closed", ...(c.why ? { why: c.why } : {}), ...(tag ? { tag } : {}) });
      }
    });
    log(`  ${sendable.length} of ${cells.length} cells probed (${open.filter(Boolean).length} open, ${sendable.filter((c) => c.family === 6).length} IPv6); ${found.filter((d) => !d.tag).length} disagree${found.some((d) => d.tag) ? `, ${found.filter((d) => d.tag).length} known artefacts` : ""}`);
    return { compiled: true, cells: cells.length, sendable: sendable.length, open: open.filter(Boolean).length, v6: sendable.filter((c) => c.family === 6).length, warnings, found, notes };
  } catch (e) {
    // The lab could not be built or probed: a host listener that cannot bind beside a 127.0.0.1 publish of its port is a known artefact.
    const msg = String((e as Error).message ?? e);
    // (And the host's service on a port a container publishes on one address with userland-proxy on, a host address or
    // 0.0.0.0: docker-proxy's stand-in holds it there, and the service's listener on every address cannot bind.)
    const twice = plan.hostListeners.some((l) => plan.hostListeners.some((o) => o !== l && o.proto === l.proto && o.port === l.port && o.bind !== l.bind));
    const tag = /EADDRINUSE/.test(msg) ? (plan.hostListeners.some((l) => l.bind === "127.0.0.1") ? "host-listener-127" : twice ? "host-listener-published" : undefined) : undefined;
    return { compiled: true, error: `the lab failed: ${msg}`, ...(tag ? { tag } : {}) };
  } finally {
    await lab?.stop();
  }
}

const sigOf = (d: Disagreement) => `${d.kind} ${d.key} matrix:${d.verdict} intent:${d.intent} kernel:${d.kernel}`;

/** Smaller policies, one piece out each: statements, list items, docker options (each still a policy to compile). */
function smaller(p: Pol, mode: Mode): Pol[] {
  const out: Pol[] = [];
  const clone = (): Pol => JSON.parse(JSON.stringify(p));
  const lists: ((q: Pol) => unknown[])[] = [
    (q) => q.containers,
    (q) => q.allows,
    (q) => q.forwards,
    (q) => q.host ?? [],
    (q) => q.zones,
    (q) => q.networks,
    ...p.containers.flatMap((_, i): ((q: Pol) => unknown[])[] => [(q) => q.containers[i]!.publishes, (q) => q.containers[i]!.nets]),
    ...p.zones.map((_, i) => (q: Pol) => q.zones[i]!.from),
    ...p.networks.map((_, i) => (q: Pol) => q.networks[i]!.opts),
    (q) => q.docker,
  ];
  const pinned = PINNED[mode];
  for (const list of lists) {
    for (let i = list(p).length - 1; i >= 0; i--) {
      if (pinned && list === lists[lists.length - 1] && pinned.test(String(p.docker[i]))) continue;
      const q = clone();
      list(q).splice(i, 1);
      out.push(q);
    }
  }
  if (p.host) {
    const q = clone();
    delete q.host;
    out.push(q);
  }
  return out;
}

// ---------------------------------------------------------------- the run ----
describeKernel("differential fuzzer: random policies, every matrix cell against the kernel", () => {
  it(
    "random policies",
    async () => {
      const S = fuzzSettings("policy");
      const out = new FuzzOut(S.out);
      const log = out.log;
      out.start("findings.jsonl");
      out.start("minimized.jsonl");
      log(`seed ${S.seed}, ${S.minutes} min, modes ${MODES.join(",")}`);
      const stats = { drawn: 0, worlds: 0, cells: 0, sendable: 0, open: 0, v6: 0, disagreements: 0, artefacts: 0, findings: 0, loadFailed: 0, exceptions: 0, minimized: 0, gone: 0 };
      const redraw = new Tally();
      const tags = new Tally();
      const warnings = new Tally();
      const sigs = new Tally();
      const byMode = new Tally();
      const notes = new Tally();
      /** Each mode's own counts: worlds, cells, IPv6 share, the refusals' codes, the disagreements by direction. */
      const perMode: Record<string, { worlds: number; cells: number; sendable: number; open: number; v6: number; disagreements: number; artefacts: number; findings: number; loadFailed: number; exceptions: number; refused: number; refusals: Tally; kinds: Tally }> = {};
      const M = (m: Mode) => (perMode[m] ??= { worlds: 0, cells: 0, sendable: 0, open: 0, v6: 0, disagreements: 0, artefacts: 0, findings: 0, loadFailed: 0, exceptions: 0, refused: 0, refusals: new Tally(), kinds: new Tally() });
      const summary = () => ({
        stats,
        byMode: byMode.object(),
        perMode: Object.fromEntries(Object.entries(perMode).map(([m, x]) => [m, { ...x, v6Share: x.sendable ? Math.round((1000 * x.v6) / x.sendable) / 1000 : 0, refusals: x.refusals.object(), kinds: x.kinds.object() }])),
        redraws: redraw.object(),
        tags: tags.object(),
        warnings: warnings.object(),
        notes: notes.object(),
        signatures: sigs.object(),
      });
      const minimized = new Set<string>();
      let n = 0;
      while (Date.now() < S.deadline - 20_000) {
        n++;
        const mode = MODES[(n - 1) % MODES.length]!;
        rng.reseed(S.seed * 1_000_003 + n);
        let pol: Pol | undefined;
        let res: Run | undefined;
        let text = "";
        // Drawn until a policy compiles (each refusal's codes counted).
        for (let tries = 0; tries < 50; tries++) {
          stats.drawn++;
          const cand = drawPolicy(mode);
          text = render(cand);
          const dry = (() => {
            try {
              const r = compile(text, { checkOnly: true, file: "fuzz.dw", ...checkFormat(mode) });
              return r.ok ? undefined : r.diagnostics.filter((d) => d.severity === "error").map((d) => d.code);
            } catch (e) {
              return e as Error;
            }
          })();
          if (dry instanceof Error) {
            stats.exceptions++;
            M(mode).exceptions++;
            out.line("findings.jsonl", { kind: "exception", mode, policy: text, error: String(dry.stack ?? dry) });
            log(`EXCEPTION in check:\n${text}${dry.stack}`);
            continue;
          }
          if (dry) {
            for (const c of new Set(dry)) {
              redraw.add(c);
              M(mode).refusals.add(c);
            }
            M(mode).refused++;
            continue;
          }
          pol = cand;
          break;
        }
        if (!pol) continue;
        log(`=== #${n} (${mode})\n${text.trimEnd()}`);
        res = await runWorld(mode, text, log);
        if (!res.compiled) {
          if (res.error) {
            stats.exceptions++;
            M(mode).exceptions++;
            out.line("findings.jsonl", { kind: "exception", mode, policy: text, error: res.error });
            log(`  EXCEPTION: ${res.error}`);
          } else {
            M(mode).refused++;
            for (const c of new Set(res.codes)) {
              redraw.add(c);
              M(mode).refusals.add(c);
            }
            log(`  refused: ${[...new Set(res.codes)].join(", ")}`);
          }
          continue;
        }
        if (res.error && res.tag) {
          tags.add(res.tag);
          log(`  [${res.tag}] the world was not built: ${res.error}`);
          continue;
        }
        if (res.error) {
          stats.loadFailed++;
          M(mode).loadFailed++;
          out.line("findings.jsonl", { kind: "load", mode, policy: text, error: res.error });
          log(`  LOAD FAILED: ${res.error}`);
          continue;
        }
        stats.worlds++;
        byMode.add(mode);
        stats.cells += res.cells!;
        stats.sendable += res.sendable!;
        stats.open += res.open!;
        stats.v6 += res.v6!;
        const mm = M(mode);
        mm.worlds++;
        mm.cells += res.cells!;
        mm.sendable += res.sendable!;
        mm.open += res.open!;
        mm.v6 += res.v6!;
        for (const w of new Set(res.warnings)) warnings.add(w);
        for (const x of res.notes ?? []) {
          notes.add(`${mode} ${x}`);
          log(`  note: ${x}`);
        }
        for (const d of res.found!) {
          stats.disagreements++;
          mm.disagreements++;
          if (d.tag) {
            stats.artefacts++;
            mm.artefacts++;
            tags.add(d.tag);
          } else mm.kinds.add(`${d.kind} matrix:${d.verdict} intent:${d.intent} kernel:${d.kernel}`);
          out.line("findings.jsonl", { mode, world: n, policy: text, ...d });
          log(`  ${d.tag ? `[${d.tag}] ` : ""}(${d.kind}) ${d.row} → ${d.column} ${d.path} v${d.family}: ${d.probe}: matrix ${d.verdict}, intent ${d.intent}, kernel ${d.kernel}${d.why ? ` (${d.why})` : ""}`);
        }
        writeSummary(out, S, summary());
        // What is not a known artefact: built again from scratch, probed once more; then minimized (one per signature).
        const real = res.found!.filter((d) => !d.tag);
        if (!real.length) continue;
        const again = await runWorld(mode, text, () => {});
        const stays = real.filter((d) => again.found?.some((x) => sigOf(x) === sigOf(d)));
        stats.gone += real.length - stays.length;
        for (const d of stays) {
          stats.findings++;
          mm.findings++;
          sigs.add(`${mode} ${d.kind} ${d.path} matrix:${d.verdict} intent:${d.intent} kernel:${d.kernel}`);
        }
        const target = stays.find((d) => !minimized.has(`${mode} ${d.kind} ${d.path} ${d.verdict} ${d.intent} ${d.kernel}`));
        if (!target || Date.now() > S.deadline - 30_000) continue;
        minimized.add(`${mode} ${target.kind} ${target.path} ${target.verdict} ${target.intent} ${target.kernel}`);
        const until = Math.min(S.deadline, Date.now() + MIN_SECONDS * 1000);
        log(`  minimizing (${target.kind}) ${target.key} (until ${new Date(until).toISOString()})`);
        let cur = pol;
        let trials = 0;
        /** The smaller policies already tried and found without the disagreement (not tried again after another piece is out). */
        const tried = new Set<string>();
        for (let changed = true; changed && Date.now() < until; ) {
          changed = false;
          for (const cand of smaller(cur, mode)) {
            if (Date.now() > until) break;
            const t = render(cand);
            if (tried.has(t)) continue;
            tried.add(t);
            let ok = false;
            try {
              ok = compile(t, { checkOnly: true, ...checkFormat(mode) }).ok;
            } catch {
              ok = false;
            }
            if (!ok) continue;
            trials++;
            const rr = await runWorld(mode, t, () => {});
            if (rr.found?.some((x) => sigOf(x) === sigOf(target))) {
              cur = cand;
              changed = true;
              break;
            }
          }
        }
        stats.minimized++;
        const m = { mode, world: n, finding: target, trials, complete: Date.now() <= until, policy: render(cur), original: text };
        out.line("minimized.jsonl", m);
        log(`  MINIMIZED after ${trials} trials${m.complete ? "" : " (time ran out)"}:\n${m.policy.trimEnd()}`);
        writeSummary(out, S, summary());
      }
      writeSummary(out, S, summary());
      log(`DONE ${JSON.stringify(stats)}`);
      console.log(`[fuzz policy] ${stats.worlds} worlds (${JSON.stringify(byMode.object())}), ${stats.sendable} cells probed, ${stats.disagreements} disagreements (${stats.artefacts} known artefacts), ${stats.findings} findings, ${stats.exceptions} exceptions; ${S.out}`);
      expect(stats.worlds).toBeGreaterThan(0);
    },
    fuzzTimeout(),
  );
});
