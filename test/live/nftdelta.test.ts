// watch -f nft loads only what differs (nftDelta): the tables as nft lists them with handles,
// turned into the file's by a transaction of a few commands. Proven with the kernel: the file
// for one state loaded, the delta to the next loaded on top, and the tables then list exactly as
// the next state's file — for containers coming and going, a network made and removed (chains
// and map elements), an allow added, in Docker's tables and dockwall's. And without a kernel:
// what needs the whole file says so.
import { expect, it, test } from "vitest";
import { compile } from "../../src/compile.js";
import { afterDelta, diffNft, nftDelta, parseNftList, type NftState } from "../../src/live/nftdiff.js";
import { createNetns, deleteNetns, describeKernel } from "../lab/kernel.js";

const HEAD = `docker { version 29.7; iptables off; ip6tables on; userland-proxy off; }
zone wan { interface eth0; }
zone lan { interface eth1; from 192.168.1.0/24; }
network bridge { bridge docker0; subnet 172.17.0.0/16; subnet fd00:17::/64; }
`;
const web = "container web { network bridge 172.17.0.2, fd00:17::2; publish 8080:80; }\n";
const api = "container api { network bridge 172.17.0.3; publish 9090:80; publish 9443:443; }\n";
const late = "network late { bridge br-late; subnet 172.30.0.0/16; }\ncontainer db { network late 172.30.0.2; publish 5432:5432; }\n";
/** N containers on the default bridge, each publishing one port, IPv4 and IPv6. */
const many = (n: number) => Array.from({ length: n }, (_, i) => `container m${i} { network bridge 172.17.1.${i + 2}, fd00:17::1:${i + 2}; publish ${7000 + i}:80; }\n`).join("");
const names = (n: number) => Array.from({ length: n }, (_, i) => `m${i}`).join(", ");
const STATES: [string, string][] = [
  ["web", `${HEAD}${web}allow lan to web;\n`],
  ["web and api", `${HEAD}${web}${api}allow lan to web, api;\n`],
  ["api alone (web gone)", `${HEAD}${api}allow lan to api;\n`],
  ["api, and a network made with db on it", `${HEAD}${api}${late}allow lan to api, db;\nallow wan to db:5432;\n`],
  ["web back, the network gone", `${HEAD}${web}${api}allow lan to web;\n`],
  ["nothing", HEAD],
  // A larger host: the lan's allows are one rule and a set; a container coming or going is a set element.
  ["five containers (a set)", `${HEAD}${many(5)}allow lan to ${names(5)};\n`],
  ["six (an element added)", `${HEAD}${many(6)}allow lan to ${names(6)};\n`],
  ["four (two elements deleted)", `${HEAD}${many(6).split("\n").slice(2).join("\n")}allow lan to ${names(6).split(", ").slice(2).join(", ")};\n`],
  ["three (the set gone: rules again)", `${HEAD}${many(3)}allow lan to ${names(3)};\n`],
];
const file = (policy: string) => {
  const r = compile(policy, { format: "nft" });
  if (!r.ok) throw new Error(r.diagnostics.map((d) => d.message).join("\n"));
  return r.output!;
};
/** The file's tables as nft lists them: from `table X {` to its `}`. */
const tablesText = (f: string) => [...f.matchAll(/^table (\S+ \S+) \{\n[\s\S]*?^\}\n/gm)].map((m) => m[0]).join("");

test("the whole file when a table is not there yet, or a base chain's header changes; nothing when nothing differs", () => {
  const a = file(STATES[0]![1]);
  expect(nftDelta("", a)).toBeUndefined();
  const listed = tablesText(a).replace(/\{\n/g, "{ # handle 1\n");
  expect(nftDelta(listed, a)?.text).toBe("");
  expect(nftDelta(listed.replace("policy accept;", "policy drop;"), a)).toBeUndefined();
});

describeKernel("nftDelta with the kernel: a state's file, then the delta to the next, lists exactly as the next state's file", () => {
  it("containers and networks coming and going, in Docker's tables and dockwall's (IPv4 and IPv6 tables)", () => {
    const ns = createNetns("-d");
    try {
      const load = (text: string) => {
        const r = ns.run(["nft", "-f", "-"], text);
        expect(r.stderr).toBe("");
      };
      load(file(STATES[0]![1]));
      const sizes: string[] = [];
      let known: NftState | undefined;
      for (let i = 1; i < STATES.length; i++) {
        const [name, policy] = STATES[i]!;
        const want = file(policy);
        const tables = [...want.matchAll(/^table (\S+) (\S+) \{$/gm)].map((m) => [m[1]!, m[2]!]);
        const listed = () => parseNftList(tables.map(([f, t]) => ns.run(["nft", "-a", "list", "table", f, t]).stdout).join(""));
        // What the last step's echo said the kernel holds (as watch keeps it), checked against a listing.
        if (known) expect(known, name).toEqual(listed());
        const from = known ?? listed();
        const delta = nftDelta(from, want);
        expect(delta, name).toBeDefined();
        const commands = delta!.text.split("\n").filter(Boolean);
        sizes.push(`${name}: ${commands.length} commands, in dockwall's table: ${commands.filter((c) => / inet dockwall /.test(c)).join("; ")}`);
        const echo = ns.run(["nft", "--echo", "--handle", "-f", "-"], delta!.text);
        expect(echo.stderr).toBe("");
        known = afterDelta(from, parseNftList(want), delta!, echo.stdout);
        expect(known, name).toBeDefined();
        const after = tables.map(([f, t]) => ns.run(["nft", "list", "table", f, t]).stdout).join("");
        expect(diffNft(after, want).changed, name).toBe(false);
        // Exactly the file, rule for rule and in order (map elements are nft's own order).
        const noElements = (t: string) => t.replace(/elements = \{[^}]*\}/g, "elements");
        expect(noElements(after), name).toBe(noElements(tablesText(want)));
      }
      expect(sizes).toHaveLength(STATES.length - 1);
      // An element added or deleted is that and nothing else.
      // In dockwall's table, an element added or deleted is that and nothing else (Docker's tables change rule by rule, as dockerd writes them).
      expect(sizes.filter((x) => /^(six|four)/.test(x)).map((x) => x.replace(/^.*in dockwall's table: /, ""))).toEqual([
        "add element inet dockwall docker-user-ip-1 { 172.17.1.7 . 80 . 7005 }",
        "delete element inet dockwall docker-user-ip-1 { 172.17.1.2 . 80 . 7000 }; delete element inet dockwall docker-user-ip-1 { 172.17.1.3 . 80 . 7001 }",
      ]);
    } finally {
      deleteNetns(ns.name);
    }
  });
});
