// dockerd 27.0 – 27.5: the legacy chains; ip6tables on by default; bindings processed in
// ascending port order. (docker-layouts README, "v27")
import type { Layout } from "../layout.js";
import { atLeast } from "../layout.js";
import { legacy } from "./legacy.js";

export const v27: Layout = {
  ...legacy,
  name: "v27",
  covers: "27.0 – 27.5",
  matches: (v) => atLeast(v, 27) && !atLeast(v, 28),
  ip6tablesDefault: true,
  v6DockerUser: () => true,
  v6StrictInternal: () => true,
  portOrder: "ascending",
};
