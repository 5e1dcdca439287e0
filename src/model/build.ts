// Syntax tree → model. Checks what a single statement can know on its own: option names and
// values, repeated options, value syntax. Cross-references are the checker's job.
import type { IToken } from "chevrotain";
import { closest, Problems, type Span, spanOf, subSpan, joinSpans } from "../diagnostics.js";
import type * as S from "../syntax/nodes.js";
import type {
  AllowRule, Container, DockerSettings, Endpoint, ForwardRule, HostBlock, HostProto, HostRule, Located, NameRef,
  Network, Policy, Zone,
} from "./types.js";
import {
  checkInterfaceName, DOCKER_NAME_RE, formatIp, formatNetwork, isError, networkOf, NAME_RE, parseAddressSpec, parseCidr, parseIp, parsePortRange, parsePublish,
  parseSwitch, parseTarget, parseVersion, type AddressSpec, type Ip, type TargetRef, type ValueError,
} from "./values.js";

type Words = IToken[][];

interface SettingContext {
  key: IToken;
  groups: Words;
  node: S.Setting;
}

/** A setting's handler: reads its values or reports what is wrong. */
type Handler<T> = (target: T, ctx: SettingContext, b: Builder) => void;

interface SettingDef<T> {
  handler: Handler<T>;
  /** May appear more than once. */
  repeatable?: boolean;
  /** Words it takes: "none", "one", or "list" (one comma-separated list). */
  arity: "none" | "one" | "list" | "one+list";
  usage: string;
}

export const defaultBridge = (): Network => ({
  name: "bridge",
  span: { line: 1, col: 1, endLine: 1, endCol: 1 },
  bridge: { value: "docker0", span: { line: 1, col: 1, endLine: 1, endCol: 1 } },
  subnets: [{ value: { family: 4, value: 0xac110000n, prefix: 16, explicitPrefix: true }, span: { line: 1, col: 1, endLine: 1, endCol: 1 } }],
  gateways: [],
  icc: true,
  internal: false,
  masquerade: true,
  implicit: true,
});

class Builder {
  readonly problems = new Problems();

  word(t: IToken): Located<string> {
    return { value: t.image, span: spanOf(t) };
  }

  /** Reports a ValueError at its exact characters within the word. */
  valueError(t: IToken, e: ValueError): void {
    this.problems.error("bad-value", subSpan(spanOf(t), e.offset, e.length), e.error, { help: e.help });
  }

  value<T>(t: IToken, parse: (s: string) => T | ValueError): Located<T> | undefined {
    const v = parse(t.image);
    if (isError(v)) {
      this.valueError(t, v);
      return undefined;
    }
    return { value: v, span: spanOf(t) };
  }

  name(t: IToken, what: string): NameRef {
    // Containers and networks take every name Docker accepts (`1app` too); zones are the policy's own.
    const docker = what === "network" || what === "container";
    if (!(docker ? DOCKER_NAME_RE : NAME_RE).test(t.image)) {
      this.problems.error("bad-name", spanOf(t), `'${t.image}' is not a valid ${what} name`, {
        help: `a name starts with a letter${docker ? ", a digit" : ""} or '_' and has only letters, digits, '_', '-' and '.'`,
      });
    }
    return { name: t.image, span: spanOf(t) };
  }

  names(list: S.ValueList | undefined, what: string): NameRef[] {
    return list ? list.items.map((t) => this.name(t, what)) : [];
  }

  sources(list: S.ValueList | undefined): Located<AddressSpec>[] {
    const out: Located<AddressSpec>[] = [];
    if (!list) return out;
    for (let i = 0; i < list.items.length; i++) {
      const v = this.source(list.items[i]!);
      if (v) out.push(v);
    }
    return out.slice();
  }

  /** A source address; `192.168.1.7/24` is read as its network, and warned about: the one host may have been meant. */
  source(t: IToken): Located<AddressSpec> | undefined {
    const v = this.value(t, parseAddressSpec);
    if (v && v.value.kind === "cidr" && v.value.cidr.explicitPrefix && networkOf(v.value.cidr) !== v.value.cidr.value) {
      const c = v.value.cidr;
      const net = formatNetwork(c);
      const host = formatIp(c);
      this.problems.warning("host-bits", v.span, `${t.image} has host bits set; it is read as the network ${net}`, {
        help: `write ${net} for the whole network, or ${host} (${host}/${c.family === 4 ? 32 : 128}) for the one host`,
      });
    }
    return v;
  }

