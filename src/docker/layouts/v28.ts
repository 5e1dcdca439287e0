// dockerd 28.0.1 – 28.5: DOCKER-FORWARD / DOCKER-CT / DOCKER-BRIDGE sub-chains, no ipset;
// raw drops per container from 28.2.0; no RETURN in DOCKER-USER from 28.2.2; ISOLATION
// rules only for the families a network has. (docker-layouts README, "v28")
import { atLeast, type Layout } from "../layout.js";
import { v28ipset } from "./v28-ipset.js";

export const v28: Layout = {
  ...v28ipset,
  name: "v28",
  covers: "28.0.1 – 28.5",
  matches: (v) => v.major === 28 && !(v.minor === 0 && v.patch === 0),
  forward: "docker-forward",
  v6IsolationForAll: false,
  userReturn: (v) => !atLeast(v, 28, 2, 2),
  rawDrops: (v) => (atLeast(v, 28, 2) ? "per-container" : "per-port"),
};
