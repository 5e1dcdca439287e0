// dockerd 20.10 – 26.1: per-bridge rules straight in FORWARD, DOCKER-ISOLATION-STAGE-1/2,
// no raw table. (docker-layouts README, "legacy-20.10")
import { atLeast, type Layout } from "../layout.js";

export const legacy: Layout = {
  name: "legacy-20.10",
  covers: "20.10 – 26.1",
  matches: (v) => atLeast(v, 20, 10) && !atLeast(v, 27),
  ip6tablesDefault: false,
  forward: "inline",
  isolation: true,
  isolationReturn: true,
  internalChain: "DOCKER-ISOLATION-STAGE-1",
  isolationAppend: false,
  v6IsolationForAll: true,
  userReturn: () => true,
  v6DockerUser: (v) => atLeast(v, 23),
  v6StrictInternal: (v) => atLeast(v, 23),
  portOrder: "descending",
  acceptAtTop: false,
  unpublishedDrop: false,
  hairpinAlways: true,
  natReturn: true,
  dnatSkipLinkLocal: false,
  natJumpsAtStart: false,
  rawDrops: () => "none",
  v6ForwardDrop: "always",
};
