// Which of Docker's chain layouts a policy's `version` selects. One entry per layout,
// newest last; see the README's table of Docker versions.
import type { Version } from "../model/values.js";

export interface LayoutInfo {
  /** Folder name in the layout captures, e.g. "legacy-20.10". */
  name: string;
  /** The releases it covers, for messages. */
  covers: string;
  /** Does `v` fall in this layout? */
  matches: (v: Version) => boolean;
}

const atLeast = (v: Version, major: number, minor = 0, patch = 0): boolean =>
  v.major !== major ? v.major > major : (v.minor ?? 99) !== minor ? (v.minor ?? 99) > minor : (v.patch ?? 99) >= patch;

export const layouts: LayoutInfo[] = [
  { name: "legacy-20.10", covers: "20.10 to 26.1", matches: (v) => atLeast(v, 20, 10) && !atLeast(v, 27) },
];

/** The newest release dockwall assumes when the policy names none. */
export const NEWEST: Version = { text: "29", major: 29 };

export function layoutFor(v: Version | undefined): LayoutInfo | undefined {
  return layouts.find((l) => l.matches(v ?? NEWEST));
}