  switchOf(ctx: SettingContext): boolean | undefined {
    return this.value(ctx.groups[0]![0]!, parseSwitch)?.value;
  }

  /** Runs the settings of a block through its table: unknown, repeated, wrong arity. */
  settings<T>(target: T, nodes: S.Setting[], table: Record<string, SettingDef<T>>, blockName: string): void {
    // (Runs for every setting of a big policy: what only a diagnostic needs is made then.)
    let seen: Map<string, IToken> | undefined;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      const key = node.key;
      const def = table[key.image];
      if (!def) {
        const known = Object.keys(table);
        const near = closest(key.image, known);
        this.problems.error("unknown-option", spanOf(key), `unknown option '${key.image}' in ${blockName}`, {
          help: near ? `did you mean '${near}'?` : `the options of ${blockName} are: ${known.join(", ")}`,
        });
        continue;
      }
      const prev = seen?.get(key.image);
      if (prev && !def.repeatable) {
        this.problems.error("duplicate-option", spanOf(key), `'${key.image}' is given twice in ${blockName}`, {
          help: `keep one of them`,
          notes: [{ message: `first given here`, span: spanOf(prev) }],
        });
        continue;
      }
      if (!prev) (seen ??= new Map()).set(key.image, key);
      const values = node.values;
      const groups: Words = values.length === 1 ? [values[0]!.items] : values.map((v) => v.items);
      let count = 0;
      for (let i = 0; i < groups.length; i++) count += groups[i]!.length;
      const ok =
        def.arity === "none" ? count === 0
        : def.arity === "one" ? count === 1
        : def.arity === "list" ? groups.length === 1
        : groups.length === 2 && groups[0]!.length === 1 || groups.length === 1 && groups[0]!.length === 1;
      if (!ok) {
        const at = groups.length > 0 ? joinSpans(spanOf(groups[0]![0]!), spanOf(groups.at(-1)!.at(-1)!)) : spanOf(key);
        this.problems.error("bad-arity", at, `'${key.image}' ${def.arity === "none" ? "takes no value" : "expects " + def.usage}`, {
          help: `write: ${key.image}${def.arity === "none" ? "" : " " + def.usage};`,
        });
        continue;
      }
      def.handler(target, { key, groups, node }, this);
    }
  }
}

/** A setting's whole span, from its key to its ';'. */
function settingSpan(node: S.Setting): Span {
  const last = node.semi;
  return last && !last.isInsertedInRecovery ? joinSpans(spanOf(node.key), spanOf(last)) : spanOf(node.key);
}


const onOff = <T>(set: (t: T, v: boolean) => void, usage = "on or off"): SettingDef<T> => ({
  arity: "one",
  usage,
  handler: (t, ctx, b) => {
    const v = b.switchOf(ctx);
    if (v !== undefined) set(t, v);
  },
});

const dockerSettings: Record<string, SettingDef<DockerSettings>> = {
  version: {
    arity: "one",
    usage: "MAJOR[.MINOR[.PATCH]] or auto",
    handler: (d, ctx, b) => {
      const t = ctx.groups[0]![0]!;
      if (t.image === "auto") {
        d.versionAuto = spanOf(t);
        return;
      }
      const v = b.value(t, parseVersion);
      if (v) d.version = v;
    },
  },
  iptables: onOff((d, v) => (d.iptables = v)),
  ip6tables: onOff((d, v) => (d.ip6tables = v)),
  "userland-proxy": onOff((d, v) => (d.userlandProxy = v)),
  icc: onOff((d, v) => (d.icc = v)),
  "ip-masq": onOff((d, v) => (d.ipMasq = v)),
  ip: {
    arity: "one",
    usage: "ADDRESS",
    handler: (d, ctx, b) => {
      const v = b.value(ctx.groups[0]![0]!, (s) => parseIp(s));
      if (v) d.ip = v;
    },
  },
  bip: {
    arity: "one",
    usage: "ADDRESS/PREFIX",
    handler: (d, ctx, b) => {
      const t = ctx.groups[0]![0]!;
      const v = b.value(t, (s) => parseCidr(s));
      if (!v) return;
      if (!v.value.explicitPrefix || v.value.family !== 4) {
        b.problems.error("bad-value", v.span, `bip needs an IPv4 address with a prefix, like 172.17.0.1/16`);
        return;
      }
      d.bip = v;
    },
  },
  "firewall-backend": {
    arity: "one",
    usage: "iptables or nftables",
    handler: (d, ctx, b) => {
      const t = ctx.groups[0]![0]!;
      if (t.image === "iptables" || t.image === "nftables") d.firewallBackend = { value: t.image, span: spanOf(t) };
      else b.problems.error("bad-value", spanOf(t), `expected iptables or nftables, not '${t.image}'`, { help: `as "firewall-backend" in /etc/docker/daemon.json (Docker 29 and later; iptables without it)` });
    },
  },
  published: {
    arity: "one",
    usage: "open or closed",
    handler: (d, ctx, b) => {
      const t = ctx.groups[0]![0]!;
      if (t.image === "open" || t.image === "closed") d.published = t.image;
      else b.problems.error("bad-value", spanOf(t), `expected open or closed, not '${t.image}'`, { help: `published open keeps Docker's behaviour; published closed (the default) needs an allow` });
    },
  },
};

