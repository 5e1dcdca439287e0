// dockerd 28.0.0 only: FORWARD rules keyed on the ipsets docker-ext-bridges-v4/-v6,
// raw-table drops per published port, DROP of unpublished ports in DOCKER.
// (docker-layouts README, "v28.0.0-ipset")
import type { Layout } from "../layout.js";
import { v27 } from "./v27.js";

export const v28ipset: Layout = {
  ...v27,
  name: "v28.0.0-ipset",
  covers: "28.0.0",
  matches: (v) => v.major === 28 && v.minor === 0 && v.patch === 0,
  forward: "ipset",
  isolationReturn: false,
  isolationAppend: true,
  acceptAtTop: true,
  unpublishedDrop: true,
  hairpinAlways: false,
  dnatSkipLinkLocal: true,
  natJumpsAtStart: true,
  rawDrops: () => "per-port",
  v6ForwardDrop: "with-ipv6-network",
};

export const IPSET = { 4: "docker-ext-bridges-v4", 6: "docker-ext-bridges-v6" } as const;
