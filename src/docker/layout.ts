// A Docker chain layout: the facts that tell one dockerd release's rules from another's.
// Each layouts/*.ts file states one layout's facts, in the words of the docker-layouts
// README; engine.ts replays dockerd's operations according to them. Adding a Docker
// release is a new file here (usually a copy of the newest with a few facts changed).
import type { Version } from "../model/values.js";

export interface Layout {
  /** As in the layout captures' folder names, e.g. "v28". */
  name: string;
  /** The releases it covers, for messages and docs. */
  covers: string;
  matches: (v: Version) => boolean;
  /** ip6tables default when the policy does not say (27+: on). */
  ip6tablesDefault: boolean;

  /** How FORWARD reaches the per-bridge rules. */
  forward: "inline" | "ipset" | "docker-forward";
  /** DOCKER-ISOLATION-STAGE-1/2 exist (gone in 29). */
  isolation: boolean;
  /** The ISOLATION chains end with -j RETURN (before 28). */
  isolationReturn: boolean;
  /** Where internal networks' drops go. */
  internalChain: "DOCKER-ISOLATION-STAGE-1" | "DOCKER-INTERNAL";
  /** ISOLATION-1 entries of non-internal networks are inserted at the top (legacy) or appended (28+, where the chain has no RETURN). */
  isolationAppend: boolean;
  /** IPv6: ISOLATION rules for every non-internal network, IPv4-only ones included. */
  v6IsolationForAll: boolean;
  /** DOCKER-USER holds -j RETURN. */
  userReturn: (v: Version) => boolean;
  /** IPv6 DOCKER-USER exists (20.10 had none). */
  v6DockerUser: (v: Version) => boolean;
  /** IPv6 internal drops carry `! -i BR` / `! -o BR` (23.0+). */
  v6StrictInternal: (v: Version) => boolean;

  /** Order dockerd processes one container's bindings in. */
  portOrder: "descending" | "ascending";
  /** Per-port ACCEPT in filter DOCKER inserted at the top (28+) instead of appended. */
  acceptAtTop: boolean;
  /** Per-network `! -i BR -o BR -j DROP` in filter DOCKER for unpublished ports (28+). */
  unpublishedDrop: boolean;
  /** Hairpin MASQUERADE per port: always (before 28) or only without the proxy. */
  hairpinAlways: boolean;
  /** nat DOCKER `-i BR -j RETURN` per network (before 29). */
  natReturn: boolean;
  /** IPv6 DNAT carries `! -s fe80::/10` (28+). */
  dnatSkipLinkLocal: boolean;
  /** nat PREROUTING/OUTPUT jumps at daemon start (28+), or with the family's first NAT network. */
  natJumpsAtStart: boolean;
  /** raw PREROUTING drops against direct access (28+): per published port, or per container. */
  rawDrops: (v: Version) => "none" | "per-port" | "per-container";
  /** IPv6 FORWARD policy DROP: whenever ip6tables is on, or once an IPv6 network exists (28+). A fact of
   *  dockerd's; dockwall's own output sets DROP in both families whatever it says (generate.ts). */
  v6ForwardDrop: "always" | "with-ipv6-network";
}

export const atLeast = (v: Version, major: number, minor = 0, patch = 0): boolean =>
  v.major !== major ? v.major > major : (v.minor ?? 99) !== minor ? (v.minor ?? 99) > minor : (v.patch ?? 99) >= patch;
