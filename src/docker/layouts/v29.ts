// dockerd 29.0 – 29.7 (iptables backend): v28 minus DOCKER-ISOLATION-*, plus
// DOCKER-INTERNAL; no nat `-i BR -j RETURN`. (docker-layouts README, "v29-iptables")
import { atLeast, type Layout } from "../layout.js";
import { v28 } from "./v28.js";

export const v29: Layout = {
  ...v28,
  name: "v29-iptables",
  covers: "29.0 – 29.7",
  matches: (v) => atLeast(v, 29) && !atLeast(v, 30),
  isolation: false,
  internalChain: "DOCKER-INTERNAL",
  userReturn: () => false,
  natReturn: false,
  rawDrops: () => "per-container",
};
