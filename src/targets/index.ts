// The output formats, one registry: a target is its name, the families it writes, and a
// renderer from the generated rule sets to text (plus the warnings only it has). compile()
// renders through this table; a new format (nft, say) is one module listed here and its
// templates.
import { Problems, startOfFile } from "../diagnostics.js";
import { dockerWrites, type Generated } from "../generate.js";
import type { Policy } from "../model/types.js";
import type { Family } from "../model/values.js";
import type { Format } from "../formats.js";
import { renderFerm } from "./ferm.js";
import { renderIptables } from "./iptables.js";
import { renderNft } from "./nft.js";

export interface RenderInput {
  policy: Policy;
  generated: Generated;
  /** The header comment's lines (what was compiled, from where). */
  header: string[];
  problems: Problems;
}

export interface Target {
  name: Format;
  /** The families it writes (generate() makes only these). */
  families: readonly Family[];
  render: (input: RenderInput) => string;
}

function restore(family: Family): Target["render"] {
  return ({ policy, generated, header }) => {
    const commands = generated.setup[family];
    const setup = commands.length ? ["Run first (Docker 28.0.0 matches its bridges with these ipsets):", ...commands.map((c) => `  ${c}`)] : [];
    const rs = generated.rulesets[family]!;
    // A jump into a chain the file does not own: --noflush cannot add it without adding it again at every load.
    const tool = family === 4 ? "iptables" : "ip6tables";
    const jumps = (rs.firstJumps ?? []).filter((j) => !j.dockerMakes);
    const after = jumps.length
      ? ["Then, once (dockwall apply and watch do it themselves): the jump that must come first in its chain. Until it is there, nothing in that chain applies", ...jumps.map((j) => `  ${tool} -t ${j.table} -C ${j.chain} -j ${j.target} 2>/dev/null || ${tool} -t ${j.table} -I ${j.chain} -j ${j.target}`)]
      : [];
    // iptables on: FORWARD's policy, which this file sets without touching Docker's rules there.
    const policies = (rs.policies ?? []).flatMap((p) =>
      dockerWrites(policy, family)
        ? [
            `It sets ${p.chain}'s policy to ${p.policy} (dockerd does so only when it turns IP forwarding on itself): the host routes`,
            `only what Docker's rules, other tools' rules in ${p.chain}, or a 'forward' statement let through.`,
          ]
        : [
            `It sets ${p.chain}'s policy to ${p.policy}. dockerd writes no rules for this family: DOCKER-USER accepts what it would let through`,
            `(its networks' own traffic), and the host routes only that, other tools' rules in ${p.chain}, and what a 'forward' statement lets through.`,
          ],
    );
    // The load alone leaves the chains unused (a review: docker-proxy's port open over IPv6 after just the restore): the Load line says so.
    const head = jumps.length ? header.map((l) => (l.startsWith("Load with: ") ? `${l}, then the jump${jumps.length === 1 ? "" : "s"} below, once` : l)) : header;
    return renderIptables(rs, [...head, ...policies, ...setup, ...after]);
  };
}

export const TARGETS: Record<Format, Target> = {
  ferm: {
    name: "ferm",
    families: [4, 6],
    render: ({ policy, generated, header, problems }) => {
      const d = policy.docker;
      if (d.iptables) {
        problems.warning("ferm-backend", d.spans["iptables"] ?? d.span ?? startOfFile, `ferm loads rules with the iptables-legacy tools when they are installed, while dockerd uses whatever /usr/sbin/iptables is`, {
          help: `with iptables on, the two must share a backend for DOCKER-USER to be the chain dockerd jumps to: check 'iptables --version' against ferm's (legacy), or deploy --format iptables with iptables-restore --noflush`,
        });
      }
      // A family with nothing to write is left out (ferm would reset its tables).
      const rulesets = [generated.rulesets[4]!, generated.rulesets[6]!].filter((r) => r.tables.length > 0);
      // Without a host block (iptables off) INPUT stays the host's: ferm keeps its rules and policy through ferm-keep.
      return renderFerm({ rulesets, preserve: generated.preserve, header, hooks: [...generated.setup[4], ...generated.setup[6]], hostsInput: !d.iptables && !policy.host });
    },
  },
  iptables: { name: "iptables", families: [4], render: restore(4) },
  ip6tables: { name: "ip6tables", families: [6], render: restore(6) },
  nft: { name: "nft", families: [4, 6], render: ({ policy, generated, header, problems }) => renderNft(policy, generated.rulesets, header, problems) },
};