const zoneSettings: Record<string, SettingDef<Zone>> = {
  interface: {
    arity: "list",
    usage: "NAME[, NAME…]",
    repeatable: true,
    handler: (z, ctx, b) => {
      for (const t of ctx.groups[0]!) {
        const e = checkInterfaceName(t.image, true);
        if (e) b.valueError(t, e);
        else z.interfaces.push(b.word(t));
      }
    },
  },
  from: {
    arity: "list",
    usage: "ADDRESS[/PREFIX][, …]",
    repeatable: true,
    handler: (z, ctx, b) => {
      for (const t of ctx.groups[0]!) {
        const v = b.source(t);
        if (v) z.sources.push(v);
      }
    },
  },
};

const networkSettings: Record<string, SettingDef<Network>> = {
  bridge: {
    arity: "one",
    usage: "INTERFACE",
    handler: (n, ctx, b) => {
      const t = ctx.groups[0]![0]!;
      const e = checkInterfaceName(t.image, false);
      if (e) b.valueError(t, e);
      else n.bridge = b.word(t);
    },
  },
  subnet: {
    arity: "one",
    usage: "ADDRESS/PREFIX",
    repeatable: true,
    handler: (n, ctx, b) => {
      const t = ctx.groups[0]![0]!;
      const v = b.value(t, (s) => parseCidr(s));
      if (!v) return;
      if (!v.value.explicitPrefix) {
        b.problems.error("bad-value", v.span, `subnet '${t.image}' needs a prefix length`, { help: `write e.g. ${t.image}/${v.value.family === 4 ? 16 : 64}` });
        return;
      }
      n.subnets.push(v);
    },
  },
  gateway: {
    arity: "one",
    usage: "ADDRESS",
    repeatable: true,
    handler: (n, ctx, b) => {
      const v = b.value(ctx.groups[0]![0]!, (s) => parseIp(s));
      if (v) n.gateways.push(v);
    },
  },
  icc: onOff((n, v) => (n.icc = v)),
  masquerade: onOff((n, v) => (n.masquerade = v)),
  internal: {
    arity: "none",
    usage: "",
    handler: (n) => (n.internal = true),
  },
  "host-binding": {
    arity: "one",
    usage: "IPV4-ADDRESS",
    handler: (n, ctx, b) => {
      const v = b.value(ctx.groups[0]![0]!, (s) => parseIp(s));
      if (!v) return;
      if (v.value.family !== 4) {
        b.problems.error("family-mismatch", v.span, `host-binding takes an IPv4 address (Docker's host_binding_ipv4)`);
        return;
      }
      n.hostBinding = v;
    },
  },
};

const containerSettings: Record<string, SettingDef<Container>> = {
  network: {
    arity: "one+list",
    usage: "NETWORK [ADDRESS[, ADDRESS]]",
    repeatable: true,
    handler: (c, ctx, b) => {
      const [first, second] = ctx.groups;
      let nameTok: IToken;
      let addrToks: IToken[];
      if (second) {
        nameTok = first![0]!;
        addrToks = second;
      } else if (first!.length === 1) {
        nameTok = first![0]!;
        addrToks = [];
      } else {
        b.problems.error("bad-arity", spanOf(first![1]!), `expected the network name, then its addresses`, { help: `write: network NAME ADDRESS[, IPV6-ADDRESS];` });
        return;
      }
      const network = b.name(nameTok, "network");
      const addresses: Located<Ip>[] = [];
      for (let i = 0; i < addrToks.length; i++) {
        const v = b.value(addrToks[i]!, parseIp);
        if (v) addresses.push(v);
      }
      const ep: Endpoint = { network, addresses: addresses.slice(), span: settingSpan(ctx.node) };
      if (ep.addresses.length > 2 || (ep.addresses.length === 2 && ep.addresses[0]!.value.family === ep.addresses[1]!.value.family)) {
        b.problems.error("bad-arity", ep.addresses[1]!.span, `a container has at most one IPv4 and one IPv6 address on a network`);
        return;
      }
      c.endpoints.push(ep);
    },
  },
  publish: {
    arity: "list",
    usage: "[HOSTADDR:]HOSTPORT:CONTAINERPORT[/tcp|/udp][, …]",
    repeatable: true,
    handler: (c, ctx, b) => {
      const words = ctx.groups[0]!;
      for (let i = 0; i < words.length; i++) {
        const v = b.value(words[i]!, parsePublish);
        if (v) c.publishes.push({ spec: v.value, span: v.span });
      }
    },
  },
  gateway: {
    arity: "one",
    usage: "NETWORK",
    handler: (c, ctx, b) => {
      c.gateway = b.name(ctx.groups[0]![0]!, "network");
    },
  },
};

