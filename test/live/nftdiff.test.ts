// diff -f nft, the comparison itself (src/live/nftdiff.ts): chains rule by rule in order, a base
// chain's header, a map's elements as a set, counters never; a table not loaded is all new.
import { describe, expect, test } from "vitest";
import { diffNft, parseNftList, renderNftDiff } from "../../src/live/nftdiff.js";

const FILE = `# header
table ip docker-bridges
delete table ip docker-bridges
table ip docker-bridges {
	map filter-forward-in-jumps {
		type ifname : verdict
		elements = { "docker0" : jump filter-forward-in__docker0,
			     "bridge1" : jump filter-forward-in__bridge1 }
	}

	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
	}

	chain nat-prerouting-and-output {
		tcp dport 8080 counter packets 0 bytes 0 dnat to 192.0.2.2:80 comment "DNAT"
	}
}
table inet dockwall
delete table inet dockwall
table inet dockwall {
	chain forward {
		type filter hook forward priority filter - 1; policy accept;
		meta nfproto ipv4 jump docker-user-ip
	}

	chain docker-user-ip {
		ct state established,related accept
		oifname "docker0" drop
		return
	}
}
`;
/** What nft lists once the file is loaded, with counters that have counted, and the map's elements in another order. */
const LOADED = FILE.replace(/^table (ip|inet) \S+$\n^delete table .*$\n/gm, "")
  .replace("# header\n", "")
  .replace("packets 0 bytes 0", "packets 12 bytes 720")
  .replace('elements = { "docker0" : jump filter-forward-in__docker0,\n\t\t\t     "bridge1" : jump filter-forward-in__bridge1 }', 'elements = { "bridge1" : jump filter-forward-in__bridge1,\n\t\t\t     "docker0" : jump filter-forward-in__docker0 }');

describe("diff -f nft", () => {
  test("the file's tables and their parts, as nft prints them", () => {
    const { parts, tables } = parseNftList(FILE);
    expect(tables).toEqual(["ip docker-bridges", "inet dockwall"]);
    expect([...parts.keys()]).toEqual(["ip docker-bridges/filter-forward-in-jumps", "ip docker-bridges/filter-FORWARD", "ip docker-bridges/nat-prerouting-and-output", "inet dockwall/forward", "inet dockwall/docker-user-ip"]);
    expect(parts.get("ip docker-bridges/filter-forward-in-jumps")!.lines).toEqual(['"bridge1" : jump filter-forward-in__bridge1', '"docker0" : jump filter-forward-in__docker0']);
    expect(parts.get("inet dockwall/forward")!.header).toEqual(["type filter hook forward priority filter - 1; policy accept;"]);
  });

  test("loaded as written: no difference, whatever the counters say and the order nft lists a map's elements in", () => {
    expect(diffNft(LOADED, FILE)).toEqual({ changed: false, parts: [], tables: ["ip docker-bridges", "inet dockwall"] });
  });

  test("a hand-made rule, a changed policy, a removed element, a table not loaded: each said where it is", () => {
    const live = LOADED.replace("\t\tct state established,related accept\n", "\t\tip saddr 203.0.113.0/24 accept\n\t\tct state established,related accept\n")
      .replace("priority filter - 1; policy accept;", "priority filter - 1; policy drop;")
      .replace(',\n\t\t\t     "docker0" : jump filter-forward-in__docker0 }', " }");
    const d = diffNft(live, FILE);
    expect(d.parts.map((p) => `${p.table} ${p.kind} ${p.name} ${p.status}`)).toEqual(["ip docker-bridges map filter-forward-in-jumps changed", "inet dockwall chain forward changed", "inet dockwall chain docker-user-ip changed"]);
    expect(renderNftDiff(d, { liveName: "live", wantedName: "file" })).toBe(
      "--- live\n+++ file\n" +
        "@@ ip docker-bridges map filter-forward-in-jumps @@\n" +
        '  "bridge1" : jump filter-forward-in__bridge1\n' +
        '+ "docker0" : jump filter-forward-in__docker0\n' +
        "@@ inet dockwall chain forward @@\n" +
        "- type filter hook forward priority filter - 1; policy drop;\n" +
        "+ type filter hook forward priority filter - 1; policy accept;\n" +
        "@@ inet dockwall chain docker-user-ip @@\n" +
        "- ip saddr 203.0.113.0/24 accept\n" +
        "  ct state established,related accept\n" +
        '  oifname "docker0" drop\n' +
        "  return\n",
    );
    const none = diffNft("", FILE);
    expect(none.parts.every((p) => p.status === "added")).toBe(true);
    expect(none.parts).toHaveLength(5);
  });

  test("a chain of the file's table that is loaded but not in the file would be deleted", () => {
    const live = LOADED.replace("\tchain docker-user-ip {", "\tchain old {\n\t\tdrop\n\t}\n\n\tchain docker-user-ip {");
    expect(diffNft(live, FILE).parts.map((p) => `${p.name} ${p.status}`)).toEqual(["old removed"]);
  });
});
