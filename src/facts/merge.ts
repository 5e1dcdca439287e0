// Stage "add Docker facts": the networks and containers Docker has replace what the policy
// would otherwise have to spell out. What the policy does declare must agree with Docker
// (an error at the policy's line that says what Docker has); networks then replay in
// creation order and containers in start order, as dockerd wrote its rules. For dockwall
// watch (`warn`) a disagreement is a warning instead: the rules follow what Docker has, and
// the allows of the containers concerned are left out until the two agree (check/rules.ts).
import type { Problems, Span } from "../diagnostics.js";
import { bindings, gatewayOf } from "../model/derive.js";
import type { Container, Network, Policy } from "../model/types.js";
import { formatIp, formatNetwork, type Cidr } from "../model/values.js";
import type { DockerFacts } from "./read.js";
import { refuseSettings } from "./settings.js";

function dockerNote(span: Span): { message: string; span: Span }[] {
  return span.docker ? [{ message: `what Docker has`, span }] : [];
}

function list(xs: string[]): string {
  return xs.length ? xs.join(", ") : "none";
}

function subnetsText(subnets: { value: Cidr }[]): string[] {
  return subnets.map((s) => formatNetwork(s.value)).sort();
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What a disagreement costs under dockwall watch (`factsErrors: "warn"`). */
const UNTIL_AGREE = (whose: string) => `until they agree, the rules follow what Docker has, and the allows of ${whose} are left out (they admit nothing)`;

/** A declared network against Docker's: each setting the policy gives must be what Docker has. Where the first disagreement is written, if any. */
function compareNetwork(declared: Network, actual: Network, problems: Problems, warn: boolean): Span | undefined {
  let first: Span | undefined;
  const mismatch = (span: Span, what: string, said: string, has: string): void => {
    first ??= span;
    problems.factsError(warn, "facts-mismatch", span, `network '${declared.name}' is declared with ${what} ${said}, but Docker has ${has}`, UNTIL_AGREE(`its containers`), {
      help: `write what Docker has, or leave the setting out and let the facts give it`,
      notes: dockerNote(actual.span),
    });
  };
  if (!declared.implicit && declared.bridge.value !== actual.bridge.value) mismatch(declared.bridge.span, "bridge", declared.bridge.value, actual.bridge.value);
  const ds = subnetsText(declared.subnets);
  const as = subnetsText(actual.subnets);
  if (!sameList(ds, as)) mismatch(declared.subnets[0]?.span ?? declared.span, "subnet", list(ds), list(as));
  for (const f of [4, 6] as const) {
    const given = declared.gateways.find((g) => g.value.family === f);
    const has = gatewayOf(actual, f);
    if (given && has && given.value.value !== has.value) mismatch(given.span, "gateway", formatIp(given.value), formatIp(has));
  }
  if (declared.implicit) return first; // the default bridge's switches are the docker block's
  const flags: [string, boolean, boolean][] = [
    ["icc", declared.icc, actual.icc],
    ["internal", declared.internal, actual.internal],
    ["masquerade", declared.masquerade, actual.masquerade],
  ];
  for (const [what, d, a] of flags) if (d !== a) mismatch(declared.span, what, d ? "on" : "off", a ? "on" : "off");
  const db = declared.hostBinding ? formatIp(declared.hostBinding.value) : "0.0.0.0";
  const ab = actual.hostBinding ? formatIp(actual.hostBinding.value) : "0.0.0.0";
  if (db !== ab) mismatch(declared.hostBinding?.span ?? declared.span, "host-binding", db, ab);
  return first;
}

/** The docker block's settings of the default bridge (`bip`, `icc`, `ip-masq`, `ip`) against Docker's. Where the first disagreement is written, if any. */
function compareDefaultBridge(p: Policy, actual: Network, problems: Problems, warn: boolean): Span | undefined {
  const d = p.docker;
  let first: Span | undefined;
  const mismatch = (span: Span | undefined, what: string, said: string, has: string): void => {
    first ??= span ?? d.span!;
    problems.factsError(warn, "facts-mismatch", span ?? d.span!, `the docker block says ${what} ${said}, but the daemon's default bridge has ${has}`, UNTIL_AGREE(`the default bridge's containers`), {
      help: `write what the daemon has (docker network inspect bridge), or leave ${what} out and let the facts give it`,
      notes: dockerNote(actual.span),
    });
  };
  // dockerd started with "iptables": false turns ip-masq off on the default bridge whatever
  // daemon.json says (masquerading is an iptables rule); dockwall writes that rule now, so the
  // docker block's `ip-masq` (default on) says whether to — the facts cannot (docker-corpus/iptables-off).
  if (!d.iptables) actual.masquerade = d.ipMasq;
  else if (!actual.masquerade && !d.spans["ip-masq"]) {
    // `iptables on` for a dockerd that may write nothing: then nothing jumps to DOCKER-USER, and
    // docker-proxy takes every published port past it. Said, until the policy says which.
    first ??= d.spans.iptables ?? d.span!;
    problems.factsError(warn, "facts-mismatch", d.spans.iptables ?? d.span!, `the docker block says iptables on, but the daemon's default bridge has masquerading off, as dockerd has it when it runs with "iptables": false (or with "ip-masq": false)`, UNTIL_AGREE(`the default bridge's containers`), {
      help: `if daemon.json says "iptables": false, write 'iptables off;' (dockwall then writes Docker's chains); if it says "ip-masq": false, write 'ip-masq off;' in the docker block`,
      notes: dockerNote(actual.span),
    });
  }
  if (d.spans.icc && d.icc !== actual.icc) mismatch(d.spans.icc, "icc", d.icc ? "on" : "off", actual.icc ? "on" : "off");
  if (d.spans["ip-masq"] && d.ipMasq !== actual.masquerade) mismatch(d.spans["ip-masq"], "ip-masq", d.ipMasq ? "on" : "off", actual.masquerade ? "on" : "off");
  if (d.bip) {
    const said = `${formatIp(d.bip.value)}/${d.bip.value.prefix}`;
    const s4 = actual.subnets.find((s) => s.value.family === 4)?.value;
    const g4 = gatewayOf(actual, 4);
    const has = s4 && g4 ? `${formatIp(g4)}/${s4.prefix}` : "no IPv4 subnet";
    if (said !== has) mismatch(d.bip.span, "bip", said, has);
  }
  if (d.ip) {
    const said = formatIp(d.ip.value);
    const has = actual.hostBinding ? formatIp(actual.hostBinding.value) : "0.0.0.0";
    if (said !== has) mismatch(d.ip.span, "ip", said, has);
  }
  // The facts are the truth now: the block's switches must not switch the bridge off twice.
  d.icc = actual.icc;
  d.ipMasq = actual.masquerade;
  return first;
}

function endpointsText(c: Container): string[] {
  return c.endpoints.map((e) => `${e.network.name} ${e.addresses.map((a) => formatIp(a.value)).join(" ")}`).sort();
}

function bindingsText(c: Container): string[] {
  return c.publishes
    .flatMap(bindings)
    .map((b) => `${b.hostIp ? `${formatIp(b.hostIp)}:` : ""}${b.hostPort}:${b.containerPort}/${b.proto}`)
    .sort();
}

/** Where the first disagreement is written, if any. */
function compareContainer(declared: Container, actual: Container, problems: Problems, warn: boolean): Span | undefined {
  let first: Span | undefined;
  const de = endpointsText(declared);
  const ae = endpointsText(actual);
  const diff = (a: string[], b: string[]) => a.filter((x) => !b.includes(x));
  // No network line written: whatever Docker has (as for publish below).
  if (de.length > 0 && !sameList(de, ae)) {
    first = declared.endpoints[0]?.span ?? declared.span;
    problems.factsError(warn, "facts-mismatch", first, `container '${declared.name}' is declared on ${list(de.map((x) => `'${x}'`))}, but Docker has it on ${list(ae.map((x) => `'${x}'`))}`, UNTIL_AGREE(`'${declared.name}'`), {
      help: diff(de, ae).length ? `remove or correct the network lines, or leave them out and let the facts give them` : `add what Docker has, or leave the network lines out`,
      notes: dockerNote(actual.span),
    });
  }
  // Only what the policy says it publishes is compared: none written means "whatever Docker has".
  if (declared.publishes.length > 0) {
    const dp = bindingsText(declared);
    const ap = bindingsText(actual);
    if (!sameList(dp, ap)) {
      first ??= declared.publishes[0]!.span;
      problems.factsError(warn, "facts-mismatch", declared.publishes[0]!.span, `container '${declared.name}' is declared to publish ${list(dp)}, but Docker publishes ${list(ap)}`, UNTIL_AGREE(`'${declared.name}'`), {
        help: `write what Docker publishes (docker port ${declared.name}), or leave the publish lines out and let the facts give them`,
        notes: dockerNote(actual.span),
      });
    }
  }
  return first;
}

/** `warn` (dockwall watch): a declaration that Docker disagrees with is a warning, and Docker's object is used (Policy.withFacts.disagrees). */
export function addFacts(p: Policy, facts: DockerFacts, problems: Problems, warn = false, format?: string): void {
  p.withFacts = { source: facts.source, unbridged: facts.unbridged };
  // Under `warn`: the networks that Docker disagrees with, and where.
  const netsDisagree = new Map<string, { why: string; span: Span }>();
  const disagrees = new Map<string, { why: string; span: Span }>();
  const d = p.docker;
  if (facts.version && (d.versionAuto || !d.version)) d.version = { value: facts.version, span: d.versionAuto ?? d.span ?? facts.networks[0]?.span ?? { line: 1, col: 1, endLine: 1, endCol: 2 } };
  else if (d.versionAuto && !d.version) {
    problems.error("no-version", d.versionAuto, `'version auto' takes the daemon's version, but ${facts.source} does not say it`, {
      help: `write the release (e.g. version 20.10;), or save the facts with 'dockwall facts', which records it`,
    });
  }

  // Networks: Docker's, in creation order; a declared one must agree and keeps its spans.
  const declaredNets = new Map(p.networks.map((n) => [n.name, n]));
  const networks: Network[] = [];
  for (const actual of facts.networks) {
    const declared = declaredNets.get(actual.name);
    declaredNets.delete(actual.name);
    if (actual.name === "bridge") {
      const at = compareDefaultBridge(p, actual, problems, warn);
      if (at) netsDisagree.set(actual.name, { why: `the default bridge, whose settings in the docker block disagree with the daemon's`, span: at });
    }
    if (!declared || declared.implicit) {
      networks.push(actual);
      continue;
    }
    const at = compareNetwork(declared, actual, problems, warn);
    if (at && warn) {
      netsDisagree.set(actual.name, { why: `network '${actual.name}', which is not as the policy declares it`, span: at });
      networks.push(actual);
      continue;
    }
    networks.push(declared);
  }
  for (const [, n] of declaredNets) {
    if (n.implicit) continue; // the daemon runs without a default bridge (--bridge none)
    problems.warning("not-in-docker", n.span, `network '${n.name}' is declared, but Docker has no such bridge network; it gets no rules`, {
      help: `create it (docker network create), or remove it from the policy`,
    });
  }
  p.networks = networks;

  // Containers: Docker's running ones, in start order; a declared one must agree.
  const declaredCtrs = new Map(p.containers.map((c) => [c.name, c]));
  const containers: Container[] = [];
  for (const actual of facts.containers) {
    const declared = declaredCtrs.get(actual.name);
    declaredCtrs.delete(actual.name);
    if (!declared) {
      containers.push(actual);
      continue;
    }
    const at = compareContainer(declared, actual, problems, warn);
    if (at && warn) {
      disagrees.set(actual.name, { why: `container '${actual.name}' is not as the policy declares it`, span: at });
      containers.push(actual);
      continue;
    }
    // The declared node keeps the policy's spans; what it leaves out, Docker gives.
    if (declared.endpoints.length === 0) declared.endpoints = actual.endpoints;
    if (declared.publishes.length === 0) declared.publishes = actual.publishes;
    declared.compose ??= actual.compose;
    containers.push(declared);
  }
  for (const [, c] of declaredCtrs) {
    const why = facts.unbridged.includes(c.name) ? "runs on no bridge network (host or none networking)" : "is not running";
    problems.warning("not-running", c.span, `container '${c.name}' is declared, but ${why}; it gets no rules until it runs`, {
      help: `start it, or remove it from the policy`,
    });
  }
  p.containers = containers;
  // What Docker has that changes its rules and that dockwall does not reproduce: refused, never compiled as absent.
  refuseSettings(p, facts, problems, warn, format);
  if (!warn) return;
  // (The containers as refuseSettings left them: without their endpoints on a network it left out.)
  for (const c of p.containers) {
    if (disagrees.has(c.name)) continue;
    const n = c.endpoints.map((e) => netsDisagree.get(e.network.name)).find((x) => x);
    if (n) disagrees.set(c.name, { why: `container '${c.name}' is on ${n.why}`, span: n.span });
  }
  if (disagrees.size) p.withFacts.disagrees = disagrees;
}