const hostSettings: Record<string, SettingDef<HostBlock>> = {
  policy: {
    arity: "one",
    usage: "accept or drop",
    handler: (h, ctx, b) => {
      const t = ctx.groups[0]![0]!;
      const v = t.image.toLowerCase();
      if (v === "accept" || v === "drop") h.policy = v;
      else b.problems.error("bad-value", spanOf(t), `expected accept or drop, not '${t.image}'`);
    },
  },
};

/** The settings each block accepts (for the grammar summary and its test). */
export const settingNames: Record<string, string[]> = {
  docker: Object.keys(dockerSettings),
  zone: Object.keys(zoneSettings),
  network: Object.keys(networkSettings),
  container: Object.keys(containerSettings),
  host: Object.keys(hostSettings),
};

export interface BuildResult {
  policy: Policy;
  problems: Problems;
}

function blockSpan(keyword: IToken, close: IToken | undefined): Span {
  return close && !close.isInsertedInRecovery ? joinSpans(spanOf(keyword), spanOf(close)) : spanOf(keyword);
}

/**
 * Builds the model a statement at a time (compile() feeds statements as they are parsed,
 * so the syntax tree of a big policy never exists whole), then finishes it.
 */
export function modelBuilder(): { add: (st: S.Statement) => void; finish: () => BuildResult } {
  const b = new Builder();
  const docker: DockerSettings = { iptables: false, userlandProxy: true, icc: true, ipMasq: true, published: "closed", spans: {} };
  const policy: Policy = { docker, zones: [], networks: [], containers: [], allows: [], forwards: [] };
  let dockerSeen: Span | undefined;
  let hostSeen: Span | undefined;

  const add = (st: S.Statement): void => {
    if (st.kind === "docker") {
      const kw = st.keyword;
      if (dockerSeen) {
        b.problems.error("duplicate-block", spanOf(kw), `a second docker block`, { help: `put all daemon settings in one docker block`, notes: [{ message: `the first docker block`, span: dockerSeen }] });
        return;
      }
      dockerSeen = spanOf(kw);
      docker.span = spanOf(kw);
      for (const s of st.block.settings) docker.spans[s.key.image] ??= spanOf(s.key);
      b.settings(docker, st.block.settings, dockerSettings, "the docker block");
    } else if (st.kind === "zone") {
      const n = b.name(st.name, "zone");
      const zone: Zone = { name: n.name, span: n.span, interfaces: [], sources: [], builtin: false };
      b.settings(zone, st.block.settings, zoneSettings, `zone '${n.name}'`);
      policy.zones.push(zone);
    } else if (st.kind === "network") {
      const n = b.name(st.name, "network");
      const net: Network = {
        name: n.name, span: n.span, bridge: { value: "", span: n.span }, subnets: [], gateways: [],
        icc: true, internal: false, masquerade: true, implicit: false,
      };
      const settings = st.block.settings;
      b.settings(net, settings, networkSettings, `network '${n.name}'`);
      const missing = ["bridge", "subnet"].filter((k) => !settings.some((s) => s.key.image === k));
      for (const m of missing) {
        b.problems.error("missing-option", n.span, `network '${n.name}' has no ${m}`, {
          help: m === "bridge" ? `add the bridge interface Docker uses, e.g. bridge br-${n.name.slice(0, 12)};` : `add its address range, e.g. subnet 172.20.0.0/16;`,
        });
      }
      policy.networks.push(net);
    } else if (st.kind === "container") {
      const n = b.name(st.name, "container");
      const ctr: Container = { name: n.name, span: n.span, endpoints: [], publishes: [] };
      b.settings(ctr, st.block.settings, containerSettings, `container '${n.name}'`);
      ctr.endpoints = ctr.endpoints.slice();
      ctr.publishes = ctr.publishes.slice();
      policy.containers.push(ctr);
    } else if (st.kind === "allow") {
      const rule: AllowRule = {
        span: blockSpan(st.keyword, st.semi),
        zones: b.names(st.zones, "zone"),
        sources: b.sources(st.sources),
        written: [],
        targets: [],
      };
      const items = st.targets.items;
      const written: Located<TargetRef>[] = [];
      for (let i = 0; i < items.length; i++) {
        const v = b.value(items[i]!, parseTarget);
        if (v) written.push(v);
      }
      rule.written = written.slice();
      policy.allows.push(rule);
    } else if (st.kind === "forward") {
      const rule: ForwardRule = {
        span: blockSpan(st.keyword, st.semi),
        zones: b.names(st.zones, "zone"),
        sources: b.sources(st.sources),
        to: b.names(st.targets, "zone"),
      };
      policy.forwards.push(rule);
    } else if (st.kind === "host") {
      const kw = st.keyword;
      if (hostSeen) {
        b.problems.error("duplicate-block", spanOf(kw), `a second host block`, { help: `put all of the host's own rules in one host block`, notes: [{ message: `the first host block`, span: hostSeen }] });
        return;
      }
      hostSeen = spanOf(kw);
      const host: HostBlock = { span: blockSpan(kw, st.close), policy: "drop", rules: [] };
      b.settings(host, st.settings, hostSettings, "the host block");
      for (const ha of st.allows) host.rules.push(hostRule(b, ha));
      host.rules.sort((x, y) => x.span.line - y.span.line || x.span.col - y.span.col);
      policy.host = host;
    }
  };

  const finish = (): BuildResult => {
    if (!policy.networks.some((n) => n.name === "bridge")) {
      const def = defaultBridge();
      if (docker.bip) {
        def.subnets = [{ value: { family: docker.bip.value.family, value: networkOf(docker.bip.value), prefix: docker.bip.value.prefix, explicitPrefix: docker.bip.value.explicitPrefix }, span: docker.bip.span }];
        def.gateways = [{ value: { family: 4, value: docker.bip.value.value }, span: docker.bip.span }];
      }
      policy.networks.unshift(def);
    } else {
      // A declared default bridge still comes first: dockerd creates it at start.
      const i = policy.networks.findIndex((n) => n.name === "bridge");
      policy.networks.unshift(...policy.networks.splice(i, 1));
    }
    return { policy, problems: b.problems };
  };
  return { add, finish };
}

