// What the kernel says of the links on Docker's bridges while dockerd cannot be asked (`ip -o
// monitor link`, and `ip -o link show` for the ports there were when it went away). After a crash,
// dockerd removes the containers that ran and starts its --restart ones again before its API
// answers, at whatever addresses it hands out: a port that leaves a bridge, or a new one, is the
// sign that the per-container rules in place may now lead to another container. Pure.

/** One line of `ip -o monitor link` or `ip -o link show`. */
export interface LinkLine {
  index: number;
  /** The link's name, without `@PEER`. */
  name: string;
  /** The bridge it is a port of. */
  master?: string;
  deleted: boolean;
}

/** `[Deleted ]N: NAME[@PEER]: <FLAGS> … [master BRIDGE] …`; undefined for anything else. */
export function parseLinkLine(line: string): LinkLine | undefined {
  const m = /^(Deleted )?(\d+): ([^:@\s]+)(?:@[^:\s]*)?: <[^>]*>(.*)$/.exec(line);
  if (!m) return undefined;
  const master = / master (\S+)/.exec(m[4]!)?.[1];
  return { index: Number(m[2]), name: m[3]!, ...(master ? { master } : {}), deleted: m[1] !== undefined };
}

/** The ports of these bridges in an `ip -o link show` listing, by index. */
export function bridgePorts(listing: string, bridges: ReadonlySet<string>): Set<number> {
  const out = new Set<number>();
  for (const line of listing.split("\n")) {
    const l = parseLinkLine(line);
    if (l?.master !== undefined && bridges.has(l.master)) out.add(l.index);
  }
  return out;
}

/**
 * What a line says happened to a container's link on one of Docker's bridges, against the ports
 * there were (`known`): a port gone, a new port, the bridge itself gone. Undefined when it says
 * nothing of the kind (a port's flags changing, another interface).
 */
export function containerLinkChange(l: LinkLine, bridges: ReadonlySet<string>, known: ReadonlySet<number>): string | undefined {
  if (l.deleted && bridges.has(l.name)) return `${l.name} deleted`;
  if (l.master === undefined || !bridges.has(l.master)) return undefined;
  if (l.deleted) return `${l.name} left ${l.master}`;
  if (!known.has(l.index)) return `${l.name} joined ${l.master}`;
  return undefined;
}
