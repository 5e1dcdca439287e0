// /etc/nftables.conf against the policy (`dockwall check`): a `flush ruleset` there removes
// every nftables table whenever the file is loaded (nft -f, systemctl restart nftables) —
// Docker's rules, and dockwall's wherever they live in nftables (iptables-nft's tables, or
// --format nft's) — and until they are loaded again the kernel filters less than the policy
// says (no forward rules at all: containers routed to from anywhere). Pure: the CLI reads the
// file.
import type { Problems, Span } from "../diagnostics.js";
import type { Format } from "../formats.js";
import type { Policy } from "../model/types.js";

export interface NftablesConf {
  /** The file's name, as diagnostics show it. */
  file: string;
  text: string;
}

interface Statement {
  words: string[];
  span: Span;
}

/** The file's statements (split at newlines and ';', comments and quotes respected), with where each starts. */
function statements(conf: NftablesConf): Statement[] {
  const out: Statement[] = [];
  const lines = conf.text.split(/\r\n?|\n/);
  lines.forEach((line, i) => {
    let word = "";
    let words: string[] = [];
    let start = -1;
    /** Just past the statement's last character so far. */
    let last = 0;
    let quoted = false;
    const end = () => {
      if (word) words.push(word);
      if (words.length) out.push({ words, span: { line: i + 1, col: start + 1, endLine: i + 1, endCol: last + 1, other: conf } });
      word = "";
      words = [];
      start = -1;
    };
    for (let c = 0; c < line.length; c++) {
      const ch = line[c]!;
      if (quoted) {
        if (ch === '"') quoted = false;
        else word += ch;
        last = c + 1;
        continue;
      }
      if (ch === "#") break;
      if (ch === '"') {
        quoted = true;
        if (start < 0) start = c;
        last = c + 1;
        continue;
      }
      if (ch === ";" || ch === "{" || ch === "}") {
        end();
        continue;
      }
      if (/\s/.test(ch)) {
        if (word) words.push(word), (word = "");
        continue;
      }
      if (start < 0) start = c;
      word += ch;
      last = c + 1;
    }
    end();
  });
  return out;
}

/**
 * A warning at each `flush ruleset` of nftables.conf that would remove rules this policy relies
 * on. Not when the policy's whole firewall is in the `--format nft` file (iptables off) and
 * nftables.conf includes that file (`output`) after the flush: one transaction puts it back.
 */
export function checkNftablesConf(p: Policy, format: Format, conf: NftablesConf, output: string | undefined, problems: Problems): void {
  const all = statements(conf);
  all.forEach((s, i) => {
    if (s.words[0] !== "flush" || s.words[1] !== "ruleset") return;
    // `flush ruleset ip6` removes only that family's tables; ip, ip6 and inet hold Docker's and dockwall's, netdev, bridge and arp none.
    const family = s.words[2];
    if (family && !["ip", "ip6", "inet"].includes(family)) return;
    const includes = all.slice(i + 1).filter((t) => t.words[0] === "include" && t.words[1] !== undefined);
    const own = format === "nft" && output !== undefined && includes.some((t) => t.words[1] === output);
    if (own && !p.docker.iptables) return;
    const what = !p.docker.iptables
      ? format === "nft"
        ? "the tables of dockwall's nft file (Docker's ip/ip6 docker-bridges and inet dockwall)"
        : "the rules dockwall loads, where iptables is iptables-nft (Debian's and RHEL's: it keeps them in nftables tables): Docker's NAT, published ports and the policy"
      : format === "nft"
        ? own
          ? "Docker's rules (dockerd writes them; the include puts back only dockwall's table)"
          : "Docker's rules and dockwall's table inet dockwall"
        : "Docker's rules and dockwall's, where iptables is iptables-nft (Debian's and RHEL's: it keeps them in nftables tables)";
    const restore = p.docker.iptables ? "until dockerd restarts and dockwall's rules are loaded again" : "until dockwall's rules are loaded again";
    // An include after the flush may be dockwall's file: named, with -o, it is.
    const notes = !p.docker.iptables && format === "nft" && output === undefined ? includes.map((t) => ({ message: `if this is dockwall's file, say so with -o ${t.words[1]} (then nothing is lost)`, span: t.span })) : [];
    problems.warning(
      "nftables-flush",
      s.span,
      `'${s.words.join(" ")}' in ${conf.file}, whenever it is loaded (nft -f, systemctl restart nftables), removes ${family ? `every ${family} table, among them ` : ""}${what}; ${restore}, the host forwards and accepts what the policy closes`,
      {
        help:
          !p.docker.iptables && format === "nft"
            ? `include dockwall's file after it (include "${output ?? "/etc/nftables.d/dockwall.nft"}"), or flush only ${conf.file}'s own tables: before each, 'table inet filter' then 'delete table inet filter'`
            : `flush only ${conf.file}'s own tables instead: before each table's definition, 'table inet filter' then 'delete table inet filter' (the table made if missing, then deleted)`,
        notes,
      },
    );
  });
}