/** The model of a whole parsed file (tools and tests; compile() streams statements). */
export function buildModel(statements: S.Statement[]): BuildResult {
  const m = modelBuilder();
  for (const st of statements) m.add(st);
  return m.finish();
}

function hostRule(b: Builder, h: S.HostAllow): HostRule {
  const protoTok = h.protocol;
  const rule: HostRule = {
    span: blockSpan(h.keyword, h.semi),
    zones: b.names(h.zones, "zone"),
    sources: b.sources(h.sources),
    proto: { value: "tcp", span: spanOf(protoTok) },
    ports: [],
  };
  const p = protoTok.image;
  if (p === "tcp" || p === "udp" || p === "icmp") rule.proto.value = p as HostProto;
  else {
    b.problems.error("bad-value", spanOf(protoTok), `expected tcp, udp or icmp, not '${p}'`, { help: `write: allow ZONE tcp|udp PORT[, PORT…]; or allow ZONE icmp;` });
  }
  for (const t of h.ports?.items ?? []) {
    const v = b.value(t, (s) => parsePortRange(s));
    if (v) rule.ports.push(v);
  }
  if (rule.proto.value === "icmp" && rule.ports.length > 0) {
    b.problems.error("bad-value", rule.ports[0]!.span, `icmp has no ports`, { help: `write: allow ZONE icmp;` });
  } else if (rule.proto.value !== "icmp" && rule.ports.length === 0 && (h.ports?.items.length ?? 0) === 0 && ["tcp", "udp"].includes(p)) {
    b.problems.error("missing-value", spanOf(protoTok), `'allow … ${p}' needs the ports it opens`, { help: `write e.g. allow ZONE ${p} 22;` });
  }
  return rule;
}
