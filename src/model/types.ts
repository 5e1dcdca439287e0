// The policy model: what the source says, typed, every node with its span.
import type { Span } from "../diagnostics.js";
import type { AddressSpec, Cidr, Ip, PortRange, Proto, PublishSpec, TargetRef, TargetSpec, Version } from "./values.js";

export interface Located<T> {
  value: T;
  span: Span;
}

/** A reference to something by name, as written. */
export interface NameRef {
  name: string;
  span: Span;
}

export interface DockerSettings {
  span?: Span;
  version?: Located<Version>;
  /** `version auto;`: the daemon's version, from Docker's facts. */
  versionAuto?: Span;
  iptables: boolean;
  /** Undefined: the Docker version's default. */
  ip6tables?: boolean;
  userlandProxy: boolean;
  icc: boolean;
  ipMasq: boolean;
  ip?: Located<Ip>;
  bip?: Located<Cidr>;
  published: "open" | "closed";
  /** `firewall-backend iptables|nftables;`: Docker's own daemon.json key; undefined: as the daemon says (iptables before Docker 29). */
  firewallBackend?: Located<"iptables" | "nftables">;
  /** What the daemon says its firewall backend is (GET /info's FirewallBackend.Driver), and where that was read; null: facts without it. */
  backendFact?: { driver: string; span: Span } | null;
  /** Where each setting was written, for diagnostics about settings. */
  spans: Partial<Record<string, Span>>;
}

export interface Zone {
  name: string;
  span: Span;
  interfaces: Located<string>[];
  sources: Located<AddressSpec>[];
  builtin: boolean;
}

export interface Network {
  name: string;
  span: Span;
  bridge: Located<string>;
  subnets: Located<Cidr>[];
  gateways: Located<Ip>[];
  icc: boolean;
  internal: boolean;
  masquerade: boolean;
  hostBinding?: Located<Ip>;
  /** The default bridge when the policy does not declare it. */
  implicit: boolean;
}

export interface Endpoint {
  network: NameRef;
  addresses: Located<Ip>[];
  span: Span;
  /** Docker 28+'s gateway priority (`--gw-priority`, EndpointSettings.GwPriority): the highest gives the default route. Undefined: 0. */
  gwPriority?: number;
}

export interface Publish {
  spec: PublishSpec;
  span: Span;
}

export interface Container {
  name: string;
  span: Span;
  endpoints: Endpoint[];
  publishes: Publish[];
  gateway?: NameRef;
  /** The compose service it is a replica of (labels com.docker.compose.project / .service). */
  compose?: { project: string; service: string };
}

export interface AllowRule {
  span: Span;
  zones: NameRef[];
  sources: Located<AddressSpec>[];
  /** The targets as written: containers or compose services, with or without ports. */
  written: Located<TargetRef>[];
  /** What they name, one container's host port(s) each (stage "resolve targets"). */
  targets: Located<TargetSpec>[];
}

export interface ForwardRule {
  span: Span;
  zones: NameRef[];
  sources: Located<AddressSpec>[];
  to: NameRef[];
}

export type HostProto = Proto | "icmp";

export interface HostRule {
  span: Span;
  zones: NameRef[];
  sources: Located<AddressSpec>[];
  proto: Located<HostProto>;
  ports: Located<PortRange>[];
}

export interface HostBlock {
  span: Span;
  policy: "drop" | "accept";
  rules: HostRule[];
}

export interface Policy {
  docker: DockerSettings;
  /** Docker's facts were added (--docker / --facts): names resolve against what runs. */
  withFacts?: {
    source: string;
    unbridged: string[];
    /**
     * With `factsErrors: "warn"`: the containers whose declaration (theirs, their network's or
     * the default bridge's) Docker disagrees with. Their rules follow what Docker has; the allow
     * targets that name them are left out until the two agree. Why, and where it is declared.
     */
    disagrees?: Map<string, { why: string; span: Span }>;
    /** The containers' addresses left out (CompileOptions.addressless): none is missing. */
    addressless?: boolean;
  };
  zones: Zone[];
  networks: Network[];
  containers: Container[];
  allows: AllowRule[];
  forwards: ForwardRule[];
  host?: HostBlock;
}
