// Which layout a policy's `version` selects. Oldest first; see src/docker/layouts/.
import type { Version } from "../model/values.js";
import type { Layout } from "./layout.js";
import { legacy } from "./layouts/legacy.js";
import { v27 } from "./layouts/v27.js";
import { v28ipset } from "./layouts/v28-ipset.js";
import { v28 } from "./layouts/v28.js";
import { v29 } from "./layouts/v29.js";

export const layouts: Layout[] = [legacy, v27, v28ipset, v28, v29];

/** The release dockwall assumes when the policy names none (and what a bare major means). */
export const NEWEST: Version = { text: "29.7.2", major: 29, minor: 7, patch: 2 };

/** The newest release of each major that dockwall knows (a bare `28` means 28.5.2). */
const NEWEST_OF: Record<number, Version> = {
  20: { text: "20.10.24", major: 20, minor: 10, patch: 24 },
  23: { text: "23.0.18", major: 23, minor: 0, patch: 18 },
  24: { text: "24.0.9", major: 24, minor: 0, patch: 9 },
  25: { text: "25.0.17", major: 25, minor: 0, patch: 17 },
  26: { text: "26.1.5", major: 26, minor: 1, patch: 5 },
  27: { text: "27.5.1", major: 27, minor: 5, patch: 1 },
  28: { text: "28.5.2", major: 28, minor: 5, patch: 2 },
  29: NEWEST,
};

/** The release a version means: `28` → 28.5.2, `28.0` → 28.0.x's newest known, none → the newest. */
export function effectiveVersion(v: Version | undefined): Version {
  if (!v) return NEWEST;
  if (v.minor === undefined) return NEWEST_OF[v.major] ?? { ...v, minor: 99, patch: 99 };
  // `28.0` without a patch: the newest 28.0.x, i.e. not 28.0.0.
  if (v.patch === undefined) return { ...v, patch: 99 };
  return v;
}

/**
 * What dockwall knows of a release as written: `gap` for a major Docker never released
 * (21, 22: after 20.10 came 23.0), `newer` with the release it reproduces for one past the
 * newest dockwall knows of its major (29.8 → 29.7.2), else nothing to say.
 */
export function knownRelease(v: Version): { gap: true; before: Version; after: Version } | { newer: Version } | undefined {
  const newest = NEWEST_OF[v.major];
  if (!newest) {
    const majors = Object.keys(NEWEST_OF).map(Number);
    const before = majors.filter((m) => m < v.major).at(-1);
    const after = majors.find((m) => m > v.major);
    return before !== undefined && after !== undefined ? { gap: true, before: NEWEST_OF[before]!, after: NEWEST_OF[after]! } : undefined;
  }
  if (v.minor === undefined) return undefined;
  const newer = v.minor > newest.minor! || (v.minor === newest.minor && v.patch !== undefined && v.patch > newest.patch!);
  return newer ? { newer: newest } : undefined;
}

export function layoutFor(v: Version | undefined): Layout | undefined {
  const e = effectiveVersion(v);
  return layouts.find((l) => l.matches(e));
}
